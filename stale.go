package failoverblob

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/journal"
)

// Serving stale copies (Options.Cache, Options.ServeStale): the lesson of
// edge caches (HTTP's stale-if-error, RFC 5861) that kept sites up through
// a storage outage by serving the last copy they had instead of an error.

// Cache keeps copies of recent reads for a failover bucket to serve while
// every side that could answer is down (Options.Cache). Package cache has
// one in memory and one in a directory.
//
// Entries are opaque bytes the bucket makes and checks (the key, the
// version and a checksum are inside), so a cache that loses, truncates or
// garbles one causes a miss, never a wrong answer. The bucket calls the
// methods concurrently, for one key too: a Get may run alongside a Put or
// Delete of the same key, and must return an entry whole or nothing.
type Cache interface {
	// Get returns the entry stored under key, if the cache holds one. The
	// caller does not modify it.
	Get(key string) (entry []byte, ok bool)
	// Put stores entry under key, replacing any entry there. The cache may
	// keep it for as long as it likes, or not at all (an entry too large
	// for it), and may drop other entries to make room. It keeps entry,
	// which the caller does not modify afterwards.
	Put(key string, entry []byte) error
	// Delete removes the entry stored under key, if any. Once it returns
	// nil, Get does not return that entry again, not even after a restart
	// for a cache that outlives the process. Copies of keys this bucket
	// has since overwritten or deleted would otherwise be served: an error
	// is logged, and a cache that cannot delete should be replaced.
	Delete(key string) error
}

// StaleRead describes a read served from Options.Cache because every side
// that could answer it was down. The reader's As reaches it:
//
//	var sr *failoverblob.StaleRead
//	if r.As(&sr) {
//		log.Printf("%s: served a copy %v old: %v", sr.Key, sr.Age, sr.Cause)
//	}
type StaleRead struct {
	Key string
	// Age is how long before this read the copy was read from a side.
	Age time.Duration
	// Version is the copy's version, when the bucket knew it (the key had
	// pending work when it was read), or empty.
	Version string
	// Cause is why no side answered: the read's error, which wraps
	// ErrUnavailable.
	Cause error
}

// StaleStatus counts the copies kept in Options.Cache and served from it.
type StaleStatus struct {
	// MaxAge is Options.ServeStale; zero when no copy is served.
	MaxAge time.Duration `json:"max_age"`
	// Stored counts the copies put in the cache; Served, the reads
	// answered with one; Refused, the reads that found a copy that could
	// not be served (too old, not the key's newest version, or a side
	// that may hold that version was not known to be down); Missed, those
	// that found none (or one that did not check out).
	Stored  uint64 `json:"stored"`
	Served  uint64 `json:"served"`
	Refused uint64 `json:"refused"`
	Missed  uint64 `json:"missed"`
}

// staleCache is the bucket's use of Options.Cache. A nil *staleCache is no
// cache: its methods do nothing.
type staleCache struct {
	c         Cache
	maxAge    time.Duration // Options.ServeStale
	maxObject int64         // Options.CacheMaxObject
	log       *slog.Logger

	// Every change of a key through the bucket moves its stripe's epoch on,
	// before and after the change reaches the sides (changing). A copy is
	// put in the cache only if its stripe's epoch is what it was before its
	// read began, under the stripe's lock: a read that may have raced a
	// change never leaves its copy behind.
	stripes [64]struct {
		mu    sync.Mutex
		epoch uint64
	}

	stored, served, refused, missed atomic.Uint64
}

func newStaleCache(o Options) *staleCache {
	if o.Cache == nil {
		return nil
	}
	return &staleCache{c: o.Cache, maxAge: max(o.ServeStale, 0), maxObject: o.CacheMaxObject, log: o.Logger}
}

func (c *staleCache) status() StaleStatus {
	if c == nil {
		return StaleStatus{}
	}
	return StaleStatus{MaxAge: c.maxAge, Stored: c.stored.Load(), Served: c.served.Load(), Refused: c.refused.Load(), Missed: c.missed.Load()}
}

func (c *staleCache) stripe(key string) int {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return int(h % uint32(len(c.stripes)))
}

