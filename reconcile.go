package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/failoverblob/failoverblob/journal"
)

// Repair reports what the reconciler did for one key on one side.
type Repair struct {
	Key  string
	Side journal.Side // the side that was repaired
	// Action is what was done to Side.
	Action Action
	// Bytes is the size of the object copied.
	Bytes int64
	// Cleaned reports that the temporary copy on the secondary was removed
	// (Redirect mode).
	Cleaned bool
	// Entries is the number of journal entries acknowledged.
	Entries int
}

// Action is what the reconciler did to the side it repaired.
type Action int

const (
	// ActionNone (the zero value): the side already held the newest change,
	// or no side held the data an entry described.
	ActionNone Action = iota
	// ActionCopied: the newer object was copied onto the side.
	ActionCopied
	// ActionDeleted: a tombstone was applied to the side.
	ActionDeleted
)

// String returns "none", "copied" or "deleted".
func (a Action) String() string {
	switch a {
	case ActionCopied:
		return "copied"
	case ActionDeleted:
		return "deleted"
	case ActionNone:
		return "none"
	default:
		return fmt.Sprintf("Action(%d)", int(a))
	}
}

// Report sums up one Drain.
type Report struct {
	Keys      int   // keys settled
	Copied    int   // objects copied
	Deleted   int   // tombstones applied
	Cleaned   int   // temporary copies removed from the secondary
	Bytes     int64 // bytes copied
	Remaining int   // journal entries still pending afterwards
	// Leased counts the repairs left to another instance of a fleet, which
	// holds their reconcile lease (journal on the buckets only).
	Leased int
}

// add counts a key settled.
func (r *Report) add(rp Repair) {
	r.Keys++
	r.Bytes += rp.Bytes
	switch rp.Action {
	case ActionCopied:
		r.Copied++
	case ActionDeleted:
		r.Deleted++
	}
	if rp.Cleaned {
		r.Cleaned++
	}
}

// Run reconciles until ctx is done or the bucket is closed: every
// ReconcileInterval it drains the journal, repairing the sides that are
// reachable, and every VerifyInterval (if set) it runs the verifier. It
// starts no goroutine that outlives it. It returns nil when the bucket is
// closed and ctx.Err() when ctx is done.
func (f *Failover) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	var verify, probe <-chan time.Time
	if f.opts.VerifyInterval > 0 {
		vt := time.NewTicker(f.opts.VerifyInterval)
		defer vt.Stop()
		verify = vt.C
	}
	if f.opts.ProbeInterval > 0 {
		pt := time.NewTicker(f.opts.ProbeInterval)
		defer pt.Stop()
		probe = pt.C
	}
	f.running.Add(1)
	defer f.running.Add(-1)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.closed:
			return nil
		case <-verify:
			f.verifyPass(ctx)
			continue
		case <-probe:
			f.probeDown(ctx, false)
			continue
		case <-t.C:
		}
		// Every pass reads the journal, so this instance also learns of
		// other instances' pending work.
		if _, err := f.Drain(ctx); err != nil && ctx.Err() == nil {
			f.opts.Logger.Info("failoverblob: reconcile pass incomplete", "err", err)
		}
		t.Reset(f.opts.ReconcileInterval)
	}
}

// verifyPass is Run's pass of Verify, repairing, and logging what it found.
func (f *Failover) verifyPass(ctx context.Context) {
	rep, err := f.Verify(ctx, &VerifyOptions{Repair: true, KeysPerSecond: f.opts.VerifyKeysPerSecond})
	if err != nil && ctx.Err() == nil {
		f.opts.Logger.Info("failoverblob: verify pass incomplete", "err", err)
	}
	if rep.Differing > 0 {
		f.opts.Logger.Warn("failoverblob: verify found the sides apart", "keys", rep.Differing, "repaired", rep.Repaired)
	}
}

// passDone counts a completed Drain pass (Status.Reconcile).
func (f *Failover) passDone() {
	f.lastPass.Store(time.Now().UnixNano())
	f.passes.Add(1)
}

// reconcileStatus is Status.Reconcile.
func (f *Failover) reconcileStatus() ReconcileStatus {
	st := ReconcileStatus{Running: f.running.Load() > 0}
	// Read in the reverse order passDone writes, so LastPass is never older
	// than the pass Passes counts.
	st.Passes = f.passes.Load()
	if ns := f.lastPass.Load(); ns != 0 {
		st.LastPass = time.Unix(0, ns)
	}
	return st
}

// Refresh reads the journal, so that the bucket learns of the pending work
// other instances sharing it recorded (and forgets what they settled):
// their redirected writes and tombstones are then respected by this
// instance's reads, listings, copies and writes. Run refreshes every
// ReconcileInterval, as part of each pass; Refresh is for callers that do
// not run Run, or want to refresh sooner.
func (f *Failover) Refresh(ctx context.Context) error {
	f.drainMu.Lock()
	defer f.drainMu.Unlock()
	_, err := f.refresh(ctx)
	return err
}

