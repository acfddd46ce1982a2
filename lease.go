package failoverblob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/journal"
)

// Reconcile leases keep the instances of a fleet that share a journal on
// the buckets from repairing the same keys at once, most of the time. Keys
// fall into leaseShards shards by hash; before a pass repairs a shard's
// keys on a side, the instance takes that shard's lease, an object under
// leasePrefix on the side being repaired, created with IfNotExist and
// taken over, once expired, by a write conditional on the lease it read
// (where the side allows conditional writes; elsewhere the takeover is
// best effort). A pass skips the shards another live instance holds; a
// dead instance's leases expire and its work is picked up.
//
// Leases are an optimisation, never the guard: every repair checks versions
// and writes conditionally whoever holds the lease, so two instances
// repairing one key is wasted work, not damage.
const (
	leaseShards = 64
	leasePrefix = ReservedPrefix + "leases/"
	// The lease's holder and expiry travel in its metadata, so one
	// Attributes call reads a lease.
	leaseHolderKey = "failover-lease-holder"
	leaseUntilKey  = "failover-lease-until"
)

// leaseTTL is how long a lease lasts: three passes.
func (f *Failover) leaseTTL() time.Duration { return 3 * f.opts.ReconcileInterval }

// usesLeases reports whether passes take leases: only with a journal on
// the buckets, which a fleet shares. A local journal has one reconciler.
func (f *Failover) usesLeases() bool { return f.sharedJournal() }

// sharedJournal reports whether other instances may read the journal, and
// act on its entries: a journal on the buckets.
func (f *Failover) sharedJournal() bool {
	_, ok := f.opts.Journal.(*journal.Bucket)
	return ok
}

// shardOf returns the lease shard of key.
func shardOf(key string) int {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return int(h % leaseShards)
}

// newInstanceID returns an id for this instance's leases: the writer id and
// a random suffix, so that two instances given the same writer id do not
// take each other's leases for their own.
func newInstanceID(writer string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return writer + "-" + hex.EncodeToString(b[:])
}

// claim takes or renews the lease of shard for repairs on side dst, and
// reports whether this instance holds it for the pass.
func (f *Failover) claim(ctx context.Context, dst journal.Side, shard int) bool {
	s := f.sides[dst]
	name := leaseShard{dst, shard}.name()
	// A converged bucket holds no lease (passes release theirs): create it
	// in one round trip, and look at the lease there only if that fails.
	if f.writeLease(ctx, s, name, nil) {
		return true
	}
	attrs, err := s.attributes(ctx, f.opts.CallTimeout, name)
	switch {
	case isNotFound(err): // released since
		return f.writeLease(ctx, s, name, nil)
	case err != nil:
		return false
	}
	if f.heldByOther(attrs) {
		return false
	}
	return f.writeLease(ctx, s, name, attrs)
}

// heldByOther reports whether the lease whose attributes are attrs is
// another instance's and has not expired, allowing for MaxClockSkew.
func (f *Failover) heldByOther(attrs *driver.Attributes) bool {
	until, _ := strconv.ParseInt(attrs.Metadata[leaseUntilKey], 10, 64)
	live := time.Now().Add(-f.opts.MaxClockSkew).UnixNano() <= until
	return attrs.Metadata[leaseHolderKey] != f.instance && live
}

// writeLease writes the lease name on s for this instance, conditional on
// prior (nil: the lease must not exist).
func (f *Failover) writeLease(ctx context.Context, s *side, name string, prior *driver.Attributes) bool {
	opts := &driver.WriterOptions{
		Metadata: map[string]string{
			leaseHolderKey: f.instance,
			leaseUntilKey:  strconv.FormatInt(time.Now().Add(f.leaseTTL()).UnixNano(), 10),
		},
		IfNotExist: prior == nil,
	}
	if prior != nil {
		opts.BeforeWrite = s.writeIf(prior)
	}
	err := s.call(ctx, opWrite, f.opts.CallTimeout, func(ctx context.Context) error {
		return s.writeSmall(ctx, name, []byte(f.instance), opts)
	})
	if err != nil && gcerrors.Code(err) != gcerrors.FailedPrecondition {
		f.opts.Logger.Debug("failoverblob: reconcile lease not taken", "lease", name, "err", err)
	}
	return err == nil
}

