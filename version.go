package failoverblob

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/journal"
)

// VersionMetadataKey is the metadata key under which every write through a
// failover bucket stamps its version. It is reserved: callers may not set it,
// and Attributes hides it.
const VersionMetadataKey = "failover-version"

// StoredMetadataKey is the metadata key under which the reconciler's copy
// of an object whose version came from a clock that ran fast (see
// Options.MaxClockSkew) keeps when the object was first stored: the
// version, a space, and the time in Unix nanoseconds. Such a version is
// ordered by that time, which the copy's own modification time, later,
// would misplace. A value that does not name the object's own version is
// ignored. It is reserved as VersionMetadataKey is.
const StoredMetadataKey = "failover-stored"

// Version orders the writes made through failover buckets. It is a hybrid
// logical clock reading (wall time in nanoseconds plus a logical counter that
// breaks ties and survives a clock that steps back) and the id of the writer
// that took it, so two writers never produce the same version.
//
// The zero Version is older than every stamped one; an object written without
// the library (and so without a version) counts as the zero Version.
type Version struct {
	Wall    int64  // wall-clock nanoseconds since the Unix epoch
	Logical uint32 // tie-breaker within one Wall value
	Writer  string // the writer's id
}

// IsZero reports whether v is the zero Version.
func (v Version) IsZero() bool { return v.Wall == 0 && v.Logical == 0 && v.Writer == "" }

// Compare returns -1, 0 or +1 as v is older than, equal to, or newer than w.
func (v Version) Compare(w Version) int {
	switch {
	case v.Wall != w.Wall:
		return cmpInt(v.Wall < w.Wall)
	case v.Logical != w.Logical:
		return cmpInt(v.Logical < w.Logical)
	default:
		return strings.Compare(v.Writer, w.Writer)
	}
}

func cmpInt(less bool) int {
	if less {
		return -1
	}
	return 1
}

// String encodes v so that encodings sort in version order:
// sixteen hex digits of Wall, a dot, eight of Logical, a dot, the writer id.
// The zero Version encodes as "".
func (v Version) String() string {
	if v.IsZero() {
		return ""
	}
	var b strings.Builder
	b.Grow(26 + len(v.Writer))
	writeHex(&b, uint64(v.Wall), 16)
	b.WriteByte('.')
	writeHex(&b, uint64(v.Logical), 8)
	b.WriteByte('.')
	b.WriteString(v.Writer)
	return b.String()
}

// writeHex writes x in lower-case hex, zero-padded to width digits.
func writeHex(b *strings.Builder, x uint64, width int) {
	const digits = "0123456789abcdef"
	for i := width - 1; i >= 0; i-- {
		b.WriteByte(digits[(x>>(4*uint(i)))&0xf])
	}
}

// ParseVersion decodes a string made by Version.String. The empty string
// decodes to the zero Version.
func ParseVersion(s string) (Version, error) {
	if s == "" {
		return Version{}, nil
	}
	wall, rest, ok1 := strings.Cut(s, ".")
	logical, writer, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || len(wall) != 16 || len(logical) != 8 || writer == "" {
		return Version{}, fmt.Errorf("failoverblob: malformed version %q", s)
	}
	w, err1 := strconv.ParseUint(wall, 16, 64)
	l, err2 := strconv.ParseUint(logical, 16, 32)
	if err1 != nil || err2 != nil {
		return Version{}, fmt.Errorf("failoverblob: malformed version %q", s)
	}
	return Version{Wall: int64(w), Logical: uint32(l), Writer: writer}, nil
}

// versionOf returns the version stamped in an object's metadata; an object
// without one (or with a malformed one) is the zero Version.
func versionOf(md map[string]string) Version {
	s, _ := versionEntry(md)
	v, _ := ParseVersion(s)
	return v
}

// versionEntry finds the version in metadata (see metadataEntry).
func versionEntry(md map[string]string) (string, bool) {
	return metadataEntry(md, VersionMetadataKey)
}