// refresh reads the journal into the index (see readJournal) and forgets
// the withdrawn entries the journal has dropped since. Callers hold
// drainMu.
func (f *Failover) refresh(ctx context.Context) ([]journal.Entry, error) {
	listedAt := time.Now()
	entries, err := f.readJournal(ctx)
	if err != nil && !errors.Is(err, journal.ErrPartial) {
		return nil, err
	}
	f.forgetRetracted(listedAt)
	return entries, err
}

// readJournal lists the journal and brings the index up to date with it. A
// journal that could list only one side (journal.ErrPartial) is taken as far
// as it goes, and the error returned; any other error leaves the index as
// it was. It may run alongside a pass (see learn): while a listing is under
// way, the index keeps the entries this process appends and acknowledges,
// so that a listing taken before them does not undo them.
func (f *Failover) readJournal(ctx context.Context) ([]journal.Entry, error) {
	n := f.readingsBegun.Add(1)
	f.idx.listingStarts()
	entries, err := f.opts.Journal.List(ctx)
	if err != nil && !errors.Is(err, journal.ErrPartial) {
		f.idx.listingEnds()
		return nil, fmt.Errorf("failoverblob: reading the journal: %w", err)
	}
	limit := f.opts.Now().UnixNano() + int64(f.opts.MaxClockSkew)
	for _, e := range entries {
		if v, perr := ParseVersion(e.Version); perr == nil && v.Wall <= limit {
			f.clock.Observe(v)
		}
	}
	// Entries this process withdrew (see retract) whose dropping failed are
	// no hints: the index leaves them out, and Drain acknowledges them.
	// They are told apart under the index's lock, so that a withdrawal
	// either comes before (the entry is left out) or after (its unhint
	// undoes what the listing counted).
	f.idx.sync(entries, err == nil, f.isRetracted)
	for {
		last := f.readingsTaken.Load()
		if last >= n || f.readingsTaken.CompareAndSwap(last, n) {
			return entries, err
		}
	}
}

// learn reads the journal into the index, unless a reading begun after
// the first since readings has been taken in already: for a read that
// found a copy on the secondary that no entry this instance knows of
// describes, after since readings had begun. Reads that need it at once
// share one reading.
func (f *Failover) learn(ctx context.Context, since int64) error {
	select {
	case f.learning <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-f.learning }()
	if f.readingsTaken.Load() > since {
		return nil
	}
	if _, err := f.readJournal(ctx); err != nil && !errors.Is(err, journal.ErrPartial) {
		return err
	}
	return nil
}

// Drain makes one pass over the journal: for each key with pending entries
// it brings the side that is missing a change up to the newest version that
// exists (never overwriting a newer object), applies tombstones, verifies the
// MD5 of each copy, removes the temporary copy from the secondary in
// Redirect mode, and acknowledges the entries. Keys whose sides are down are
// left pending and reported in the error. At most ReconcileConcurrency keys
// are repaired at once; a key's entries are acknowledged beside the next
// repairs, at most ReconcileConcurrency acknowledgements at once. With the
// journal on the buckets, the leases of the shards repaired are claimed a
// few shards ahead of the repairs, and released together as the pass ends.
// The goroutines end before Drain returns. Passes do not overlap: a Drain
// called during another waits for it.
func (f *Failover) Drain(ctx context.Context) (Report, error) {
	// One pass at a time: two passes over the same listing would
	// acknowledge entries twice.
	f.drainMu.Lock()
	defer f.drainMu.Unlock()
	defer f.passDone()
	if f.opts.ProbeInterval > 0 {
		f.probeDown(ctx, true) // a side healed since its breaker opened repairs now
	}
	keptErr := f.recordKept(ctx)
	claims := f.newClaims(ctx)
	listedAt := time.Now()
	entries, listErr := f.refresh(ctx)
	if listErr != nil && !errors.Is(listErr, journal.ErrPartial) {
		claims.abandon()
		return Report{Remaining: f.pendingEntries()}, errors.Join(listErr, keptErr)
	}
	listErr = errors.Join(listErr, keptErr)
	if len(entries) == 0 {
		claims.dispatched()
		f.tidyLeftovers(ctx, false, completeAt(listedAt, listErr), claims)
		return Report{Remaining: f.pendingEntries()}, listErr
	}
	if err := f.checkDistinct(ctx); err != nil {
		claims.abandon()
		return Report{Remaining: f.pendingEntries()}, errors.Join(err, listErr)
	}
	groups := groupEntries(entries)
	claims.plan(groups)
	p := &pass{f: f, ctx: ctx, listedAt: listedAt, claims: claims}
	if listErr == nil {
		p.read = listedAt
	}
	p.run(groups)
	// The leases left behind are looked for beside the last releases.
	f.tidyLeftovers(ctx, true, completeAt(listedAt, listErr), p.claims)
	p.rep.Remaining, _ = f.idx.stats()
	p.rep.Leased = p.claims.refused
	if err := ctx.Err(); err != nil {
		p.errs = append(p.errs, err)
	}
	if listErr != nil {
		p.errs = append(p.errs, listErr)
	}
	return p.rep, errors.Join(p.errs...)
}