// claimAhead is how many shards past the one a pass has reached have their
// leases claimed already, so that the pass does not wait for a claim each
// time it reaches a shard, while instances that overlap still split the
// shards between them.
const claimAhead = 3

// claims takes, for one pass, the leases of the shards it repairs, each as
// the pass comes near it, and releases those whose keys were all repaired as
// the pass ends, so that a converged bucket holds none.
type claims struct {
	f     *Failover
	ctx   context.Context
	order []leaseShard       // the shards of the pass's groups, in the order it reaches them
	at    map[leaseShard]int // the index of each shard in order
	next  int                // the claims of order[:next] are started
	wg    sync.WaitGroup     // the claims and releases under way

	mu      sync.Mutex
	taken   map[leaseShard]*claim
	left    map[leaseShard]int  // each shard's groups not finished
	failed  map[leaseShard]bool // shards with a repair that failed
	refused int                 // repairs left to the instance holding their lease
	// unreleased says a release failed: a lease of this instance's may be
	// left behind.
	unreleased bool
	// allStarted says the pass has started every repair it makes.
	allStarted bool
}

// claim is the claim of one lease: ok, once done is closed, says this
// instance holds it.
type claim struct {
	done chan struct{}
	ok   bool
}

// newClaims returns the claims of a pass about to read the journal. Where
// the index knows of work on a side, and both sides take calls freely, the
// lease of the shard a pass starts on (see plan) for that side is claimed
// at once, beside the reading, so that the first repairs do not wait for
// it; a lease so claimed whose shard the reading shows settled is released
// with the others.
func (f *Failover) newClaims(ctx context.Context) *claims {
	c := &claims{f: f, ctx: ctx, at: map[leaseShard]int{}, taken: map[leaseShard]*claim{}, left: map[leaseShard]int{}, failed: map[leaseShard]bool{}}
	if !f.usesLeases() {
		return c
	}
	// Only while both sides take calls freely: a breaker not closed lets
	// few calls through, which the reading and the first repair need.
	if !flowing(f.sides[journal.Primary]) || !flowing(f.sides[journal.Secondary]) {
		return c
	}
	pending := f.idx.pendingSides()
	for _, s := range []journal.Side{journal.Primary, journal.Secondary} {
		if pending[s] {
			c.start(leaseShard{s, shardOf(f.instance)})
		}
	}
	return c
}

// plan orders a pass's groups by shard, from an offset of this instance's
// own, so that passes of several instances that overlap start on different
// shards and split them.
func (c *claims) plan(groups []*keyGroup) {
	if !c.f.usesLeases() {
		return
	}
	off := shardOf(c.f.instance)
	rank := func(g *keyGroup) int { return (shardOf(g.key) - off + leaseShards) % leaseShards }
	sort.SliceStable(groups, func(i, j int) bool { return rank(groups[i]) < rank(groups[j]) })
	for _, g := range groups {
		sh := g.shard()
		if _, ok := c.at[sh]; !ok {
			c.at[sh] = len(c.order)
			c.order = append(c.order, sh)
		}
		c.left[sh]++
	}
}

// shard returns the lease shard of g.
func (g *keyGroup) shard() leaseShard { return leaseShard{g.missing, shardOf(g.key)} }

// allow reports whether the pass may repair g: always without leases (see
// usesLeases), else when this instance holds (or now takes) its shard's
// lease. The pass calls it from one goroutine, in order.
func (c *claims) allow(g *keyGroup) bool {
	if !c.f.usesLeases() {
		return true
	}
	sh := g.shard()
	for end := min(c.at[sh]+claimAhead+1, len(c.order)); c.next < end; c.next++ {
		c.start(c.order[c.next])
	}
	c.mu.Lock()
	cl := c.taken[sh]
	c.mu.Unlock()
	<-cl.done
	if !cl.ok {
		c.mu.Lock()
		c.refused++
		c.mu.Unlock()
	}
	return cl.ok
}

