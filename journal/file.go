package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// File is a Journal kept in one local file, for a single instance. It is
// durable: once Append or Ack returns nil, the change survives a crash of the
// process or of the machine. Open it with OpenFile and release it with Close;
// it is safe for concurrent use.
//
// # On-disk format
//
// The file starts with the 8-byte magic "fbjrnl\x00\x01" and is followed by
// frames, each written with one write and made durable with one fsync:
//
//	length  uint32, little endian: the payload's length, 1 byte to 4 MiB
//	crc     uint32, little endian: CRC-32C (Castagnoli) of the 4 length
//	        bytes followed by the payload
//	payload one or more operations, back to back
//
// Each operation is a one-byte tag followed by varints (encoding/binary):
//
//	1 append: uvarint seq, varint unix seconds, uvarint nanoseconds,
//	          byte op, byte missing, varint size,
//	          uvarint len(key), key, uvarint len(version), version
//	2 ack:    uvarint n, then n × uvarint seq
//	3 base:   uvarint seq, the highest sequence number ever issued (written
//	          first by compaction, so IDs stay unique once the entries that
//	          carried the highest numbers are gone)
//
// An entry's ID is its sequence number in decimal. Sequence numbers of
// append operations strictly increase through the file.
//
// # Crash safety
//
// A frame is written at the end of the file and fsynced before any caller
// learns of its success; a frame whose write failed is truncated away, and
// nothing is written after a frame whose fsync failed (the File refuses all
// further use). So only the last frame can be incomplete after a crash. OpenFile therefore treats a bad frame (short,
// wrong length or wrong checksum) as a torn tail, and truncates it, only when
// it is the last thing in the file: when the bytes from it to the end of the
// file are no longer than one frame can be and no well-formed frame starts
// among them. Any other bad frame is corruption, reported as a *CorruptError
// that names its offset, and the file is left as it is. (Damage to the last
// frame alone looks like a torn write and is treated as one.)
//
// When the file holds more than 4096 appended entries and acknowledged ones
// outnumber live ones, it is compacted inline, by the call that wrote the
// acknowledgements or by OpenFile: a base operation and the live entries are
// written to path+".tmp", which is fsynced and renamed over path, and the
// directory is fsynced, so a crash leaves either the old or the
// new file whole; both hold the same pending entries. A leftover .tmp file is
// removed by OpenFile.
type File struct {
	path string
	lock *fileLock

	mu         sync.Mutex
	idle       *sync.Cond // signalled when writing becomes false
	f          *os.File   // the journal file, nil once closed
	size       int64      // bytes of f holding well-formed frames
	next       uint64     // highest sequence number issued
	items      []item     // entries in append order; seq 0 marks an acknowledged one
	index      map[uint64]int
	dead       int // acknowledged items still in items
	written    int // append operations in the file (live and acknowledged)
	compact    int // written must exceed this before compaction is considered
	compactMin int // compact's usual value
	queue      []*request
	writing    bool  // a goroutine is writing the queue (the committer)
	closed     bool  // Close was called
	broken     error // set when the file's state is unknown; every call fails
	syncs      int64 // frames written and fsynced, for tests and benchmarks

	// faultWrite and faultSync, when set (by tests only), turn a successful
	// write or fsync of a frame into a failure.
	faultWrite, faultSync func() error
}

var _ Journal = (*File)(nil)

// ErrClosed is returned, wrapped, by the methods of a File after Close.
var ErrClosed = errors.New("journal file is closed")

// ErrLocked is returned, wrapped, by OpenFile when the journal file is
// already open, in this process or in another one.
var ErrLocked = errors.New("journal file is already open")

// CorruptError reports a journal file that cannot be read safely: a bad
// frame followed by well-formed data, an operation that does not decode, or a
// file that is not a journal at all.
type CorruptError struct {
	Path   string
	Offset int64 // of the frame at fault (0 for the file header)
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal: %s: corrupt at offset %d: %s", e.Path, e.Offset, e.Reason)
}

