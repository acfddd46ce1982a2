package failoverblob

import (
	"strconv"
	"testing"
	"time"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/journal"
)

// An alongside entry's Size reads back as the object's size, and tells
// an alongside entry from an ordinary put and from an unseen tombstone.
func TestAlongsideSizeReadsBack(t *testing.T) {
	for _, n := range []int64{0, 1, 1 << 40} {
		e := journal.Entry{Op: journal.Put, Size: alongsideSize(n)}
		if got := e.ObjectSize(); got != n {
			t.Errorf("ObjectSize of an alongside entry of %d bytes = %d", n, got)
		}
		if !alongsideEntry(e.Op, e.Size) || unseenEntry(e.Op, e.Size) {
			t.Errorf("an alongside entry of %d bytes: alongside %t, unseen %t", n, alongsideEntry(e.Op, e.Size), unseenEntry(e.Op, e.Size))
		}
		if o := (journal.Entry{Op: journal.Put, Size: n}); alongsideEntry(o.Op, o.Size) || o.ObjectSize() != n {
			t.Errorf("an ordinary put of %d bytes: alongside %t, ObjectSize %d", n, alongsideEntry(o.Op, o.Size), o.ObjectSize())
		}
	}
	if alongsideEntry(journal.Delete, unseenSize) || alongsideEntry(journal.Delete, -5) {
		t.Error("a tombstone taken for an alongside entry")
	}
}

// The stored time a reconciler's copy keeps counts only for the version it
// names, and only if earlier than the object's modification time: a value
// a caller set under the key before it was reserved is ignored.
func TestObjectStampTakesTheStoredTimeOfItsOwnVersionOnly(t *testing.T) {
	v := Version{Wall: time.Hour.Nanoseconds(), Writer: "w"}
	mod := time.Unix(0, 0).Add(time.Minute)
	for _, c := range []struct {
		stored string
		want   time.Time
	}{
		{v.String() + " 1000", time.Unix(0, 1000)},
		{"5", mod},
		{"other.1 1000", mod},
		{v.String() + " " + strconv.FormatInt(mod.Add(time.Second).UnixNano(), 10), mod},
		{v.String() + " x", mod},
	} {
		attrs := &driver.Attributes{ModTime: mod, Metadata: map[string]string{VersionMetadataKey: v.String(), StoredMetadataKey: c.stored}}
		if got := objectStamp(attrs); !got.at.Equal(c.want) || got.v != v {
			t.Errorf("stored %q: stamp %v at %v, want %v at %v", c.stored, got.v, got.at, v, c.want)
		}
	}
	s := stamp{v: v, at: time.Unix(0, 1000)}
	md := copyMetadata(map[string]string{"mine": "1", VersionMetadataKey: v.String(), StoredMetadataKey: "old"}, s, 5*time.Second)
	if got := objectStamp(&driver.Attributes{ModTime: mod, Metadata: md}); !got.at.Equal(s.at) || md["mine"] != "1" {
		t.Errorf("a copy's metadata %v: stamp at %v, want %v", md, got.at, s.at)
	}
}

// alongsideHeld holds a key from its first finding for the hold, then lets
// its repair go; once the keys it remembers fill it, it forgets those
// found longer ago than the hold (another instance may have settled
// them), and only while it is still full do new ones wait.
func TestAlongsideHeldForgetsKeysPastTheHold(t *testing.T) {
	defer func(n int) { maxAlongsideHeld = n }(maxAlongsideHeld)
	maxAlongsideHeld = 2
	now := time.Unix(1000, 0)
	f := &Failover{opts: Options{Now: func() time.Time { return now }, CallTimeout: time.Second, MaxClockSkew: time.Second}}
	v := Version{Wall: 1, Writer: "w"}
	for _, k := range []string{"a", "b"} {
		if !f.alongsideHeld(k, v) {
			t.Fatalf("%s at its first finding: not held", k)
		}
	}
	if !f.alongsideHeld("c", v) {
		t.Fatal("c, with the memory full of keys within the hold: not held")
	}
	now = now.Add(4 * time.Second) // the hold: 3×CallTimeout + MaxClockSkew
	if f.alongsideHeld("a", v) {
		t.Error("a, found again past the hold: still held")
	}
	if !f.alongsideHeld("c", v) {
		t.Error("c, with room for it: not held")
	}
	// b and c are remembered; d fills the memory, and b, past the hold,
	// is forgotten to make room.
	if !f.alongsideHeld("d", v) {
		t.Error("d: not held")
	}
	if _, ok := f.alongside["b"]; ok || len(f.alongside) != 2 {
		t.Errorf("after d: %d keys remembered, b among them %t; want c and d", len(f.alongside), ok)
	}
	now = now.Add(4 * time.Second)
	if f.alongsideHeld("c", v) {
		t.Error("c, found again past its hold: still held")
	}
}