// start claims the lease of sh, beside the pass, unless it is claimed
// already.
func (c *claims) start(sh leaseShard) {
	cl := &claim{done: make(chan struct{})}
	c.mu.Lock()
	if c.taken[sh] != nil {
		c.mu.Unlock()
		return
	}
	c.taken[sh] = cl
	c.mu.Unlock()
	c.wg.Go(func() {
		defer close(cl.done)
		cl.ok = c.f.claim(c.ctx, sh.side, sh.shard)
	})
}

// finished counts a group of the pass repaired (ok) or not. Once the pass
// has started every repair (see dispatched), a shard whose keys have all
// been repaired has its lease released at once, beside the repairs and
// acknowledgements still under way; a shard with a repair that failed
// keeps its lease until it expires.
func (c *claims) finished(g *keyGroup, ok bool) {
	if !c.f.usesLeases() {
		return
	}
	sh := g.shard()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.left[sh]--
	c.failed[sh] = c.failed[sh] || !ok
	if c.allStarted {
		c.releaseIfSettled(sh)
	}
}

// dispatched is called once the pass has started every repair it makes
// (or makes none): the leases of the shards whose keys are all repaired
// already are released. A lease is kept until then, so that an instance
// whose pass overlaps this one leaves the shard alone rather than look
// again at keys this pass settled.
func (c *claims) dispatched() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.allStarted = true
	for sh := range c.taken {
		c.releaseIfSettled(sh)
	}
}

// releaseIfSettled releases the lease of sh, beside the pass, if this
// instance holds it (once its claim is done) and every key of the shard
// was repaired. c.mu is held.
func (c *claims) releaseIfSettled(sh leaseShard) {
	cl := c.taken[sh]
	if cl == nil || c.left[sh] > 0 || c.failed[sh] || c.ctx.Err() != nil {
		return
	}
	c.left[sh] = -1 // released once
	c.wg.Go(func() {
		<-cl.done
		if cl.ok && !c.f.release(c.ctx, sh) {
			c.mu.Lock()
			c.unreleased = true
			c.mu.Unlock()
		}
	})
}

// releasing reports whether the pass has started to release the lease
// named name (see releaseIfSettled): a lease it took, or one whose claim
// is still under way.
func (c *claims) releasing(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for sh, cl := range c.taken {
		if c.left[sh] != -1 || sh.name() != name {
			continue
		}
		select {
		case <-cl.done:
			return cl.ok
		default:
			return true
		}
	}
	return false
}

// abandon releases the leases of a pass that repairs nothing, and waits.
func (c *claims) abandon() {
	c.dispatched()
	c.wait()
}

// wait waits for the claims and releases under way. Leases taken ahead of
// a pass that stopped early are left to expire.
func (c *claims) wait() { c.wg.Wait() }

// leaseShard names one lease: a shard of keys, repaired on one side.
type leaseShard struct {
	side  journal.Side
	shard int
}

// name returns the name of sh's lease object, on the side sh.side.
func (sh leaseShard) name() string {
	return fmt.Sprintf("%s%s/%02d", leasePrefix, sh.side, sh.shard)
}

// release gives up the lease sh once its shard is settled, so that a
// converged bucket holds no lease objects. It leaves a lease that is no
// longer this instance's. It reports whether no lease of this instance's
// is left behind.
func (f *Failover) release(ctx context.Context, sh leaseShard) bool {
	s := f.sides[sh.side]
	name := sh.name()
	attrs, err := s.attributes(ctx, f.opts.CallTimeout, name)
	switch {
	case isNotFound(err):
		return true
	case err != nil:
		return false
	case attrs.Metadata[leaseHolderKey] != f.instance:
		return true
	}
	return s.delete(ctx, f.opts.CallTimeout, name, s.deleteIf(attrs)) == nil
}