// metadataEntry finds key in metadata as a driver returns it: the
// portable layer lowercases metadata keys, drivers need not.
func metadataEntry(md map[string]string, key string) (string, bool) {
	if v, ok := md[key]; ok {
		return v, true
	}
	for k, v := range md {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// isReservedMetadata reports whether metadata key k is one the failover
// bucket keeps for itself: a caller may not set it, and Attributes hides
// it. Keys are compared folding case, as the read side finds them.
func isReservedMetadata(k string) bool {
	return strings.EqualFold(k, VersionMetadataKey) || strings.EqualFold(k, StoredMetadataKey)
}

// objectStamp is the stamp of an object a side holds, from its attributes:
// its version, placed at when it was stored, which is its modification
// time, or, for a reconciler's copy that kept an earlier time (see
// StoredMetadataKey), that time.
func objectStamp(attrs *driver.Attributes) stamp {
	st := stamp{v: versionOf(attrs.Metadata), at: attrs.ModTime}
	if st.v.IsZero() {
		return st
	}
	val, ok := metadataEntry(attrs.Metadata, StoredMetadataKey)
	if !ok {
		return st
	}
	v, nanos, ok := strings.Cut(val, " ")
	if !ok || v != st.v.String() {
		return st // not this version's (metadata a caller set once)
	}
	if n, err := strconv.ParseInt(nanos, 10, 64); err == nil && n > 0 && (st.at.IsZero() || n < st.at.UnixNano()) {
		st.at = time.Unix(0, n)
	}
	return st
}

// copyMetadata returns the metadata of a reconciler's copy of an object
// stamped s, with metadata md: md, and, for a version from a clock that
// ran fast, when the object was first stored (see StoredMetadataKey).
func copyMetadata(md map[string]string, s stamp, skew time.Duration) map[string]string {
	if !s.fast(skew) {
		return md
	}
	c := make(map[string]string, len(md)+1)
	for k, v := range md {
		if !strings.EqualFold(k, StoredMetadataKey) {
			c[k] = v
		}
	}
	c[StoredMetadataKey] = s.v.String() + " " + strconv.FormatInt(s.at.UnixNano(), 10)
	return c
}

// maxWriterID is the longest writer id, in bytes.
const maxWriterID = 64

// checkWriterID refuses a writer id that could not travel unchanged in
// object metadata on every provider (HTTP headers carry S3's; fileblob
// rewrites what is not valid UTF-8): it must be 1 to 64 letters, digits,
// '.', '_' or '-'.
func checkWriterID(id string) error {
	if id == "" || len(id) > maxWriterID {
		return fmt.Errorf("failoverblob: writer id %q must be 1 to %d characters", id, maxWriterID)
	}
	if strings.IndexFunc(id, func(r rune) bool { return !isWriterIDRune(r) }) >= 0 {
		return fmt.Errorf("failoverblob: writer id %q may hold only letters, digits, '.', '_' and '-'", id)
	}
	return nil
}

// isWriterIDRune reports whether r may be in a writer id: an ASCII letter
// or digit, '.', '_' or '-'.
func isWriterIDRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._-", r)
}

// clock is a hybrid logical clock that hands out strictly increasing versions.
type clock struct {
	mu     sync.Mutex
	last   Version
	writer string
	now    func() time.Time
}

func newClock(writer string, now func() time.Time) *clock {
	if writer == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		writer = hex.EncodeToString(b[:])
	}
	return &clock{writer: writer, last: Version{Writer: writer}, now: now}
}

// Now returns a version newer than every version Now returned or Observe saw.
func (c *clock) Now() Version {
	wall := c.now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if wall > c.last.Wall {
		c.last.Wall, c.last.Logical = wall, 0
	} else {
		c.last.Logical++
	}
	return c.last
}

// Observe moves the clock past v, so versions handed out later are newer
// than a version another writer stamped with a clock ahead of ours.
func (c *clock) Observe(v Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v.Wall > c.last.Wall || (v.Wall == c.last.Wall && v.Logical > c.last.Logical) {
		c.last.Wall, c.last.Logical = v.Wall, v.Logical
	}
}

// stamp is a version with the time it was stored: an object's modification
// time on its side (the provider's clock), or a journal entry's Recorded
// time. The zero time means unknown.
type stamp struct {
	v  Version
	at time.Time
	// unseen marks the tombstone of a Mirror-mode delete that found nothing
	// on the secondary while the primary was down (see
	// mirrorDelete.unseen): it removes from a side only a version that the
	// other side lacks and no entry of a put describes, a write a crash cut
	// between the sides. A version another writer's write put on the
	// secondary after the delete looked there is not its to remove.
	unseen bool
}

// unseenSize is the Size of the journal entry of an unseen tombstone (see
// stamp.unseen); every other delete's entry has Size 0.
const unseenSize = -1

