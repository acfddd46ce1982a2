package chaos

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Every value Check writes is traceable to the operation that wrote
// it. A non-empty value starts with a header naming the value's id and
// length, and the rest is a pattern derived from the id, so a read decodes to
// exactly one write and a value torn between two writes, truncated or padded
// does not decode at all. An empty value carries its id only in its metadata,
// under valueMetadataKey.
const (
	valueMagic       = "fbv1"
	valueHeaderLen   = 24 // magic, id, length, header check
	valueMetadataKey = "failovertest-value"
)

// valueID identifies a written value: the index of the operation that wrote
// it. Zero is no value.
type valueID int64

// splitmix64 is the pattern generator: a good mix of its input, cheap enough
// to regenerate multi-MiB values on every read.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func headerCheck(id valueID, size int64) uint32 {
	return uint32(splitmix64(uint64(id)*31 + uint64(size)))
}

// patternWord is the i-th 8-byte word of the pattern of id.
func patternWord(id valueID, i int) uint64 {
	return splitmix64(uint64(id)<<32 ^ uint64(i))
}

// valueSizeOf returns the size of a value asked to be size bytes: a size
// below valueHeaderLen other than zero is rounded up to it.
func valueSizeOf(size int64) int64 {
	if size == 0 {
		return 0
	}
	return max(size, valueHeaderLen)
}

// fillValue writes into dst the bytes of value id (of the given size) from
// offset off on.
func fillValue(dst []byte, id valueID, size, off int64) {
	if off < valueHeaderLen {
		var h [valueHeaderLen]byte
		copy(h[:], valueMagic)
		binary.BigEndian.PutUint64(h[4:], uint64(id))
		binary.BigEndian.PutUint64(h[12:], uint64(size))
		binary.BigEndian.PutUint32(h[20:], headerCheck(id, size))
		n := copy(dst, h[off:])
		dst, off = dst[n:], off+int64(n)
	}
	for len(dst) > 0 {
		rel := off - valueHeaderLen
		if rel%8 == 0 && len(dst) >= 8 {
			binary.LittleEndian.PutUint64(dst, patternWord(id, int(rel/8)))
			dst, off = dst[8:], off+8
			continue
		}
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], patternWord(id, int(rel/8)))
		n := copy(dst, w[rel%8:])
		dst, off = dst[n:], off+int64(n)
	}
}

// encodeValue returns the bytes of value id of the given size (see
// valueSizeOf).
func encodeValue(id valueID, size int64) []byte {
	size = valueSizeOf(size)
	b := make([]byte, size)
	fillValue(b, id, size, 0)
	return b
}

// valueReader reads value id without holding it in memory; it is an
// io.ReadSeeker, as a file being uploaded is.
type valueReader struct {
	id        valueID
	size, off int64
}

func newValueReader(id valueID, size int64) *valueReader {
	return &valueReader{id: id, size: valueSizeOf(size)}
}

func (r *valueReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.size-r.off)]
	fillValue(p, r.id, r.size, r.off)
	r.off += int64(len(p))
	return len(p), nil
}

func (r *valueReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	}
	if offset < 0 {
		return 0, errors.New("valueReader: negative position")
	}
	r.off = offset
	return offset, nil
}

// valueChecker checks, as they stream past, that bytes are exactly one
// value; its result is what decodeValue would say of them all.
type valueChecker struct {
	head [valueHeaderLen]byte
	n    int64
	id   valueID
	size int64
	err  error
}

var scratchBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (c *valueChecker) Write(p []byte) (int, error) {
	written := len(p)
	for len(p) > 0 && c.err == nil {
		if c.n < valueHeaderLen {
			k := copy(c.head[c.n:], p)
			p, c.n = p[k:], c.n+int64(k)
			if c.n == valueHeaderLen {
				c.id, c.err = decodeHeader(c.head[:])
				c.size = int64(binary.BigEndian.Uint64(c.head[12:]))
			}
			continue
		}
		k := min(len(p), 32<<10)
		if c.n+int64(k) > c.size {
			c.err = fmt.Errorf("%w: value #%d is %d bytes, read more", errTorn, c.id, c.size)
			break
		}
		bp := scratchBufs.Get().(*[]byte)
		want := (*bp)[:k]
		fillValue(want, c.id, c.size, c.n)
		same := bytes.Equal(want, p[:k])
		scratchBufs.Put(bp)
		if !same {
			c.err = fmt.Errorf("%w: value #%d differs from its pattern within bytes %d to %d", errTorn, c.id, c.n, c.n+int64(k))
			break
		}
		p, c.n = p[k:], c.n+int64(k)
	}
	return written, nil
}

// result returns the id of the value streamed, 0 for no bytes at all.
func (c *valueChecker) result() (valueID, int64, error) {
	switch {
	case c.err != nil:
		return c.id, c.n, c.err
	case c.n == 0:
		return 0, 0, nil
	case c.n < valueHeaderLen:
		return 0, c.n, fmt.Errorf("%w: %d bytes", errTorn, c.n)
	case c.n != c.size:
		return c.id, c.n, fmt.Errorf("%w: value #%d is %d bytes, read %d", errTorn, c.id, c.size, c.n)
	}
	return c.id, c.n, nil
}

// decodeHeader checks a value's header and returns its id.
func decodeHeader(h []byte) (valueID, error) {
	if string(h[:4]) != valueMagic {
		return 0, fmt.Errorf("%w: starting %q", errTorn, h[:8])
	}
	id := valueID(binary.BigEndian.Uint64(h[4:]))
	if binary.BigEndian.Uint32(h[20:]) != headerCheck(id, int64(binary.BigEndian.Uint64(h[12:]))) {
		return 0, fmt.Errorf("%w: bad header", errTorn)
	}
	return id, nil
}

var errTorn = errors.New("not a value written by the check (torn, truncated or foreign bytes)")

// decodeValue returns the id of the value b holds; an empty b decodes to
// zero. It fails if b is not byte for byte a value encodeValue made.
func decodeValue(b []byte) (valueID, error) {
	var c valueChecker
	_, _ = c.Write(b)
	id, _, err := c.result()
	return id, err
}
