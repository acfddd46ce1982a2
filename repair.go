package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/journal"
)

// repair settles one key on the side missing, given the journal entries that
// say it is missing changes. It holds the key's lock, so the key's writes in
// this process wait for it. It does not acknowledge the entries: it returns
// those it settled (withdrawn ones included), for the caller to acknowledge
// (see ackEntries) once the key's lock is released. An entry acknowledged later than the repair is
// harmless: meanwhile the key reads as pending, from the side the repair
// left it on.
//
// others are the entries of the key listed for the other side: changes
// too (a tombstone recorded for the secondary is a delete the primary
// has), which the repair orders the key's changes by, and leaves for that
// side's repair to settle.
//
// read is when a listing of the journal that read every entry began, the
// one entries come from (zero if it could not read them all).
func (f *Failover) repair(ctx context.Context, key string, missing journal.Side, entries, others []journal.Entry, read time.Time) (Repair, []journal.Entry, error) {
	defer f.locks.lock(key).Unlock()
	defer f.stale.changing(key)()
	// Entries withdrawn since the journal was listed (a refused delete's
	// tombstone, say) must not be applied; they are acknowledged with the
	// others, as their withdrawal may have failed to drop them.
	all := entries
	entries = f.unretracted(entries)
	r := &repairKey{
		f: f, ctx: ctx, key: key, skew: f.opts.MaxClockSkew,
		dst: f.sides[missing], src: f.sides[missing.Other()],
		// The secondary holds only temporary copies in Redirect mode.
		temporary: f.opts.Mode == Redirect && missing == journal.Primary,
		partial:   read.IsZero() && f.sharedJournal(),
		listed:    read,
		rep:       Repair{Key: key, Side: missing, Entries: len(entries)},
	}
	if len(entries) == 0 {
		return r.rep, all, nil
	}
	changes, err := f.changesOf(key, missing, append(entries[:len(entries):len(entries)], f.unretracted(others)...), read)
	if errors.Is(err, errRepairDeferred) {
		f.opts.Logger.Debug("failoverblob: repair deferred", "key", key, "side", missing.String(), "reason", err)
		return r.rep, nil, err
	}
	if err != nil {
		return r.rep, nil, err
	}
	defer r.dropSource()
	if err := r.inspect(changes); err != nil {
		if !r.refused(err) {
			return r.rep, nil, err
		}
		// Entries of changes that failed on a key the sides refuse (a
		// name fileblob cannot store, say), whose withdrawal could not
		// drop them: no side holds data of the key, so there is nothing
		// to repair, and nothing ever will be.
		f.opts.Logger.Warn("failoverblob: a side refuses a key with pending entries, and neither side holds it; acknowledging them", "key", key, "side", missing.String(), "error", err)
		return r.rep, all, nil
	}
	if err := r.apply(changes); err != nil {
		if errors.Is(err, errRepairDeferred) {
			f.opts.Logger.Debug("failoverblob: repair deferred", "key", key, "side", missing.String(), "reason", err)
		}
		return r.rep, nil, err
	}
	if err := r.cleanUp(); err != nil {
		return r.rep, nil, err
	}
	f.alongsideSettled(key)
	f.opts.Logger.Info("failoverblob: repaired", "key", key, "side", missing.String(), "action", r.rep.Action.String(), "bytes", r.rep.Bytes, "cleaned", r.rep.Cleaned)
	if r.partial {
		// The part of the journal not read may hold older entries of the
		// key, which would then outlive the entries acknowledged here and
		// stand for the key's state alone: a tombstone older than a put
		// whose entry went would make the key read as deleted while the
		// side holding the put is down. The entries wait for a pass that
		// reads the whole journal, which settles them with nothing to do.
		return r.rep, nil, fmt.Errorf("%w: the journal was not read whole; the entries of %q wait for a listing that is", errRepairDeferred, key)
	}
	return r.rep, all, nil
}

