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
	raw, j, faults := faultyBucketJournal(t)
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

// An append whose write reaches its side but reports a failure is stored on
// the other side too: the entry is listed once, and one acknowledgement
// removes both copies, so no orphan entry outlives it.
func TestBucketAppendStoredOnBothSides(t *testing.T) {
	ctx := context.Background()
	rawP, rawS := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	defer rawP.Close()
	defer rawS.Close()
	sec, in := failovertest.Wrap(rawS, nil)
	defer sec.Close()
	j := journal.NewBucket(rawP, sec, nil)
	// An entry the primary misses is kept on the secondary, whose write
	// applies and reports an outage, once.
	in.Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
	id, err := j.Append(ctx, journal.Entry{Key: "k", Op: journal.Put, Version: "v1", Missing: journal.Primary})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []*blob.Bucket{rawP, rawS} {
		objs, _, err := b.ListPage(ctx, blob.FirstPageToken, 10, &blob.ListOptions{Prefix: journal.BucketPrefix})
		if err != nil || len(objs) != 1 {
			t.Fatalf("entry objects on a side after the append: %d, %v; want 1 on each", len(objs), err)
		}
	}
	es, err := j.List(ctx)
	if err != nil || len(es) != 1 || es[0].ID != id {
		t.Fatalf("List = %+v, %v; want the one entry, ID %q", es, err, id)
	}
	if err := j.Ack(ctx, id); err != nil {
		t.Fatal(err)
	}
	if es, err := j.List(ctx); err != nil || len(es) != 0 {
		t.Fatalf("List after Ack = %+v, %v; want none", es, err)
	}
}

// EntryInName reads an entry, and the journal that appended it, from the name of the object
// that keeps it, as a tool watching the journal's objects sees it; an
// entry too long for a name, and a name that is no entry's, are not read.
func TestEntryInName(t *testing.T) {
	ctx := context.Background()
	p, s := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	defer p.Close()
	defer s.Close()
	j := journal.NewBucket(p, s, nil)
	short := journal.Entry{Key: "k", Op: journal.Delete, Version: "v1", Missing: journal.Secondary}
	long := journal.Entry{Key: strings.Repeat("k", 600), Op: journal.Put, Version: "v2", Missing: journal.Secondary}
	for _, e := range []journal.Entry{short, long} {
		if _, err := j.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	objs, _, err := p.ListPage(ctx, blob.FirstPageToken, 10, nil)
	if err != nil || len(objs) != 2 {
		t.Fatalf("the primary lists %d objects, %v; want the two entries", len(objs), err)
	}
	read := 0
	for _, o := range objs {
		e, writer, ok := journal.EntryInName(o.Key)
		if !ok {
			continue
		}
		read++
		if e.Key != short.Key || e.Op != short.Op || e.Version != short.Version || e.Missing != short.Missing {
			t.Errorf("EntryInName(%q) = %+v; want %+v", o.Key, e, short)
		}
		if writer == "" || !strings.HasPrefix(o.Key, journal.BucketPrefix+writer+"/") {
			t.Errorf("EntryInName(%q) gives the journal %q, which does not name it", o.Key, writer)
		}
	}
	if read != 1 {
		t.Errorf("entries read from names: %d, want 1 (the long one is in its object's body)", read)
	}
	if _, _, ok := journal.EntryInName("k"); ok {
		t.Error("EntryInName read an entry from a name that is no entry's")
	}
}

// An entry kept on both sides (its append on one side failed, and stored
// it all the same) and listed while one side cannot be listed is
// acknowledged on both: acknowledged on the side listed alone, it stayed on
// the other, and a later listing found it again, a change already repaired
// made pending once more.
func TestBucketAcknowledgesAnEntryListedInPartOnBothSides(t *testing.T) {
	ctx := context.Background()
	raw, j, faults := faultyBucketJournal(t)
	// The append to the primary stores the entry and reports a failure; it
	// is then stored on the secondary too.
	faults[journal.Primary].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
	if _, err := j.Append(ctx, journal.Entry{Key: "k", Op: journal.Delete, Version: "v1", Missing: journal.Secondary}); err != nil {
		t.Fatal(err)
	}
	for s := range raw {
		objs, _, err := raw[s].ListPage(ctx, blob.FirstPageToken, 10, &blob.ListOptions{Prefix: journal.BucketPrefix})
		if err != nil || len(objs) != 1 {
			t.Fatalf("side %d holds %d entries (%v); want the entry on both", s, len(objs), err)
		}
	}

	faults[journal.Secondary].Set(failovertest.OpList, failovertest.Fault{})
	listed, err := j.List(ctx)
	if !errors.Is(err, journal.ErrPartial) || len(listed) != 1 {
		t.Fatalf("List with the secondary failing = %d entries, %v; want 1 and ErrPartial", len(listed), err)
	}
	faults[journal.Secondary].Clear(failovertest.OpList)
	if err := j.Ack(ctx, listed[0].ID); err != nil {
		t.Fatal(err)
	}
	if again, err := j.List(ctx); err != nil || len(again) != 0 {
		t.Errorf("List after the entry was acknowledged = %v, %v; want none", again, err)
	}
}

// faultyBucketJournal returns a journal on two in-memory sides, each
// behind a fault injector, with the sides themselves.
func faultyBucketJournal(t *testing.T) (raw [2]*blob.Bucket, j *journal.Bucket, faults [2]*failovertest.Injector) {
	var sides [2]*blob.Bucket
	for i := range raw {
		raw[i] = memblob.OpenBucket(nil)
		t.Cleanup(func() { raw[i].Close() })
		sides[i], faults[i] = failovertest.Wrap(raw[i], nil)
	}
	return raw, journal.NewBucket(sides[0], sides[1], nil), faults
}

// Appended tells the entries a journal appended from those another
// journal over the same sides appended (another instance's, or an earlier
// opening's), whichever side keeps them.
func TestBucketAppendedTellsItsOwnEntries(t *testing.T) {
	ctx := context.Background()
	p, s := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	defer p.Close()
	defer s.Close()
	mine, other := journal.NewBucket(p, s, nil), journal.NewBucket(p, s, nil)
	own := map[string]bool{}
	for i, j := range []*journal.Bucket{mine, other, mine, other} {
		missing := journal.Side(i / 2)
		id, err := j.Append(ctx, journal.Entry{Key: "k", Op: journal.Put, Version: "v", Missing: missing})
		if err != nil {
			t.Fatal(err)
		}
		if mine.Appended(id) != (j == mine) || other.Appended(id) != (j == other) {
			t.Errorf("entry %q appended by the %s journal: Appended says first %t, second %t", id, map[bool]string{true: "first", false: "second"}[j == mine], mine.Appended(id), other.Appended(id))
		}
		own[id] = j == mine
	}
	es, err := mine.List(ctx)
	if err != nil || len(es) != 4 {
		t.Fatalf("List = %+v, %v; want 4 entries", es, err)
	}
	for _, e := range es {
		if mine.Appended(e.ID) != own[e.ID] {
			t.Errorf("listed entry %q: Appended = %t, want %t", e.ID, mine.Appended(e.ID), own[e.ID])
		}
	}
	for _, id := range []string{"", "p:", "x:" + journal.BucketPrefix, "p:other/prefix"} {
		if mine.Appended(id) {
			t.Errorf("Appended(%q) = true, want false", id)
		}
	}
}