const (
	fileMagic = "fbjrnl\x00\x01"
	frameHead = 8 // length + crc

	// maxFrame bounds a frame's payload. The committer ends a batch once it
	// reaches batchBytes and one request is at most maxRequest bytes, so
	// frames stay below 2 MiB. It also bounds the scan for frames after a
	// bad one, which costs a checksum per plausible offset.
	maxFrame   = 4 << 20
	batchBytes = 1 << 20
	maxRequest = 1 << 20
	maxAckIDs  = 64 << 10 // per ack operation: at most 640 KiB of varints

	opAppend = 1
	opAck    = 2
	opBase   = 3
)

// defaultCompactMin is how many append operations the file must hold before
// it is compacted; compaction also needs more acknowledged entries than live
// ones. Tests lower it.
var defaultCompactMin = 4096

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type item struct {
	seq uint64
	e   Entry
}

type request struct {
	ctx  context.Context
	ops  []byte   // encoded operations
	add  *item    // the entry an append request adds
	acks []uint64 // the sequence numbers an ack request removes
	err  error
	done chan struct{}
}

// OpenFile opens the journal at path, creating it if it does not exist, and
// locks it so that no other File, in this process or another, can open it
// until Close; a second OpenFile fails with an error wrapping ErrLocked. It
// reads the whole file once: List is served from memory. A torn frame at the
// end of the file, left by a crash, is truncated; other damage is reported
// as a *CorruptError and the file is left as it is.
//
// The lock is an advisory flock on path+".lock", a file that stays in place
// after Close; the kernel drops it when the process dies. On systems without
// flock (Windows, Solaris, ...) the lock holds within the process only. The
// File also uses path+".tmp" while it compacts.
func OpenFile(path string) (*File, error) {
	lock, err := lockPath(path)
	if err != nil {
		return nil, err
	}
	j := &File{path: path, lock: lock, index: make(map[uint64]int), compactMin: defaultCompactMin, compact: defaultCompactMin}
	j.idle = sync.NewCond(&j.mu)
	if err := j.open(); err != nil {
		if j.f != nil {
			j.f.Close()
		}
		lock.unlock()
		return nil, err
	}
	return j, nil
}

func (j *File) open() error {
	if err := os.Remove(j.tmpPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("journal: open %s: removing a leftover temporary file: %w", j.path, err)
	}
	f, err := os.OpenFile(j.path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		// Created whole, by rename, so that a crash cannot leave a file
		// without its header.
		if f, _, err = j.replace([]byte(fileMagic), nil); err != nil {
			return fmt.Errorf("journal: create %s: %w", j.path, err)
		}
	}
	if err != nil {
		return fmt.Errorf("journal: open %s: %w", j.path, err)
	}
	j.f = f
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("journal: read %s: %w", j.path, err)
	}
	if len(data) == 0 {
		// An empty file, made by someone else: start the journal in it.
		if _, err := f.WriteAt([]byte(fileMagic), 0); err != nil {
			return fmt.Errorf("journal: write %s: %w", j.path, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("journal: sync %s: %w", j.path, err)
		}
		data = []byte(fileMagic)
	}
	end, err := j.load(data)
	if err != nil {
		return err
	}
	if end < int64(len(data)) {
		if err := f.Truncate(end); err != nil {
			return fmt.Errorf("journal: truncating the torn tail of %s at offset %d: %w", j.path, end, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("journal: sync %s: %w", j.path, err)
		}
	}
	j.size = end
	if j.shouldCompact() {
		j.writing = true
		j.mu.Lock()
		j.compactNow()
		j.writing = false
		j.mu.Unlock()
		if j.broken != nil {
			return j.broken
		}
	}
	return nil
}

// load rebuilds the in-memory state from the file's contents and returns the
// length of its well-formed prefix.
func (j *File) load(data []byte) (int64, error) {
	if len(data) < len(fileMagic) || string(data[:len(fileMagic)]) != fileMagic {
		return 0, &CorruptError{Path: j.path, Offset: 0, Reason: "not a journal file (bad magic)"}
	}
	var lastAppend uint64
	off := len(fileMagic)
	for off < len(data) {
		payload, ok := frameAt(data, off)
		if !ok {
			if err := j.tornTail(data, off); err != nil {
				return 0, err
			}
			break
		}
		for p := payload; len(p) > 0; {
			var err error
			p, err = j.apply(p, &lastAppend)
			if err != nil {
				return 0, &CorruptError{Path: j.path, Offset: int64(off), Reason: err.Error()}
			}
		}
		off += frameHead + len(payload)
	}
	j.next = max(j.next, lastAppend)
	j.squeeze()
	return int64(off), nil
}

// tornTail reports whether the bad frame at off is a torn write (the last
// thing in the file) by returning nil, or corruption.
func (j *File) tornTail(data []byte, off int) error {
	rest := len(data) - off
	if rest > frameHead+maxFrame {
		return &CorruptError{Path: j.path, Offset: int64(off),
			Reason: fmt.Sprintf("bad frame with %d bytes after it, more than one frame can hold", rest)}
	}
	for p := off + 1; p+frameHead < len(data); p++ {
		if t := data[p+frameHead]; t < opAppend || t > opBase {
			continue // not how a payload starts: skip the checksum
		}
		if _, ok := frameAt(data, p); ok {
			return &CorruptError{Path: j.path, Offset: int64(off),
				Reason: fmt.Sprintf("bad frame followed by a well-formed one at offset %d", p)}
		}
	}
	return nil
}

// frameAt returns the payload of the frame at off if it is well formed.
func frameAt(data []byte, off int) ([]byte, bool) {
	if len(data)-off < frameHead {
		return nil, false
	}
	n := binary.LittleEndian.Uint32(data[off:])
	if n == 0 || n > maxFrame || int64(n) > int64(len(data)-off-frameHead) {
		return nil, false
	}
	payload := data[off+frameHead : off+frameHead+int(n)]
	if frameCRC(data[off:off+4], payload) != binary.LittleEndian.Uint32(data[off+4:]) {
		return nil, false
	}
	return payload, true
}

func frameCRC(length, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(length, castagnoli), castagnoli, payload)
}