// unretracted returns the entries that were not withdrawn (see retract).
func (f *Failover) unretracted(entries []journal.Entry) []journal.Entry {
	live := entries[:0:0]
	for _, e := range entries {
		if !f.isRetracted(e.ID) {
			live = append(live, e)
		}
	}
	return live
}

// ackEntries acknowledges the entries a repair settled, in the journal and
// in the index, the newest last. A journal on the buckets deletes entries
// one request each, so a crash part-way leaves some; the newest among them
// is then still the key's newest change, which an instance that reads the
// journal takes for the key's state while the side holding the data is
// down. Left alone, an older tombstone would make the put the repair just
// carried over read as not found.
func (f *Failover) ackEntries(ctx context.Context, key string, missing journal.Side, entries []journal.Entry, listedAt time.Time) error {
	ids := make([]string, len(entries))
	newest := 0
	for i, e := range entries {
		ids[i] = e.ID
		if entryStamp(e).compare(entryStamp(entries[newest]), f.opts.MaxClockSkew) > 0 {
			newest = i
		}
	}
	ids[newest], ids[len(ids)-1] = ids[len(ids)-1], ids[newest]
	for _, batch := range [][]string{ids[:len(ids)-1], ids[len(ids)-1:]} {
		if len(batch) == 0 {
			continue
		}
		if err := f.opts.Journal.Ack(ctx, batch...); err != nil {
			return fmt.Errorf("acknowledging journal entries: %w", err)
		}
	}
	f.idx.acked(key, missing, ids, listedAt)
	f.dropped(ids)
	return nil
}

// entryStamp is the stamp of the change e records, as the index orders
// its hints: an unparsable version is the zero one.
func entryStamp(e journal.Entry) stamp {
	v, _ := ParseVersion(e.Version)
	return entryStampOf(e, v)
}

// repairKey is the repair of one key on one side: dst, the side missing
// changes, from src, the other.
type repairKey struct {
	f         *Failover
	ctx       context.Context
	key       string
	skew      time.Duration
	dst, src  *side
	temporary bool // src holds only a temporary copy (Redirect mode)
	// partial says the pass's listing of a journal other instances write
	// could not read every entry: a tombstone it missed may be why dst
	// lacks the key (see applyPut).
	partial bool
	// listed is when the pass's listing that read every entry began (zero:
	// it could not read them all).
	listed time.Time

	have, from sideObject // what dst and src hold
	// source is a reader of the key on src opened beside the look at
	// src's attributes (nil: none), for a copy to use or dropSource to
	// close.
	source *reader
	rep    Repair
}

// inspect reads what each side holds. With both sides' breakers closed it
// asks both at once and, where the newest of changes is a put, which src
// should hold for a copy, also opens src's object for reading at the same
// time (see copyObject for how the bytes read are tied to the attributes
// read); the reader is dropped if no copy is made. Otherwise it asks dst
// first, and src only if dst answered: a side that is down fails the
// repair at once, without calls to the other, and a breaker that is not
// closed lets through one call at a time.
func (r *repairKey) inspect(changes []change) (err error) {
	if !flowing(r.dst) || !flowing(r.src) {
		if r.have, err = r.f.inspect(r.ctx, r.dst, r.key); err != nil {
			return err
		}
		r.from, err = r.f.inspect(r.ctx, r.src, r.key)
		return err
	}
	var wg sync.WaitGroup
	var dstErr error
	wg.Go(func() { r.have, dstErr = r.f.inspect(r.ctx, r.dst, r.key) })
	if len(changes) > 0 && changes[0].op == journal.Put {
		wg.Go(func() {
			// A failure is left for the copy, which opens the object
			// again if it needs it.
			r.source, _ = r.f.openReader(r.ctx, r.src, r.key, 0, -1, &driver.ReaderOptions{})
		})
	}
	var srcErr error
	r.from, srcErr = r.f.inspect(r.ctx, r.src, r.key)
	wg.Wait()
	return errors.Join(dstErr, srcErr)
}