// sweepLeases removes the leases no instance holds any more, once this
// instance has nothing pending: its own (a release that failed) and the
// expired ones, which an instance that died during a pass left. A lease
// whose shard still has work is taken over and released by the next pass
// that reaches it, but a lease left after the work was acknowledged would
// stay for good. The deletes are conditional on the lease read, where the
// side allows it, so a lease taken over meanwhile stays. Both sides are
// swept at once; leases for which skip (nil: none) reports true are left
// alone (a pass's own, which it is releasing). It reports whether no other
// lease is left on either side.
func (f *Failover) sweepLeases(ctx context.Context, skip func(name string) bool) bool {
	var swept [2]bool
	var wg sync.WaitGroup
	for i, s := range f.sides {
		wg.Go(func() { swept[i] = f.sweepSide(ctx, s, skip) })
	}
	wg.Wait()
	return swept[0] && swept[1]
}

// sweepSide sweeps the leases of one side (see sweepLeases).
func (f *Failover) sweepSide(ctx context.Context, s *side, skip func(name string) bool) bool {
	var page *driver.ListPage
	err := s.call(ctx, opList, f.opts.CallTimeout, func(ctx context.Context) (err error) {
		page, err = s.d.ListPaged(ctx, &driver.ListOptions{Prefix: leasePrefix, PageSize: 2 * leaseShards})
		return err
	})
	if err != nil {
		return false
	}
	swept := len(page.NextPageToken) == 0
	for _, o := range page.Objects {
		if skip != nil && skip(o.Key) {
			continue
		}
		attrs, err := s.attributes(ctx, f.opts.CallTimeout, o.Key)
		switch {
		case isNotFound(err):
			continue
		case err != nil || f.heldByOther(attrs):
			swept = false
			continue
		}
		if err := s.remove(ctx, f.opts.CallTimeout, o.Key, attrs); err != nil {
			swept = false
		}
	}
	return swept
}

// tidyLeftovers sweeps the leases left behind (see sweepLeases) after a pass
// that leaves nothing pending, as long as some may be left: from New (an
// instance may have died before this one started), and from a pass that had
// work (one holding leases may have died since), until a sweep finds none.
// The delete markers no pass needs any more go too (see markerPrefix): those
// written before the pass's listing began, which therefore held the
// tombstones they guard, and longer ago than landingTime. An idle instance
// costs nothing: two LISTs a side once its work is done. worked says the
// pass had work; listed, when the pass's listing that read the whole
// journal began (zero: it did not read it whole). c (nil: none) is the
// claims of a pass that had work, whose releases may still be under way:
// the sweep goes on beside them, leaves the leases they release to them,
// and waits for them.
func (f *Failover) tidyLeftovers(ctx context.Context, worked bool, listed time.Time, c *claims) {
	if !f.usesLeases() {
		if c != nil {
			c.wait()
		}
		return
	}
	if worked {
		f.leftBehind.Store(true)
	}
	var skip func(string) bool
	if c != nil {
		skip = c.releasing
		defer func() {
			c.wait()
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.unreleased {
				f.leftBehind.Store(true)
			}
		}()
	}
	if listed.IsZero() || ctx.Err() != nil || f.pendingEntries() > 0 || !f.leftBehind.Load() {
		return
	}
	// A marker written during the sweep may be missed by its listing: the
	// flag it set stays.
	written := f.markersWritten.Load()
	before := listed.Add(-f.opts.MaxClockSkew)
	if aged := time.Now().Add(-f.landingTime()); aged.Before(before) {
		before = aged
	}
	var markersSwept [2]bool
	var wg sync.WaitGroup
	for i, s := range f.sides {
		wg.Go(func() { markersSwept[i] = f.sweepMarkers(ctx, s, before) })
	}
	leasesSwept := f.sweepLeases(ctx, skip)
	wg.Wait()
	if leasesSwept && markersSwept[0] && markersSwept[1] && f.markersWritten.Load() == written {
		f.leftBehind.Store(false)
	}
}
