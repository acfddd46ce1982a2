package journal_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

func TestBucket(t *testing.T) {
	testJournal(t, func(t *testing.T) journal.Journal {
		p, s := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
		t.Cleanup(func() { p.Close(); s.Close() })
		return journal.NewBucket(p, s, nil)
	})
}

// On fileblob sides every part of an entry's name is a file name, which
// file systems bound; entries for long keys, and odd bytes, still round-trip.
func TestBucketOnFileSides(t *testing.T) {
	testJournal(t, func(t *testing.T) journal.Journal {
		var sides [2]*blob.Bucket
		for i := range sides {
			b, err := fileblob.OpenBucket(t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			sides[i] = b
		}
		return journal.NewBucket(sides[0], sides[1], nil)
	})
}

// An entry is kept on the side holding the data it describes (the side
// that is not Missing), on the other side when that one is down, and List
// returns what it can read when a side is down, with ErrPartial.
func TestBucketKeepsEntriesWithTheData(t *testing.T) {
	ctx := context.Background()
	raw := [2]*blob.Bucket{memblob.OpenBucket(nil), memblob.OpenBucket(nil)}
	var sides [2]*blob.Bucket
	var faults [2]*failovertest.Injector
	for i := range raw {
		defer raw[i].Close()
		sides[i], faults[i] = failovertest.Wrap(raw[i], nil)
	}
	j := journal.NewBucket(sides[0], sides[1], nil)
	long := strings.Repeat("k", 900)
	for _, e := range []journal.Entry{
		{Key: "redirected", Version: "v1", Missing: journal.Primary},
		{Key: "mirrored", Version: "v2", Missing: journal.Secondary},
		{Key: long, Version: "v3", Missing: journal.Primary},
	} {
		if _, err := j.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	count := func(b *blob.Bucket) int {
		objs, _, err := b.ListPage(ctx, blob.FirstPageToken, 100, &blob.ListOptions{Prefix: journal.BucketPrefix})
		if err != nil {
			t.Fatal(err)
		}
		return len(objs)
	}
	if p, s := count(raw[0]), count(raw[1]); p != 1 || s != 2 {
		t.Errorf("entry objects: %d on the primary, %d on the secondary; want 1 and 2", p, s)
	}

	faults[1].Outage(nil)
	if _, err := j.Append(ctx, journal.Entry{Key: "fallback", Version: "v4", Missing: journal.Primary}); err != nil {
		t.Fatalf("Append with the side holding the data down: %v, want it kept on the other side", err)
	}
	es, err := j.List(ctx)
	if !errors.Is(err, journal.ErrPartial) {
		t.Errorf("List with the secondary down: error %v, want ErrPartial", err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Key)
	}
	if want := []string{"mirrored", "fallback"}; !slices.Equal(got, want) {
		t.Errorf("List with the secondary down: %q, want %q", got, want)
	}
	faults[0].Outage(nil)
	if es, err := j.List(ctx); !errors.Is(err, journal.ErrPartial) || len(es) != 0 {
		t.Errorf("List with both sides down: %d entries, %v; want none, with ErrPartial", len(es), err)
	}
	if _, err := j.Append(ctx, journal.Entry{Key: "nowhere", Version: "v5"}); err == nil {
		t.Error("Append with both sides down: got nil error")
	}
	faults[0].Heal()
	faults[1].Heal()
	es, err = j.List(ctx)
	if err != nil || len(es) != 4 {
		t.Fatalf("List after heal: %d entries, %v; want 4", len(es), err)
	}
	for _, e := range es {
		if e.Key == long && e.Version != "v3" {
			t.Errorf("long key's entry: version %q, want v3", e.Version)
		}
	}
}