// refused reports, after inspect failed with err, whether a side refused
// the key and neither side holds it (see Failover.refusedNowhere).
func (r *repairKey) refused(err error) bool {
	return r.f.refusedNowhere(r.ctx, r.key, err, false)
}

// refusedNowhere reports whether err, from asking the sides about key, is
// a refusal of the key itself (a name fileblob cannot store, say) and
// neither side holds the key. A refusal is an answer, not an outage; as
// drivers give an error they do not recognize the same code (Unknown)
// whatever it means, and an outage may not show as one, the refusal alone
// proves nothing: each side must also answer a listing of the key's
// prefix without it. A side that holds the key lists it, so a key is taken
// for refused only when no data of it exists to be lost. With bestEffort
// (a listing that may leave out what a side that is down holds), a side
// that cannot be listed for an outage is not asked.
func (f *Failover) refusedNowhere(ctx context.Context, key string, err error, bestEffort bool) bool {
	if ctx.Err() != nil || errors.Is(err, ErrUnavailable) || isHookError(err) {
		return false
	}
	for _, s := range f.sides {
		if s.outage(ctx, err) {
			return false
		}
	}
	for _, s := range f.sides {
		held, err := f.lists(ctx, s, key)
		switch {
		case err != nil && bestEffort && s.outage(ctx, err):
		case err != nil, held:
			return false
		}
	}
	return true
}

// lists reports whether a listing of s under the prefix key shows the key
// itself, reading at most refusedPages pages (a listing it cannot finish
// is an error).
func (f *Failover) lists(ctx context.Context, s *side, key string) (bool, error) {
	opts := driver.ListOptions{Prefix: key, PageSize: 1000}
	for range refusedPages {
		var page *driver.ListPage
		err := s.call(ctx, opList, f.opts.CallTimeout, func(ctx context.Context) (err error) {
			page, err = s.d.ListPaged(ctx, &opts)
			return err
		})
		if err != nil {
			return false, err
		}
		for _, o := range page.Objects {
			if o.Key == key {
				return true, nil
			}
		}
		if len(page.NextPageToken) == 0 {
			return false, nil
		}
		opts.PageToken = page.NextPageToken
	}
	return false, fmt.Errorf("listing %q on the %s: more than %d pages under it", key, s.id, refusedPages)
}

// refusedPages bounds the listing pages refusedNowhere reads to find a
// key.
const refusedPages = 8

// flowing reports whether s takes calls freely: its breaker is closed and
// no traffic is forced off it.
func flowing(s *side) bool {
	return !s.forced.Load() && s.br.State() == circuit.StateClosed
}

// takeSource returns the reader inspect opened, if any, for a copy to use
// and close.
func (r *repairKey) takeSource() *reader {
	rd := r.source
	r.source = nil
	return rd
}

// dropSource closes the reader inspect opened, if no copy took it.
func (r *repairKey) dropSource() {
	if rd := r.takeSource(); rd != nil {
		_ = rd.Close()
	}
}