// epoch returns the epoch of key's stripe, to pass to put.
func (c *staleCache) epoch(key string) uint64 {
	if c == nil {
		return 0
	}
	s := &c.stripes[c.stripe(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

func nothing() {}

// changing removes the copy of key, which is about to change, and returns
// the function to call once the change is over (done or failed), which
// removes any copy a read made meanwhile. Removing it before the change
// too means that a process that dies half-way leaves no copy behind.
func (c *staleCache) changing(key string) func() {
	if c == nil {
		return nothing
	}
	c.invalidate(key)
	return func() { c.invalidate(key) }
}

func (c *staleCache) invalidate(key string) {
	s := &c.stripes[c.stripe(key)]
	s.mu.Lock()
	s.epoch++
	err := c.c.Delete(key)
	s.mu.Unlock()
	if err != nil {
		c.log.Error("failoverblob: the cache could not remove a copy of a key that changed; it may serve the old copy", "key", key, "err", err)
	}
}

// put stores cp, unless key's stripe moved on from epoch since its read
// began.
func (c *staleCache) put(cp *cachedCopy, epoch uint64) {
	entry := cp.encode()
	s := &c.stripes[c.stripe(cp.key)]
	s.mu.Lock()
	if s.epoch != epoch {
		s.mu.Unlock()
		return
	}
	err := c.c.Put(cp.key, entry)
	s.mu.Unlock()
	if err != nil {
		c.log.Warn("failoverblob: the cache could not keep a copy", "key", cp.key, "err", err)
		return
	}
	c.stored.Add(1)
}

// get returns the cache's copy of key, if it holds one that checks out.
func (c *staleCache) get(key string) (*cachedCopy, bool) {
	entry, ok := c.c.Get(key)
	if !ok {
		return nil, false
	}
	cp, err := decodeCopy(entry)
	if err == nil && cp.key == key {
		return cp, true
	}
	c.log.Warn("failoverblob: the cache's copy does not check out; dropped", "key", key, "err", err)
	if err := c.c.Delete(key); err != nil {
		c.log.Warn("failoverblob: the cache could not drop a copy", "key", key, "err", err)
	}
	return nil, false
}

// serveStale returns a reader of the cache's copy of key for a read that
// failed with cause, if one may be served: cause wraps ErrUnavailable, the
// copy is younger than Options.ServeStale, it is the key's newest version
// as far as the index knows, and every side that may hold that version is
// down (seen failing by this read, or its breaker open). Otherwise nil.
func (f *Failover) serveStale(key string, offset, length int64, seen *[2]atomic.Bool, cause error) *staleReader {
	c := f.stale
	if c == nil || c.maxAge <= 0 || !errors.Is(cause, ErrUnavailable) {
		return nil
	}
	cp, ok := c.get(key)
	if !ok {
		c.missed.Add(1)
		return nil
	}
	p, pending := f.idx.get(key)
	age := max(time.Since(cp.fetched), 0)
	if age >= c.maxAge || !newestIs(p, pending, cp.version, f.opts.MaxClockSkew) || !f.holdersDown(p, pending, seen) {
		c.refused.Add(1)
		return nil
	}
	c.served.Add(1)
	f.opts.Logger.Warn("failoverblob: read served from the cache", "key", key, "age", age, "cause", cause)
	return newStaleReader(cp, offset, length, StaleRead{Key: key, Age: age, Version: cp.version, Cause: cause})
}

// newestIs reports whether version, a copy's (empty if unknown), is the
// newest version of a key as far as the index knows: p and pending are
// what the index holds. A key with no pending work has no change this
// bucket knows of since its copies were made (its changes remove them).
func newestIs(p keyState, pending bool, version string, skew time.Duration) bool {
	switch {
	case !pending:
		return true
	case version == "":
		return false
	case p.known:
		return !p.deleted && p.latest.v.String() == version
	}
	// Known from journal entries only: the newest of them must be a put
	// of this version.
	return !p.hintPut.v.IsZero() && p.hintPut.v.String() == version &&
		(p.hintDel.v.IsZero() || p.hintPut.compare(p.hintDel, skew) > 0)
}

// holdersDown reports whether every side that may hold the newest version
// of a key (p and pending, from the index) is down: seen failing with an
// outage by the read, or its breaker open, or traffic forced off it.
func (f *Failover) holdersDown(p keyState, pending bool, seen *[2]atomic.Bool) bool {
	holders := [2]bool{true, true}
	switch {
	case pending && p.known:
		holders = p.on
	case !pending && f.opts.Mode == Redirect && !f.opts.StrictReads:
		// The secondary holds only temporary copies of pending keys.
		holders = only(journal.Primary)
	}
	some := false
	for _, s := range f.sides {
		if !holders[s.id] {
			continue
		}
		some = true
		if !seen[s.id].Load() && !s.refusing() {
			return false
		}
	}
	return some
}

// cachedCopy is an object as kept in the cache.
type cachedCopy struct {
	key, version, contentType string
	fetched, modTime          time.Time // when it was read from a side; its ModTime there
	data                      []byte
}

// copyMagic starts every entry: the format's name and version.
var copyMagic = []byte("fbc1")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encode returns the entry for cp: copyMagic, the key, version and
// content type (each length-prefixed), the two times, the data
// (length-prefixed), and a CRC-32C of all of it.
func (cp *cachedCopy) encode() []byte {
	b := make([]byte, 0, len(copyMagic)+len(cp.key)+len(cp.version)+len(cp.contentType)+len(cp.data)+48)
	b = append(b, copyMagic...)
	for _, s := range []string{cp.key, cp.version, cp.contentType} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, cp.fetched.UnixNano())
	b = binary.AppendVarint(b, unixNano(cp.modTime))
	b = binary.AppendUvarint(b, uint64(len(cp.data)))
	b = append(b, cp.data...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadCopy = errors.New("not a well-formed copy")

// decodeCopy reads an entry made by encode. The copy's data is a part of
// entry.
func decodeCopy(entry []byte) (*cachedCopy, error) {
	n := len(entry) - 4
	if n < len(copyMagic) || !bytes.HasPrefix(entry, copyMagic) {
		return nil, errBadCopy
	}
	if crc32.Checksum(entry[:n], castagnoli) != binary.BigEndian.Uint32(entry[n:]) {
		return nil, errors.New("checksum mismatch")
	}
	d := copyDecoder{b: entry[len(copyMagic):n]}
	cp := &cachedCopy{key: string(d.bytes()), version: string(d.bytes()), contentType: string(d.bytes())}
	cp.fetched = time.Unix(0, d.varint())
	cp.modTime = unixTime(d.varint())
	cp.data = d.bytes()
	if d.bad || len(d.b) != 0 {
		return nil, errBadCopy
	}
	return cp, nil
}

// copyDecoder reads the fields of an entry; bad says one did not fit.
type copyDecoder struct {
	b   []byte
	bad bool
}

func (d *copyDecoder) bytes() []byte {
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.bad = true
		return nil
	}
	v := d.b[k : k+int(n)]
	d.b = d.b[k+int(n):]
	return v
}

func (d *copyDecoder) varint() int64 {
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[k:]
	return v
}

// staleReader reads a copy served from the cache.
type staleReader struct {
	r     *bytes.Reader
	attrs driver.ReaderAttributes
	info  StaleRead
}

// newStaleReader reads length bytes of cp from offset (to the end if
// length is negative), as a side's reader would.
func newStaleReader(cp *cachedCopy, offset, length int64, info StaleRead) *staleReader {
	size := int64(len(cp.data))
	from := min(offset, size)
	to := size
	if length >= 0 {
		to = min(from+length, size)
	}
	return &staleReader{
		r:     bytes.NewReader(cp.data[from:to]),
		attrs: driver.ReaderAttributes{ContentType: cp.contentType, ModTime: cp.modTime, Size: size},
		info:  info,
	}
}

func (r *staleReader) Read(p []byte) (int, error) { return r.r.Read(p) }

func (r *staleReader) Close() error { return nil }

func (r *staleReader) Attributes() *driver.ReaderAttributes { return &r.attrs }

// As reaches a *StaleRead (pass a **StaleRead), and nothing else: no side
// served the read.
func (r *staleReader) As(i any) bool {
	p, ok := i.(**StaleRead)
	if ok {
		*p = &r.info
	}
	return ok
}

// filling copies a read of a whole object into the cache as it is read.
// The copy is put once the read has reached the end with every byte.
type filling struct {
	f     *Failover
	epoch uint64
	// before is the index's state of the key before the read began, and
	// pending whether it had pending work.
	before  keyState
	pending bool
	s       *side // the side serving the read
	cp      cachedCopy
	size    int64
	done    bool
}

// add takes in the bytes a Read returned, and its error.
func (fl *filling) add(p []byte, err error) {
	if fl.done {
		return
	}
	switch {
	case err != nil && err != io.EOF, int64(len(fl.cp.data)+len(p)) > fl.size:
		fl.done = true
		return
	}
	fl.cp.data = append(fl.cp.data, p...)
	if err == io.EOF {
		fl.finish()
	}
}

// finish puts the copy if every byte was read and the version it holds is
// known to be what the index says.
func (fl *filling) finish() {
	if fl.done || int64(len(fl.cp.data)) != fl.size {
		fl.done = true
		return
	}
	fl.done = true
	version, ok := fl.f.copyVersion(fl.cp.key, fl.before, fl.pending, fl.s)
	if !ok {
		return
	}
	fl.cp.version = version
	fl.f.stale.put(&fl.cp, fl.epoch)
}

// copyVersion returns the version of what a read of key from side s
// served, given the index's state of the key before the read (before,
// pending): empty for a key without pending work, whose version the index
// does not know, and ok false when the state moved while the read was made.
func (f *Failover) copyVersion(key string, before keyState, pending bool, s *side) (version string, ok bool) {
	now, still := f.idx.get(key)
	switch {
	case !pending && !still:
		return "", true
	case pending && still && before.known && now.known && !now.deleted && now.on[s.id] && now.latest.v == before.latest.v:
		return now.latest.v.String(), true
	}
	return "", false
}