// unseenEntry reports whether an entry of op with size records an unseen
// tombstone.
func unseenEntry(op journal.Op, size int64) bool { return op == journal.Delete && size == unseenSize }

// An alongside entry is the entry of a Mirror-mode write for a side the
// write was committing on too, recorded because the key had pending work
// there (see writer.commitMirror): the side lacks the write only if its
// commit failed, which the writer then records in an ordinary entry, or a
// later change removed it. Its Size is alongsideSize of the object's size;
// an instance that does not know the encoding takes it for an ordinary
// entry, as entries were before.
func alongsideSize(size int64) int64 { return -2 - max(size, 0) }

// alongsideEntry reports whether an entry of op with size is an alongside
// one.
func alongsideEntry(op journal.Op, size int64) bool { return op == journal.Put && size <= -2 }

// entryStampOf is the stamp of the change e records, of version v.
func entryStampOf(e journal.Entry, v Version) stamp {
	return stamp{v: v, at: entryAt(e, v), unseen: unseenEntry(e.Op, e.Size)}
}

// fast reports whether s was stamped by a clock that ran more than skew
// ahead of the time it was stored.
func (s stamp) fast(skew time.Duration) bool {
	return !s.at.IsZero() && !s.v.IsZero() && s.v.Wall > s.at.UnixNano()+int64(skew)
}

// order returns the version that places s among others. A version from a
// clock that ran fast (see fast) says nothing reliable about when it was
// written, so it is placed at the time it was stored instead.
func (s stamp) order(skew time.Duration) Version {
	if !s.fast(skew) {
		return s.v
	}
	v := s.v
	v.Wall = s.at.UnixNano()
	return v
}

// entryAt is the time a journal entry of a change stamped v places the
// change at (see stamp.order): where the journal can tell when its
// storage stored the entry, that time less the time the writer took, by
// its own clock, from stamping the change to recording it (a clock that
// runs fast still measures intervals), so that an entry from a clock that
// ran fast is placed by the storage's clock, and one recorded late (a
// change whose entry could not be recorded at first, see records.keep) at
// when it was made; else when it was recorded.
func entryAt(e journal.Entry, v Version) time.Time {
	if e.Stored.IsZero() {
		return e.Recorded
	}
	if took := e.Recorded.UnixNano() - v.Wall; !e.Recorded.IsZero() && !v.IsZero() && took > 0 {
		return e.Stored.Add(-time.Duration(took))
	}
	return e.Stored
}

// compare returns -1, 0 or +1 as s is older than, the same as, or newer
// than t. The same version is the same change wherever it is stored;
// different versions are compared as order places them, except two
// versions of one writer that both ran fast: its clock orders its own
// changes, while the time a side stored one may be later than the change
// (a copy the reconciler made). A version that ran fast and one that did
// not are placed by order even from one writer: its clock stepped back
// between them (see Options.MaxClockSkew).
func (s stamp) compare(t stamp, skew time.Duration) int {
	if s.v == t.v {
		return 0
	}
	if s.v.Writer == t.v.Writer && s.fast(skew) && t.fast(skew) {
		return s.v.Compare(t.v)
	}
	if c := s.order(skew).Compare(t.order(skew)); c != 0 {
		return c
	}
	return s.v.Compare(t.v)
}

// seen takes note of a version found on a side: the clock moves past it, so
// that this writer's later versions are newer, unless it comes from a clock
// that ran fast (see Options.MaxClockSkew), which is counted and logged
// instead.
func (f *Failover) seen(key string, id journal.Side, st stamp) {
	if st.v.IsZero() {
		return
	}
	skew := f.opts.MaxClockSkew
	limit := f.opts.Now().UnixNano() + int64(skew)
	if !st.fast(skew) && st.v.Wall <= limit {
		f.clock.Observe(st.v)
		return
	}
	f.fastMu.Lock()
	f.fast.FastVersions++
	f.fast.LastFastVersion, f.fast.LastFastKey, f.fast.LastFastSide, f.fast.LastFastAt = st.v.String(), key, id.String(), time.Now()
	f.fastMu.Unlock()
	f.opts.Logger.Warn("failoverblob: a version from a clock ahead by more than MaxClockSkew; ordered by when it was stored",
		"key", key, "side", id.String(), "version", st.v.String(), "stored", st.at, "max_clock_skew", skew)
}