// apply brings dst up to the newest of changes (newest first) that a side
// holds the data of: a delete, or a put whose object exists. It leaves the
// key when src holds a version newer than all of them (see superseded),
// or when dst held the newest of them and no longer does (a later change,
// not listed, removed it). It defers the repair while the newest is a put
// made on dst too (an alongside entry) that src holds and dst does not,
// for the hold alongsideHeld keeps, and while a put no side holds may
// still be committing (see Failover.mayLand); a put that no side holds
// and that cannot be committing is taken for a write that failed, and
// the older changes are looked at.
func (r *repairKey) apply(changes []change) error {
	if r.superseded(changes) {
		return r.supersede(changes[0])
	}
	for _, c := range changes {
		if c.op == journal.Delete && c.s.unseen && r.unseenVoid(changes) {
			continue
		}
		if c.op == journal.Delete {
			return r.applyDelete(c.s)
		}
		if c.held && !(r.have.exists && r.have.s.compare(c.s, r.skew) >= 0) {
			// dst held this change, and a later change, which the pass
			// has not listed, removed it.
			r.f.opts.Logger.Info("failoverblob: repair skipped: the side held the key's newest known change, and a later change removed it", "key", r.key, "side", r.dst.id.String())
			return r.dropStaleCopy(c.s)
		}
		if c.alongside && !r.temporary && r.from.exists && r.from.s.v == c.s.v && !(r.have.exists && r.have.s.compare(c.s, r.skew) >= 0) && r.f.alongsideHeld(r.key, c.s.v) {
			// The write committed on src, and was committing on dst too
			// without failing there: dst lacks it because a later change,
			// which the pass has not listed (another instance's delete,
			// between its calls to the two sides, whose tombstone, if it
			// recorded one, a later pass lists), removed it, or its
			// commit there is still under way. Copying now could bring a
			// deleted object back. Once the key has been found so for
			// longer than such a delete takes to end, dst's lack of it is
			// a failure whose record a crash cut, or a delete a crash cut
			// between the sides, and the write is copied.
			return fmt.Errorf("%w: the %s lacks the write of %q that was being made there too, and a later change may have removed it", errRepairDeferred, r.dst.id, r.key)
		}
		if settled, err := r.applyPut(c.s); settled || err != nil {
			return err
		}
		if c.landing {
			// Its write may still be committing: taking it for failed
			// would acknowledge its entry, and the write, once landed
			// and acknowledged, would have none.
			return fmt.Errorf("%w: no side holds the write of %q that an entry recorded %s, which may still be committing", errRepairDeferred, r.key, c.s.v)
		}
		// No side holds this change: its write failed after the entry was
		// recorded. An older entry may still describe data that exists.
	}
	return nil
}

// mayLand reports whether e records a put whose write may still be
// committing: another instance's (or an earlier opening's) write, which
// records its entry before or while it commits, and whose entry was
// stored less than landingTime ago. A write this instance opened since
// New is never committing while its key is repaired, which holds the
// key's lock as the write's commit does.
func (f *Failover) mayLand(e journal.Entry) bool {
	return e.Op == journal.Put && !f.appendedHere(e) && f.recent(e)
}

// alongsideHeld reports whether a repair that found the side it repairs
// without version v of key, which an alongside entry says was being made
// there too, and the other side holding it, is to wait: until this
// instance has found the key so for longer than a delete takes to reach
// both sides and record what it missed (3×CallTimeout + MaxClockSkew, see
// apply). Each such key is remembered from its first finding until it is
// settled, or, once maxAlongsideHeld keys are remembered, until it was
// found longer ago than the hold (another instance may have settled it);
// while that many are held, new ones wait.
func (f *Failover) alongsideHeld(key string, v Version) bool {
	f.alongsideMu.Lock()
	defer f.alongsideMu.Unlock()
	now := f.opts.Now()
	hold := 3*f.opts.CallTimeout + f.opts.MaxClockSkew
	seen, ok := f.alongside[key]
	if !ok || seen.v != v {
		if len(f.alongside) >= maxAlongsideHeld {
			// Keys another instance settled are never seen here again:
			// those found longer ago than the hold are forgotten.
			for k, s := range f.alongside {
				if now.Sub(s.at) >= hold {
					delete(f.alongside, k)
				}
			}
		}
		if len(f.alongside) >= maxAlongsideHeld {
			return true
		}
		if f.alongside == nil {
			f.alongside = map[string]alongsideSeen{}
		}
		f.alongside[key] = alongsideSeen{v: v, at: now}
		return true
	}
	if now.Sub(seen.at) < hold {
		return true
	}
	delete(f.alongside, key)
	return false
}

// alongsideSettled forgets key's first finding (see alongsideHeld).
func (f *Failover) alongsideSettled(key string) {
	f.alongsideMu.Lock()
	defer f.alongsideMu.Unlock()
	delete(f.alongside, key)
}

// alongsideSeen is when a repair first found a key as alongsideHeld says,
// at version v.
type alongsideSeen struct {
	v  Version
	at time.Time
}

// maxAlongsideHeld bounds the keys alongsideHeld remembers.
var maxAlongsideHeld = 100_000