// appendFrame appends a frame holding payload to buf.
func appendFrame(buf, payload []byte) []byte {
	var head [frameHead]byte
	binary.LittleEndian.PutUint32(head[:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(head[4:], frameCRC(head[:4], payload))
	return append(append(buf, head[:]...), payload...)
}

// apply decodes one operation from p, applies it to the in-memory state and
// returns the rest of p.
func (j *File) apply(p []byte, lastAppend *uint64) ([]byte, error) {
	d := decoder{p: p[1:]}
	switch p[0] {
	case opAppend:
		it := d.entry()
		if d.err != nil {
			return nil, fmt.Errorf("append operation: %w", d.err)
		}
		if it.seq <= *lastAppend {
			return nil, fmt.Errorf("append operation: sequence number %d after %d", it.seq, *lastAppend)
		}
		*lastAppend = it.seq
		j.index[it.seq] = len(j.items)
		j.items = append(j.items, it)
		j.written++
	case opAck:
		n := d.uvarint()
		if d.err == nil && n > uint64(len(d.p)) {
			d.err = errors.New("count exceeds the payload")
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			j.remove(d.uvarint())
		}
		if d.err != nil {
			return nil, fmt.Errorf("ack operation: %w", d.err)
		}
	case opBase:
		j.next = max(j.next, d.uvarint())
		if d.err != nil {
			return nil, fmt.Errorf("base operation: %w", d.err)
		}
	default:
		return nil, fmt.Errorf("unknown operation tag %d", p[0])
	}
	return d.p, nil
}

// remove marks the entry with sequence number seq acknowledged, if pending.
func (j *File) remove(seq uint64) {
	i, ok := j.index[seq]
	if !ok {
		return
	}
	delete(j.index, seq)
	j.items[i] = item{}
	j.dead++
	if j.dead > 64 && j.dead > len(j.items)/2 {
		j.squeeze()
	}
}

// squeeze drops acknowledged items from memory.
func (j *File) squeeze() {
	if j.dead == 0 {
		return
	}
	kept := j.items[:0]
	for _, it := range j.items {
		if it.seq != 0 {
			j.index[it.seq] = len(kept)
			kept = append(kept, it)
		}
	}
	clear(j.items[len(kept):])
	j.items = kept
	j.dead = 0
}

func (j *File) live() int { return len(j.items) - j.dead }

func appendEntry(buf []byte, it item) []byte {
	buf = append(buf, opAppend)
	buf = binary.AppendUvarint(buf, it.seq)
	buf = binary.AppendVarint(buf, it.e.Recorded.Unix())
	buf = binary.AppendUvarint(buf, uint64(it.e.Recorded.Nanosecond()))
	buf = append(buf, byte(it.e.Op), byte(it.e.Missing))
	buf = binary.AppendVarint(buf, it.e.Size)
	buf = binary.AppendUvarint(buf, uint64(len(it.e.Key)))
	buf = append(buf, it.e.Key...)
	buf = binary.AppendUvarint(buf, uint64(len(it.e.Version)))
	return append(buf, it.e.Version...)
}

type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or malformed %s", what)
	}
	d.p = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.p) == 0 {
		d.fail("byte")
		return 0
	}
	b := d.p[0]
	d.p = d.p[1:]
	return b
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.p)) {
		d.fail("string")
		return ""
	}
	s := string(d.p[:n])
	d.p = d.p[n:]
	return s
}

