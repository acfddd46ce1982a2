package failoverblob

import (
	"context"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob/journal"
)

// A delete's marker does not replace the marker of a later delete, which a
// write made between the two would otherwise pass: an older delete's slow
// marker write leaves the newer marker, and a newer delete replaces it.
func TestMarkerOfAnOlderDeleteDoesNotReplaceANewerOne(t *testing.T) {
	ctx := context.Background()
	f, err := New(ctx, memblob.OpenBucket(nil), memblob.OpenBucket(nil), &Options{ProbeInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr := f.sides[journal.Primary]
	now := time.Now().UnixNano()
	older := Version{Wall: now - int64(time.Minute), Writer: "a"}
	newer := Version{Wall: now - int64(time.Second), Writer: "b"}
	newest := Version{Wall: now, Writer: "a"}
	for _, c := range []struct {
		write, want Version
	}{{newer, newer}, {older, newer}, {newest, newest}} {
		if err := f.writeMarker(ctx, pr, "k", c.write); err != nil {
			t.Fatalf("writing the marker of %s: %v", c.write, err)
		}
		got, err := f.readMarker(ctx, pr, "k")
		if err != nil {
			t.Fatal(err)
		}
		if got.v != c.want {
			t.Errorf("after writing the marker of %s: the marker is %s, want %s", c.write, got.v, c.want)
		}
	}
}