// recent reports whether e was stored less than landingTime ago. An entry
// stamped far in the future comes from a clock that ran fast, not from a
// write in flight: the window is bounded both ways.
func (f *Failover) recent(e journal.Entry) bool {
	at := e.Stored
	if at.IsZero() {
		at = e.Recorded
	}
	d, bound := f.opts.Now().Sub(at), f.landingTime()
	return d < bound && d > -bound
}

// appendedHere reports whether this instance, since New, appended e. A
// journal.Bucket names its appender (see journal.Bucket.Appended), so
// failover buckets in one process that share one journal value take each
// other's entries for their own: each instance needs its own journal.
func (f *Failover) appendedHere(e journal.Entry) bool {
	if e.Recorded.Before(f.opened) {
		return false
	}
	if j, ok := f.opts.Journal.(*journal.Bucket); ok {
		return j.Appended(e.ID)
	}
	// A local journal has one writer at a time.
	return true
}

// landingTime bounds how long after its entry was stored a write may
// still commit, its bytes being written before its entries are recorded
// (a redirected write replayed to the secondary records its entry again
// beside the secondary's commit): the answer to the entry's append, and
// the append of an entry for the other side, tried on each side in turn
// (a Mirror-mode write), each bounded by CallTimeout; then the commit on
// each side in turn (a Mirror-mode write with a condition), each bounded
// by the idle watchdog; and the clocks' disagreement. It assumes the
// instances sharing a journal have the same timeouts, and a journal whose
// calls take no longer than CallTimeout.
func (f *Failover) landingTime() time.Duration {
	return 3*f.opts.CallTimeout + 2*f.opts.IdleTimeout + f.opts.MaxClockSkew
}

// unseenVoid reports whether an unseen tombstone (see stamp.unseen) has
// nothing to remove: src holds a version (one a write put there after the
// delete found nothing there), or the version dst holds is one a put of
// changes describes. Either way the object is no write's crash leftover,
// and the key is brought up to the older changes instead.
func (r *repairKey) unseenVoid(changes []change) bool {
	if r.from.exists {
		return true
	}
	for _, c := range changes {
		if c.op == journal.Put && r.have.exists && r.have.s.v == c.s.v {
			return true
		}
	}
	return false
}

// dropStaleCopy removes, in Redirect mode, a temporary copy on src older
// than s, a change the primary held: the verifier would otherwise take it,
// with no entry left to account for it, for a redirected write to move to
// the primary.
func (r *repairKey) dropStaleCopy(s stamp) error {
	if !r.temporary || !r.from.exists || r.from.s.compare(s, r.skew) >= 0 {
		return nil
	}
	if err := r.src.remove(r.ctx, r.f.opts.CallTimeout, r.key, r.from.attrs); err != nil {
		return err
	}
	r.rep.Cleaned, r.from.exists = true, false
	return nil
}

// superseded reports whether src holds a version of the key newer than
// every change the pass knows of (changes, newest first), which dst lacks:
// a change made after the pass listed the journal. If it missed dst, its
// own entry repairs it; if it reached dst and a delete removed it there
// since, the delete's tombstone for src removes it from src. Either way
// the changes the pass knows of are superseded, and copying src's version
// over dst could bring back a deleted object: the key is left as it is.
// (A version neither an entry nor a tombstone accounts for, a crash's
// leftover, is Verify's to repair.)
func (r *repairKey) superseded(changes []change) bool {
	if r.temporary || len(changes) == 0 || !r.from.exists || r.from.s.compare(changes[0].s, r.skew) <= 0 {
		return false
	}
	if r.have.exists && r.have.s.compare(r.from.s, r.skew) >= 0 {
		return false
	}
	r.f.opts.Logger.Info("failoverblob: repair skipped: the other side holds a version newer than every change the pass knows of", "key", r.key, "side", r.dst.id.String(), "version", r.from.s.v.String())
	return true
}