// keyGroup is the journal entries of one key for one missing side, which
// one repair settles.
type keyGroup struct {
	key     string
	missing journal.Side
	entries []journal.Entry
	// other is the group of the same key's entries for the other side, or
	// nil: changes a repair weighs, though it does not settle them.
	other *keyGroup
}

// others returns the entries of the other side's group of g's key.
func (g *keyGroup) others() []journal.Entry {
	if g.other == nil {
		return nil
	}
	return g.other.entries
}

// groupEntries groups entries by key and missing side, in the order each
// group first appears, and pairs the two groups of a key.
func groupEntries(entries []journal.Entry) []*keyGroup {
	type id struct {
		key     string
		missing journal.Side
	}
	byID := map[id]*keyGroup{}
	var groups []*keyGroup
	for _, e := range entries {
		g := byID[id{e.Key, e.Missing}]
		if g == nil {
			g = &keyGroup{key: e.Key, missing: e.Missing}
			byID[id{e.Key, e.Missing}] = g
			groups = append(groups, g)
		}
		g.entries = append(g.entries, e)
	}
	for _, g := range groups {
		g.other = byID[id{g.key, g.missing.Other()}]
	}
	return groups
}

// pass is one Drain's repairs, and what they add up to.
type pass struct {
	f        *Failover
	ctx      context.Context
	listedAt time.Time // when the journal was listed
	read     time.Time // listedAt, if the listing read every entry
	claims   *claims   // the leases of the shards repaired

	// acks takes the repairs whose entries are to be acknowledged, which
	// goes on beside the next repairs.
	acks chan settledGroup

	mu   sync.Mutex
	rep  Report
	errs []error
	cbMu sync.Mutex // serializes OnRepair, apart from the report's lock
}

// settledGroup is a group repaired, with the entries the repair settled.
type settledGroup struct {
	g       *keyGroup
	r       Repair
	entries []journal.Entry
}

// run settles the groups and returns when all are settled or the context
// is done. ReconcileConcurrency workers repair them, and as many others
// acknowledge their entries; all have ended when run returns.
func (p *pass) run(groups []*keyGroup) {
	n := p.f.opts.ReconcileConcurrency
	work := make(chan *keyGroup, n) // a worker that finishes a repair finds the next one waiting
	p.acks = make(chan settledGroup, n)
	var repairers, ackers sync.WaitGroup
	for range n {
		repairers.Go(func() {
			for g := range work {
				p.settle(g)
			}
		})
		ackers.Go(func() {
			for sg := range p.acks {
				p.done(sg.g, sg.r, p.f.ackEntries(p.ctx, sg.g.key, sg.g.missing, sg.entries, p.listedAt))
			}
		})
	}
	// The first repair alone while a side does not take calls freely:
	// while a breaker is half-open it is the probe, and the others would
	// only be refused.
	first := !flowing(p.f.sides[journal.Primary]) || !flowing(p.f.sides[journal.Secondary])
	for _, g := range groups {
		if p.ctx.Err() != nil {
			break
		}
		if !p.claims.allow(g) {
			continue
		}
		if first {
			first = false
			p.settle(g)
			continue
		}
		work <- g
	}
	close(work)
	if p.ctx.Err() == nil {
		p.claims.dispatched()
	}
	repairers.Wait()
	close(p.acks)
	ackers.Wait()
}

// settle repairs one group and hands its entries to be acknowledged beside
// the next repairs: the repair holds the key's lock, the acknowledgement
// does not need it.
func (p *pass) settle(g *keyGroup) {
	r, settled, err := p.f.repair(p.ctx, g.key, g.missing, g.entries, g.others(), p.read)
	// The shard's lease may go once its keys are repaired: an entry whose
	// acknowledgement fails is settled again by a later pass, whoever
	// holds the lease then.
	p.claims.finished(g, err == nil)
	if errors.Is(err, errRepairDeferred) {
		return // its entries stay for a later pass; no failure
	}
	if err != nil || len(settled) == 0 {
		p.done(g, r, err)
		return
	}
	p.acks <- settledGroup{g, r, settled}
}

// done takes in the outcome of a group's repair and acknowledgement: it
// counts a settled group in the telemetry and tells OnRepair of it, and
// counts it in the report.
func (p *pass) done(g *keyGroup, r Repair, err error) {
	if err == nil {
		p.f.tel.repaired(p.ctx, r)
	}
	if err == nil && p.f.opts.OnRepair != nil {
		p.cbMu.Lock()
		p.f.opts.OnRepair(r)
		p.cbMu.Unlock()
	}
	p.mu.Lock()
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("repairing %q on the %s: %w", g.key, g.missing, err))
	} else {
		p.rep.add(r)
	}
	p.mu.Unlock()
}

// pendingEntries returns the number of pending journal entries.
func (f *Failover) pendingEntries() int {
	n, _ := f.idx.stats()
	return n
}

// completeAt returns when a listing of the journal that began at listedAt
// and ended with err read every entry: listedAt, or zero if it did not.
func completeAt(listedAt time.Time, err error) time.Time {
	if err != nil {
		return time.Time{}
	}
	return listedAt
}
