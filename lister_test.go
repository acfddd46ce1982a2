package failoverblob

import (
	"context"
	"testing"

	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob/journal"
)

// A key whose state became unknown after a listing resolved the keys in
// its way, and before it read the index (a reading of the journal took in
// another instance's entry of it, say), is resolved again and listed by
// the state found: with three writers it made listings unavailable while
// the sides were healthy (seed 8546 of the fast-clock configuration).
func TestListingResolvesAgainAKeyWhoseStateWasLostSinceItResolved(t *testing.T) {
	ctx := context.Background()
	primary, secondary := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	j := journal.NewMemory()
	f, err := New(ctx, primary, secondary, &Options{Journal: j, ProbeInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // it closes the sides
	f.Force(ForceSecondary)
	if err := f.Bucket().WriteAll(ctx, "k", []byte("redirected"), nil); err != nil {
		t.Fatal(err)
	}
	f.Force(ForceNone)

	// An instance opened over the same journal knows of k's entry, not
	// its state; the listing's first resolution is taken to have missed it.
	g, err := New(ctx, primary, secondary, &Options{Journal: j, ProbeInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.Close() }()
	if p, ok := g.idx.get("k"); !ok || p.known {
		t.Fatalf("k in a new instance's index: %+v, %t; want pending with its state unknown", p, ok)
	}
	l := &lister{f: g, ctx: ctx, opts: &driver.ListOptions{}, pageSize: defaultPageSize}
	l.keys, l.states = g.idx.snapshot("")
	l.lostSinceResolve()
	if err := l.unresolved["k"]; err != nil {
		t.Fatalf("k left unresolved: %v", err)
	}
	if len(l.keys) != 1 || l.keys[0] != "k" || !l.states["k"].holds(journal.Secondary) {
		t.Errorf("the listing's keys %q and states %+v; want k, held by the secondary", l.keys, l.states)
	}
}