// supersede settles a superseded repair (see superseded): the newer
// version is left to its own entry, but a tombstone the pass knows of
// still removes, conditionally, what dst holds older than it, which would
// otherwise stay there should that entry never be recorded (its writer
// crashed).
func (r *repairKey) supersede(newest change) error {
	if newest.op != journal.Delete || newest.s.unseen || !r.have.exists || r.have.s.compare(newest.s, r.skew) > 0 {
		return nil // an unseen tombstone is void where src holds a version
	}
	if err := r.dst.remove(r.ctx, r.f.opts.CallTimeout, r.key, r.have.attrs); err != nil {
		return err
	}
	r.rep.Action, r.have.exists = ActionDeleted, false
	return nil
}

// applyDelete applies a tombstone stamped s to dst and removes what it
// covers on src: in Redirect mode the temporary copy, in Mirror mode a copy
// that a delete cut by a crash between the sides left there, with nothing
// recorded for src.
func (r *repairKey) applyDelete(s stamp) error {
	if r.have.exists && r.have.s.compare(s, r.skew) <= 0 {
		if err := r.dst.remove(r.ctx, r.f.opts.CallTimeout, r.key, r.have.attrs); err != nil {
			return err
		}
		r.rep.Action, r.have.exists = ActionDeleted, false
	}
	if r.from.exists && r.from.s.compare(s, r.skew) <= 0 {
		if err := r.src.remove(r.ctx, r.f.opts.CallTimeout, r.key, r.from.attrs); err != nil {
			return err
		}
		r.rep.Cleaned, r.from.exists = r.temporary, false
	}
	return nil
}

// applyPut brings dst up to a put stamped s, if a side holds its data.
// settled is false when no side does.
func (r *repairKey) applyPut(s stamp) (settled bool, err error) {
	// A put's data, where a side holds it, places it by when it was stored
	// (see stamp.order).
	switch {
	case r.from.exists && r.from.s.v == s.v:
		s = r.from.s
	case r.have.exists && r.have.s.v == s.v:
		s = r.have.s
	}
	switch {
	case r.have.exists && r.have.s.compare(s, r.skew) >= 0:
		return true, nil // dst already has this change or a newer one
	case r.from.exists && r.from.s.compare(s, r.skew) >= 0 && r.partial && !r.have.exists:
		// dst lacks the key, perhaps through another instance's delete
		// whose tombstone is kept on the side whose part of the journal
		// the pass could not read: copying could bring the key back.
		return true, fmt.Errorf("%w: the %s lacks %q, and the journal was not read whole; its repair waits for a listing that is", errRepairDeferred, r.dst.id, r.key)
	case r.from.exists && r.from.s.compare(s, r.skew) >= 0:
		n, err := r.f.copyObject(r.ctx, r.src, r.dst, r.key, r.from.attrs, r.have.attrs, r.takeSource(), r.notDeletedSince())
		if err != nil {
			return true, err
		}
		r.rep.Action, r.rep.Bytes, r.have = ActionCopied, n, r.from
		if !r.temporary && r.f.sharedJournal() {
			return true, r.sourceStayed()
		}
		return true, nil
	}
	return false, nil
}

// notDeletedSince returns the gate of a copy onto dst that lacks the key,
// with a journal other instances write (nil otherwise): it reads dst's
// marker of a delete of the key (see markerPrefix), starting now, beside
// the copy's streaming, and keeps the copy from committing if a delete
// newer than it wrote the marker since the pass listed the journal. That
// delete may have removed the key from dst after the pass listed the
// journal, and the copy would bring it back: the key is left for a pass
// that lists the delete's tombstone. A marker written before the listing
// began (less the clocks' disagreement) adds nothing: the listing holds
// its tombstone, if the delete recorded one. The read starts after the
// look at dst ended: a delete that removed the key before that look wrote
// its marker before, and the read finds it.
func (r *repairKey) notDeletedSince() func() error {
	if r.have.exists || !r.f.sharedJournal() {
		return nil
	}
	type read struct {
		m   stamp
		err error
	}
	done := make(chan read, 1)
	go func() {
		m, err := r.f.readMarker(r.ctx, r.dst, r.key)
		done <- read{m, err}
	}()
	return func() error {
		got := <-done
		m := got.m
		switch {
		case got.err != nil:
			return got.err
		case m.v.IsZero() || m.at.Before(r.listed.Add(-r.skew-markerTimeGrain)) || m.compare(r.from.s, r.skew) <= 0:
			return nil
		}
		r.f.opts.Logger.Info("failoverblob: repair deferred: a delete newer than the copy removed the key since the journal was listed", "key", r.key, "side", r.dst.id.String(), "delete", m.v.String())
		return fmt.Errorf("%w: a delete of %q newer than %s was made on the %s since the journal was listed; its repair waits for a listing that holds the tombstone", errRepairDeferred, r.key, r.from.s.v, r.dst.id)
	}
}