func (d *decoder) entry() item {
	var it item
	it.seq = d.uvarint()
	sec := d.varint()
	nsec := d.uvarint()
	it.e.Op = Op(d.byte())
	it.e.Missing = Side(d.byte())
	it.e.Size = d.varint()
	it.e.Key = d.string()
	it.e.Version = d.string()
	if d.err == nil && (it.seq == 0 || nsec >= 1e9) {
		d.err = fmt.Errorf("bad sequence number %d or nanoseconds %d", it.seq, nsec)
	}
	it.e.ID = strconv.FormatUint(it.seq, 10)
	it.e.Recorded = time.Unix(sec, int64(nsec))
	return it
}

// Append implements Journal. It returns once the entry is in the file and
// fsynced; appends from concurrent goroutines share one write and fsync. The
// entry's Recorded time is kept to the nanosecond, in the local time zone,
// without a monotonic clock reading, both in List and after reopening.
//
// An Append that returns an error may still be found in the file after it
// is reopened (an entry is a hint, so a spare one is harmless).
func (j *File) Append(ctx context.Context, e Entry) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if n := len(e.Key) + len(e.Version); n > maxRequest-64 {
		return "", fmt.Errorf("journal: %s: entry for key %.40q is too large (%d bytes of key and version)", j.path, e.Key, n)
	}
	if e.Recorded.IsZero() {
		e.Recorded = time.Now()
	}
	e.Recorded = time.Unix(e.Recorded.Unix(), int64(e.Recorded.Nanosecond()))
	j.mu.Lock()
	if err := j.usable(); err != nil {
		j.mu.Unlock()
		return "", err
	}
	j.next++
	e.ID = strconv.FormatUint(j.next, 10)
	it := item{seq: j.next, e: e}
	r := &request{ctx: ctx, ops: appendEntry(nil, it), add: &it, done: make(chan struct{})}
	if err := j.submit(r); err != nil {
		return "", err
	}
	return e.ID, nil
}

// List implements Journal. It reads memory only; the slice is a copy.
func (j *File) List(ctx context.Context) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usable(); err != nil {
		return nil, err
	}
	out := make([]Entry, 0, j.live())
	for _, it := range j.items {
		if it.seq != 0 {
			out = append(out, it.e)
		}
	}
	return out, nil
}

// Ack implements Journal. It returns once the acknowledgement is in the file
// and fsynced; IDs that are not pending (unknown, malformed or already
// acknowledged) are ignored and cost no I/O. When acknowledged entries
// dominate a large enough file, Ack also compacts it.
func (j *File) Ack(ctx context.Context, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j.mu.Lock()
	if err := j.usable(); err != nil {
		j.mu.Unlock()
		return err
	}
	seen := make(map[uint64]bool, len(ids))
	var seqs []uint64
	for _, id := range ids {
		seq, err := strconv.ParseUint(id, 10, 64)
		if err != nil || seen[seq] {
			continue
		}
		if _, ok := j.index[seq]; ok {
			seen[seq] = true
			seqs = append(seqs, seq)
		}
	}
	if len(seqs) == 0 {
		j.mu.Unlock()
		return nil
	}
	var rs []*request
	for len(seqs) > 0 {
		n := min(len(seqs), maxAckIDs)
		ops := append([]byte{opAck}, binary.AppendUvarint(nil, uint64(n))...)
		for _, seq := range seqs[:n] {
			ops = binary.AppendUvarint(ops, seq)
		}
		rs = append(rs, &request{ctx: ctx, ops: ops, acks: seqs[:n:n], done: make(chan struct{})})
		seqs = seqs[n:]
	}
	// All but the last request are queued directly; the last is submitted,
	// so that the caller commits the queue or waits for the committer.
	last := rs[len(rs)-1]
	j.queue = append(j.queue, rs[:len(rs)-1]...)
	err := j.submit(last)
	for _, r := range rs[:len(rs)-1] {
		<-r.done
		err = errors.Join(r.err, err)
	}
	return err
}

