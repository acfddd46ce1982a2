package failoverblob

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
)

// spoolChunk is the unit the in-memory part of a spool grows by. Chunks are
// pooled, so a steady stream of writes reuses the same memory.
const spoolChunk = 64 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, spoolChunk); return &b }}

// spool keeps a copy of the bytes of a streamed write so that they can be
// replayed to the other side if the first side fails after bytes were sent.
// It holds up to memLimit bytes in pooled memory and spills the rest to a
// temporary file in dir, so its memory use is bounded whatever the object's
// size.
type spool struct {
	memLimit int64
	dir      string

	chunks []*[]byte // full chunks, then the partly filled last one
	inMem  int64     // bytes held in chunks
	file   *os.File  // bytes past memLimit, created on first spill
	onDisk int64     // bytes written to file
	size   int64     // all bytes written

	tally *spoolTally // counts the bytes held, or nil
}

// newSpool returns a spool that counts the bytes it holds in tally, unless
// tally is nil.
func newSpool(memLimit int64, dir string, tally *spoolTally) *spool {
	return &spool{memLimit: memLimit, dir: dir, tally: tally}
}

// Write appends p. It fails only if the temporary file cannot be written.
func (s *spool) Write(p []byte) (int, error) {
	n, inMem := len(p), s.inMem
	for len(p) > 0 && s.inMem < s.memLimit {
		off := int(s.inMem % spoolChunk)
		if off == 0 {
			s.chunks = append(s.chunks, chunkPool.Get().(*[]byte))
		}
		room := min(int64(spoolChunk-off), s.memLimit-s.inMem)
		c := copy((*s.chunks[len(s.chunks)-1])[off:off+int(room)], p)
		p = p[c:]
		s.inMem += int64(c)
	}
	s.tally.add(s.inMem-inMem, 0)
	if len(p) > 0 {
		if s.file == nil {
			f, err := os.CreateTemp(s.dir, "failoverblob-spool-*")
			if err != nil {
				return n - len(p), err
			}
			// Unlink at once where the OS allows it, so a crash leaves no file.
			_ = os.Remove(f.Name())
			s.file = f
		}
		w, err := s.file.Write(p)
		s.onDisk += int64(w)
		s.tally.add(0, int64(w))
		if err != nil {
			return n - len(p), err
		}
	}
	s.size += int64(n)
	return n, nil
}

// Size returns the number of bytes spooled.
func (s *spool) Size() int64 { return s.size }

// WriteTo writes every spooled byte to w, from the start. It may be called
// more than once.
func (s *spool) WriteTo(w io.Writer) (int64, error) {
	var total int64
	left := s.inMem
	for _, c := range s.chunks {
		b := (*c)[:min(left, spoolChunk)]
		n, err := w.Write(b)
		total += int64(n)
		if err != nil {
			return total, err
		}
		left -= int64(len(b))
	}
	if s.file == nil {
		return total, nil
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return total, err
	}
	n, err := io.Copy(w, io.LimitReader(s.file, s.size-s.inMem))
	total += n
	return total, err
}

// Close releases the spool's memory and its temporary file.
func (s *spool) Close() error {
	for _, c := range s.chunks {
		chunkPool.Put(c)
	}
	s.tally.add(-s.inMem, -s.onDisk)
	s.chunks, s.inMem, s.onDisk, s.size = nil, 0, 0, 0
	if s.file == nil {
		return nil
	}
	f := s.file
	s.file = nil
	cerr := f.Close()
	rerr := os.Remove(f.Name()) // already gone where the unlink at creation worked
	if errors.Is(rerr, fs.ErrNotExist) {
		rerr = nil
	}
	return errors.Join(cerr, rerr)
}