// sourceStayed looks again, after a Mirror-mode repair copied src's
// object to dst, at src: if it no longer holds the key, another instance
// deleted it meanwhile, and if that delete found the key on src only (dst
// was missing it) and had removed it from dst before the copy landed, the
// copy brought a deleted object back. The copy is then undone,
// conditionally on what it wrote, and the entries left to the next pass,
// which sees what changed. (The delete looks again at dst too, after its
// call to src: see mirrorDelete.lookAgain.) If src was overwritten
// instead, the copy stands: the newer version's own write or entry
// settles dst, and dst holds meanwhile a version the key had, where
// removing it would leave a state it never had.
func (r *repairKey) sourceStayed() error {
	o, err := r.f.inspect(r.ctx, r.src, r.key)
	if err != nil || o.exists {
		return nil // a look that fails proves nothing; the copy stands
	}
	if err := r.undoCopy(r.from.s.v); err != nil {
		return err
	}
	return fmt.Errorf("the %s's copy of %q was deleted during its repair onto the %s: the copy is undone, and the key left to the next pass", r.src.id, r.key, r.dst.id)
}

// cleanUp removes, in Redirect mode, the temporary copy on the secondary
// once the primary holds the same version or a newer one.
func (r *repairKey) cleanUp() error {
	if !r.temporary || !r.from.exists || !r.have.exists || r.from.s.compare(r.have.s, r.skew) > 0 {
		return nil
	}
	// Entries recorded since the journal was listed stay pending, and the
	// index may send reads to the copy about to go.
	r.f.idx.moved(r.key, r.have.s, r.dst.id)
	err := r.src.delete(r.ctx, r.f.opts.CallTimeout, r.key, r.src.deleteIf(r.from.attrs))
	switch {
	case isNotFound(err) && r.rep.Action == ActionCopied && r.f.sharedJournal():
		return r.copyRaced()
	case err != nil && !isNotFound(err):
		return err
	}
	r.rep.Cleaned = true
	return nil
}

// copyRaced settles a Redirect-mode repair that copied the secondary's
// temporary copy to the primary and then found the copy gone: another
// instance removed it meanwhile, either its reconciler (which writes the
// primary first, so it cannot have: the conditional copy would have
// failed) or a delete, which recorded a tombstone first and removed the
// key from the primary before the copy landed there. The journal is read
// again; if it holds a tombstone newer than the copy, the copy brought a
// deleted object back and is removed at once (conditionally on what was
// written), as the tombstone's repair would remove it. The entries stay
// for the next pass either way.
func (r *repairKey) copyRaced() error {
	if err := r.f.learn(r.ctx, r.f.readingsBegun.Load()); err != nil {
		return fmt.Errorf("the %s's copy of %q went during its repair, and the journal cannot be read to tell why: %w", r.src.id, r.key, err)
	}
	p, _ := r.f.idx.get(r.key)
	if p.hintDel.v.IsZero() || p.hintDel.compare(r.have.s, r.skew) <= 0 {
		return nil
	}
	if err := r.undoCopy(r.have.s.v); err != nil {
		return err
	}
	return fmt.Errorf("the %s's copy of %q was deleted during its repair (a tombstone newer than it was recorded): the copy is undone, and the tombstone left to the next pass", r.src.id, r.key)
}