// usable reports why j cannot be used, if it cannot. j.mu must be held.
func (j *File) usable() error {
	if j.closed {
		return fmt.Errorf("journal: %s: %w", j.path, ErrClosed)
	}
	if j.broken != nil {
		return fmt.Errorf("journal: %s is unusable after an earlier failure, close and reopen it: %w", j.path, j.broken)
	}
	return nil
}

// submit queues r and waits until it is written. j.mu must be held; submit
// releases it. If no goroutine is committing, the caller becomes the
// committer and writes the queue, in batches, until it is empty.
func (j *File) submit(r *request) error {
	j.queue = append(j.queue, r)
	if j.writing {
		j.mu.Unlock()
		<-r.done
		return r.err
	}
	j.writing = true
	j.commit()
	j.writing = false
	j.idle.Broadcast()
	j.mu.Unlock()
	<-r.done
	return r.err
}

// commit writes the queue until it is empty, then compacts the file if
// acknowledged entries dominate it. j.mu must be held and j.writing set; it
// is released during I/O.
func (j *File) commit() {
	for {
		for len(j.queue) > 0 && j.broken == nil {
			j.commitBatch()
		}
		if j.broken != nil {
			for _, r := range j.queue {
				r.finish(j.usable())
			}
			j.queue = nil
			return
		}
		if !j.shouldCompact() {
			return
		}
		j.compactNow()
	}
}

func (r *request) finish(err error) {
	r.err = err
	close(r.done)
}

// commitBatch writes one frame holding requests from the head of the queue.
func (j *File) commitBatch() {
	var batch []*request
	var payload []byte
	n := 0
	for ; n < len(j.queue) && len(payload) < batchBytes; n++ {
		r := j.queue[n]
		if err := r.ctx.Err(); err != nil {
			r.finish(err)
			continue
		}
		batch = append(batch, r)
		payload = append(payload, r.ops...)
	}
	clear(j.queue[:n])
	j.queue = j.queue[n:]
	if len(batch) == 0 {
		return
	}
	frame := appendFrame(make([]byte, 0, frameHead+len(payload)), payload)
	off := j.size
	j.mu.Unlock()
	err := j.writeFrame(frame, off)
	j.mu.Lock()
	if err == nil {
		j.size += int64(len(frame))
		j.syncs++
		for _, r := range batch {
			if r.add != nil {
				j.index[r.add.seq] = len(j.items)
				j.items = append(j.items, *r.add)
				j.written++
			}
			for _, seq := range r.acks {
				j.remove(seq)
			}
		}
	}
	for _, r := range batch {
		r.finish(err)
	}
}

// writeFrame writes frame at off and fsyncs the file. A failed write is
// undone by truncating the file back to off, so that later frames do not
// follow garbage; if that, or the fsync, fails, the file's state is unknown
// and j is marked broken. j.mu must not be held.
func (j *File) writeFrame(frame []byte, off int64) error {
	_, err := j.f.WriteAt(frame, off)
	if err == nil && j.faultWrite != nil {
		err = j.faultWrite()
	}
	if err != nil {
		err = fmt.Errorf("journal: write %s: %w", j.path, err)
		if terr := j.f.Truncate(off); terr != nil {
			return j.breakWith(errors.Join(err, terr))
		}
		if serr := j.f.Sync(); serr != nil {
			return j.breakWith(errors.Join(err, serr))
		}
		return err
	}
	err = j.f.Sync()
	if err == nil && j.faultSync != nil {
		err = j.faultSync()
	}
	if err != nil {
		// After a failed fsync the kernel may have dropped the dirty pages
		// and forgotten the error; nothing written later can be trusted.
		return j.breakWith(fmt.Errorf("journal: sync %s: %w", j.path, err))
	}
	return nil
}