// undoCopy removes from dst the copy the repair wrote, version v, if dst
// still holds it (conditionally on what it holds), and takes the copy out
// of the repair's report.
func (r *repairKey) undoCopy(v Version) error {
	o, err := r.f.inspect(r.ctx, r.dst, r.key)
	if err != nil {
		return err
	}
	if o.exists && o.s.v == v {
		if err := r.dst.remove(r.ctx, r.f.opts.CallTimeout, r.key, o.attrs); err != nil {
			return err
		}
	}
	r.rep.Action, r.rep.Bytes = ActionNone, 0
	return nil
}

// errRepairDeferred is a repair left for a later pass, which is no
// failure (see changesOf).
var errRepairDeferred = errors.New("repair deferred")

// change is one change to a key that a side may be missing.
type change struct {
	op journal.Op
	s  stamp
	// held says the side being repaired held the change once: the index
	// saw it there (this process committed it there, or read it there).
	// If it no longer holds it, a later change removed it, which the
	// pass has not listed: the change is not brought back.
	held bool
	// landing says the change is a put whose write may still be
	// committing (see Failover.mayLand).
	landing bool
	// alongside says the change's entries for the side being repaired,
	// among those listed, are all alongside ones (see alongsideSize): its
	// write was committing there too, and no entry says it failed there.
	alongside bool
}

// changesOf returns the changes the entries describe, newest first. The
// entries were listed before the key was locked: a change this process
// committed since (its entry is left for a later pass) is the key's newest
// state, so nothing older may be brought back over it, and it counts too.
// One it committed before a listing that read every entry began (read)
// does not: its entry is among those listed, where its stamp places it by
// when the journal's storage stored it, or was acknowledged once a repair
// applied it; the index stamps it by this process's clock alone, which, if
// it ran fast, would place it after changes other writers made later.
//
// The index's change is left out where an entry listed is the same change
// (the same version), which the entry places by the journal's storage. A
// delete this process committed (which the index stamps by its clock
// alone, see Options.MaxClockSkew) whose entry was not listed (made after
// the listing, or kept on a side whose listing failed) is not applied: the
// key's repair waits for a pass that lists it.
func (f *Failover) changesOf(key string, missing journal.Side, entries []journal.Entry, read time.Time) ([]change, error) {
	changes := make([]change, 0, len(entries)+1)
	listed := make(map[Version]bool, len(entries))
	missed := map[Version]bool{} // puts with an ordinary entry for missing
	for _, e := range entries {
		v, err := ParseVersion(e.Version)
		if err != nil {
			return nil, err
		}
		along := e.Missing == missing && alongsideEntry(e.Op, e.Size)
		if e.Missing == missing && e.Op == journal.Put && !along {
			missed[v] = true
		}
		changes = append(changes, change{op: e.Op, s: entryStampOf(e, v), landing: f.mayLand(e), alongside: along})
		listed[v] = true
	}
	for i := range changes {
		changes[i].alongside = changes[i].alongside && !missed[changes[i].s.v]
	}
	if p, ok := f.idx.get(key); ok && p.known && !p.latest.v.IsZero() && !listed[p.latest.v] && (read.IsZero() || !p.latest.at.IsZero() || !p.modTime.Before(read)) {
		op := journal.Put
		if p.deleted {
			op = journal.Delete
			if p.latest.at.IsZero() {
				return nil, fmt.Errorf("%w: %q was deleted by this process after the journal was listed, or its tombstone is kept on a side whose journal could not be listed; its repair waits for a listing that holds the tombstone", errRepairDeferred, key)
			}
		}
		changes = append(changes, change{op: op, s: p.latest, held: !p.deleted && p.on[missing]})
	}
	skew := f.opts.MaxClockSkew
	sort.Slice(changes, func(i, j int) bool { return changes[i].s.compare(changes[j].s, skew) > 0 })
	return changes, nil
}