func (j *File) breakWith(err error) error {
	j.mu.Lock()
	j.broken = err
	j.mu.Unlock()
	return err
}

func (j *File) shouldCompact() bool {
	return j.written > j.compact && j.written-j.live() > j.live()
}

// compactNow rewrites the file with only the live entries. j.mu must be held
// and j.writing set (or j not yet shared); it is released during I/O, and the
// in-memory state does not change meanwhile because only the committer
// changes it.
//
// If compaction fails before the rename, the old file is kept and compaction
// is put off until the file has doubled. A failure after the rename (the
// directory fsync or reopening the new file) marks j broken: later appends
// could go to a file that a crash would not leave behind.
func (j *File) compactNow() {
	buf := []byte(fileMagic)
	payload := append([]byte{opBase}, binary.AppendUvarint(nil, j.next)...)
	written := 0
	for _, it := range j.items {
		if it.seq == 0 {
			continue
		}
		payload = appendEntry(payload, it)
		written++
		if len(payload) >= batchBytes {
			buf = appendFrame(buf, payload)
			payload = payload[:0]
		}
	}
	if len(payload) > 0 {
		buf = appendFrame(buf, payload)
	}
	old := j.f
	j.mu.Unlock()
	f, renamed, err := j.replace(buf, old)
	if err != nil {
		err = fmt.Errorf("journal: compact %s: %w", j.path, err)
	}
	j.mu.Lock()
	switch {
	case err == nil:
		j.f = f
		j.size = int64(len(buf))
		j.written = written
		j.squeeze()
		j.compact = j.compactMin
	case !renamed && f != nil:
		j.f = f
		j.compact = 2 * j.written
	default:
		j.f = f
		j.broken = err
	}
}

// replace makes content the file at j.path, crash-safely: it writes and
// fsyncs path+".tmp", renames it over path and fsyncs the directory. old, if
// not nil, is the open journal file; it is closed before the rename (some
// systems refuse to rename over an open file). replace returns the journal
// file opened anew (the old one if the rename failed), and whether the
// rename happened.
func (j *File) replace(content []byte, old *os.File) (f *os.File, renamed bool, err error) {
	tmp := j.tmpPath()
	if err := writeSynced(tmp, content); err != nil {
		os.Remove(tmp)
		return old, false, err
	}
	if old != nil {
		old.Close()
	}
	if err := os.Rename(tmp, j.path); err != nil {
		os.Remove(tmp)
		if old == nil {
			return nil, false, err
		}
		f, rerr := os.OpenFile(j.path, os.O_RDWR, 0)
		if rerr != nil {
			return nil, false, errors.Join(err, fmt.Errorf("reopening the old file: %w", rerr))
		}
		return f, false, err
	}
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		return nil, true, fmt.Errorf("syncing the directory after renaming: %w", err)
	}
	f, err = os.OpenFile(j.path, os.O_RDWR, 0)
	if err != nil {
		return nil, true, fmt.Errorf("reopening after renaming: %w", err)
	}
	return f, true, nil
}

func (j *File) tmpPath() string { return j.path + ".tmp" }

func writeSynced(name string, content []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir fsyncs a directory, making a file created or renamed in it
// durable. Windows cannot open a directory for syncing and does not need it.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close waits for writes in progress, closes the file and releases its lock.
// Every later call, Close included, returns an error wrapping ErrClosed.
func (j *File) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return fmt.Errorf("journal: %s: %w", j.path, ErrClosed)
	}
	j.closed = true
	for j.writing {
		j.idle.Wait()
	}
	f := j.f
	j.f = nil
	j.mu.Unlock()
	var err error
	if f != nil {
		if cerr := f.Close(); cerr != nil {
			err = fmt.Errorf("journal: close %s: %w", j.path, cerr)
		}
	}
	return errors.Join(err, j.lock.unlock())
}
