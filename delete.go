package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/journal"
)

// Delete implements driver.Bucket. A key this bucket knows to be deleted (a
// tombstone not yet carried to every side) is NotFound. In Redirect mode a
// delete while the primary is down is acknowledged once its tombstone is
// recorded in the journal; it then reports success whether or not the
// object existed, since the primary cannot be asked. In Mirror mode it
// also deletes the key on the secondary, and reports NotFound if the
// secondary had nothing to delete, keeping the tombstone all the same (see
// mirrorDelete.unseen). The caller's
// BeforeDelete runs once: on the first side the delete reaches, or, for a
// tombstone recorded while the primary is down, before it is recorded, with
// no driver types to inspect.
func (b *bucket) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	f := b.f
	if err := f.readOnly(key); err != nil {
		return err
	}
	if err := f.journalKnown(ctx); err != nil {
		return err // whether the key is deleted may be on the side not read
	}
	defer f.locks.lock(key).Unlock()
	defer f.stale.changing(key)()
	ctx = holding(ctx, key)
	p, pending, err := f.state(ctx, key)
	switch {
	case err != nil && !errors.Is(err, ErrUnavailable):
		return err
	case pending && p.known && p.deleted:
		return fmt.Errorf("%w: %q", errDeleted, key)
	}
	// p may still be unknown: a side is down, and the key may exist.
	defer f.idx.commitStarts(key)()
	h := &hook{fn: opts.BeforeDelete, once: true}
	if f.opts.Mode == Mirror {
		rec := f.newRecords(ctx, key, journal.Delete, f.clock.Now(), 0)
		d := &mirrorDelete{f: f, rec: rec, p: p, pending: pending, opts: &driver.DeleteOptions{BeforeDelete: h.guard()}}
		return d.run()
	}
	return f.deleteRedirect(ctx, key, p, pending, h)
}

// mayExist reports whether a pending key's state says it may exist.
func (p keyState) mayExist() bool { return !p.known || !p.deleted }

// deleteRedirect deletes a key on the primary, after recording the
// tombstone that keeps a copy on the secondary from coming back, where
// there may be one (see tombstoneFirst).
func (f *Failover) deleteRedirect(ctx context.Context, key string, p keyState, pending bool, h *hook) error {
	pr := f.sides[journal.Primary]
	// A key whose state is unknown has the primary asked first, with a
	// journal other instances read: if it answers NotFound after the
	// tombstone is recorded, whether the key was there before tells a
	// true NotFound from the tombstone applied elsewhere (see
	// deleteUnresolved).
	primaryHad := true
	if pending && !p.known && f.sharedJournal() {
		if o, err := f.inspect(ctx, pr, key); err == nil && !o.exists {
			primaryHad = false
		}
	}
	copied, unsure, rec, err := f.tombstoneFirst(ctx, key, pending)
	if err != nil {
		return err
	}
	// The secondary may hold a redirected copy that another instance's
	// repair is moving (the key has pending work, or the secondary could
	// not say): it is looked at beside the primary's delete, so that it goes
	// as soon after that delete as can be (see below).
	var secondaryLook func() (sideObject, error)
	if (pending || unsure) && f.sharedJournal() {
		secondaryLook = f.lookBeside(ctx, f.sides[journal.Secondary], key)
		defer secondaryLook()
	}
	if rec.recorded(journal.Primary) && f.sharedJournal() {
		// Another instance's pass that listed the journal before the
		// tombstone was recorded may be about to copy a redirected copy
		// onto the primary: the marker tells it the key was deleted since.
		if err := f.writeMarker(ctx, pr, key, rec.v); err != nil {
			if !pr.outage(ctx, err) {
				rec.withdraw()
				return err
			}
			return f.tombstone(rec, h, err)
		}
		rec.marked[journal.Primary] = true
	}
	err = pr.delete(ctx, f.opts.CallTimeout, key, &driver.DeleteOptions{BeforeDelete: h.guard()})
	if isNotFound(err) && !copied && pending && !p.known {
		return f.deleteUnresolved(rec, p, h, err, primaryHad)
	}
	switch {
	case err == nil, isNotFound(err) && (copied || pending && p.mayExist()):
		// The primary no longer has it; the tombstone (if any) keeps the
		// secondary's copy from coming back, and the copy goes now.
		f.idx.commit(key, rec.v, true, [2]bool{}, 0)
		if err == nil && !pending {
			// A key without pending work is the same on both sides: the
			// object removed was its state.
			f.idx.deleteFound(key, rec.v)
		}
		switch {
		case copied:
			_ = f.sides[journal.Secondary].delete(ctx, f.opts.CallTimeout, key, nil)
			f.sweepRacedCopy(rec)
		case secondaryLook != nil:
			// The redirected copy goes now, so that a repair moving it
			// finds its source gone (see repairKey.copyRaced); a repair
			// that looked at the primary after its delete and at the
			// secondary before this removal may still copy it there, so
			// the primary is looked at again.
			if o, err := secondaryLook(); err == nil {
				_ = f.removeIfOlder(rec, f.sides[journal.Secondary], o) // the tombstone covers it if not
			}
			f.sweepRacedCopy(rec)
		}
		if pending && !p.known && f.inDoubt(key, p) {
			return deletedInDoubt(err, key)
		}
		return nil
	case isNotFound(err) && rec.recorded(journal.Primary) && f.sharedJournal():
		return f.deleteAmbiguous(rec, h, err)
	case !pr.outage(ctx, err):
		rec.withdraw() // the delete must not take effect later either
		return err
	}
	return f.tombstone(rec, h, err)
}

// sweepRacedCopy looks at the primary again once a Redirect-mode delete
// (rec) has removed the key there and then the secondary's redirected
// copy: another instance's repair that examined the copy before it went
// may have written it to the primary after the delete did. Such a copy,
// older than the delete, is removed at once (conditionally on what was
// examined) rather than at the next pass that applies the tombstone; the
// repair, which finds its source gone, reads the journal and does the same
// (see repairKey.cleanUp). Only with a journal other instances read: no
// other reconciler acts on a local one.
func (f *Failover) sweepRacedCopy(rec *records) {
	if !f.sharedJournal() {
		return
	}
	if err := f.removeOlder(rec, f.sides[journal.Primary]); err != nil {
		f.opts.Logger.Debug("failoverblob: a copy written back over a delete is left to the tombstone", "key", rec.key, "err", err)
	}
}

// removeOlder removes the object s holds of the key a delete (rec) is for,
// if it is older than the delete, conditionally on what it examined.
func (f *Failover) removeOlder(rec *records, s *side) error {
	o, err := f.inspect(rec.ctx, s, rec.key)
	if err != nil {
		return err
	}
	return f.removeIfOlder(rec, s, o)
}

// removeIfOlder removes o, what s held of the key a delete (rec) is for
// when it was looked at, if it is older than the delete, conditionally on
// it.
func (f *Failover) removeIfOlder(rec *records, s *side, o sideObject) error {
	if !o.exists || o.s.compare(stamp{v: rec.v}, f.opts.MaxClockSkew) >= 0 {
		return nil
	}
	return s.remove(rec.ctx, f.opts.CallTimeout, rec.key, o.attrs)
}

// lookBeside starts a look at what s holds of key, beside the caller's
// next calls; the function it returns waits for the look and returns it,
// and must be called before the caller returns.
func (f *Failover) lookBeside(ctx context.Context, s *side, key string) func() (sideObject, error) {
	type look struct {
		o   sideObject
		err error
	}
	done := make(chan look, 1)
	go func() {
		o, err := f.inspect(ctx, s, key)
		done <- look{o, err}
	}()
	var once sync.Once
	var l look
	return func() (sideObject, error) {
		once.Do(func() { l = <-done })
		return l.o, l.err
	}
}

// deleteAmbiguous settles a Redirect-mode delete whose tombstone was
// recorded, in a journal other instances read, before the primary answered
// it did not have the key (notFound): another instance's reconciler may
// have applied the tombstone in between, and removed the key this delete
// was for. Whether the key existed when the delete began cannot be told,
// so neither NotFound nor success is a true answer: the tombstone stands
// (it deletes nothing more if the key was absent) and the delete is
// unavailable; a second delete answers NotFound. The caller's hook runs
// first, as for a delete that reached no side.
func (f *Failover) deleteAmbiguous(rec *records, h *hook, notFound error) error {
	if herr := h.runUnreached(); herr != nil {
		rec.withdraw()
		return herr
	}
	f.idx.commit(rec.key, rec.v, true, [2]bool{}, 0)
	return unavailable(notFound, "the primary does not hold %q, perhaps through this delete's tombstone, which another instance may have applied before the primary was asked; the delete is recorded", rec.key)
}

// deleteUnresolved settles a Redirect-mode delete of a key with pending
// work whose state (p) could not be worked out (a side was down), which
// the primary answered it did not have (notFound): whether the key exists
// is up to the secondary, which may hold a redirected copy, and to the
// journal's tombstones, which may cover that copy. If the secondary
// answers now, the key's state follows, and so does the delete's answer;
// if not, the tombstone stands, so that the delete takes effect if the key
// does exist, and the delete is unavailable, as a read of the key is. The
// caller's hook, which the primary did not run, runs before any tombstone
// is kept.
//
// With a journal other instances read (see sharedJournal), a key neither
// side holds that the primary held (primaryHad: it did, or could not say)
// before the tombstone was recorded may have been removed by this very
// delete: see deleteAmbiguous.
func (f *Failover) deleteUnresolved(rec *records, p keyState, h *hook, notFound error, primaryHad bool) error {
	sec := f.sides[journal.Secondary]
	o, err := f.inspect(rec.ctx, sec, rec.key)
	if err != nil && !sec.outage(rec.ctx, err) {
		rec.withdraw()
		return err
	}
	if err == nil {
		if st, _ := decide(p, [2]sideObject{{asked: true}, o}, f.opts.MaxClockSkew); st.deleted {
			if f.sharedJournal() && primaryHad {
				return f.deleteAmbiguous(rec, h, notFound)
			}
			rec.withdraw() // no side holds it: an answer, not a change
			return notFound
		}
	}
	if herr := h.runUnreached(); herr != nil {
		rec.withdraw()
		return herr
	}
	f.idx.commit(rec.key, rec.v, true, [2]bool{}, 0)
	if err != nil {
		return unavailable(err, "%q has pending work and the secondary, which may hold its newest version, is down; its delete is recorded", rec.key)
	}
	if o.s.compare(stamp{v: rec.v}, f.opts.MaxClockSkew) < 0 {
		// The copy goes now; the tombstone covers it if not.
		_ = sec.remove(rec.ctx, f.opts.CallTimeout, rec.key, o.attrs)
		f.sweepRacedCopy(rec)
	}
	return nil
}

// tombstoneFirst stamps a Redirect-mode delete of key and records its
// tombstone for the primary where the secondary may hold a copy: for a key
// with pending work, and for a key this instance knows of no pending work
// for whose secondary holds a copy (or cannot say) — a write redirected by
// another instance during an outage and not yet reconciled, which that
// instance's reconciler would copy back over the delete. The version is
// stamped after the secondary is asked, so it is newer than the copy (the
// clock has seen its version). copied says the secondary holds a copy,
// unsure that it could not say.
func (f *Failover) tombstoneFirst(ctx context.Context, key string, pending bool) (copied, unsure bool, rec *records, err error) {
	if pending {
		rec = f.newRecords(ctx, key, journal.Delete, f.clock.Now(), 0)
		return false, false, rec, rec.record(journal.Primary)
	}
	o, ierr := f.inspect(ctx, f.sides[journal.Secondary], key)
	rec = f.newRecords(ctx, key, journal.Delete, f.clock.Now(), 0)
	if ierr == nil && !o.exists {
		return false, false, rec, nil
	}
	if err := rec.record(journal.Primary); err != nil {
		return false, false, nil, unavailable(errors.Join(ierr, err), "deleting %q needs a tombstone for the secondary's copy, which cannot be recorded", key)
	}
	return o.exists, ierr != nil, rec, nil
}

// tombstone settles a Redirect-mode delete while the primary is down
// (cause): it takes effect by its tombstone, which the caller's hook, not
// run by the primary, must allow first. A key the secondary answers about
// with an error that is no outage (it refuses the key: a name it cannot
// store) gets that answer instead, and the tombstone is withdrawn: the
// caller's input may be at fault, and the primary, which cannot be asked,
// would refuse the tombstone too.
func (f *Failover) tombstone(rec *records, h *hook, cause error) error {
	sec := f.sides[journal.Secondary]
	if _, err := f.inspect(rec.ctx, sec, rec.key); err != nil && !sec.outage(rec.ctx, err) {
		rec.withdraw()
		return err
	}
	if herr := h.runUnreached(); herr != nil {
		rec.withdraw()
		return herr
	}
	if err := rec.recordAfter(journal.Primary); err != nil {
		return err
	}
	f.idx.commit(rec.key, rec.v, true, [2]bool{}, 0)
	// The temporary copy, if any, goes now; the tombstone covers it if not.
	ctx := f.failingOver(rec.ctx, opDelete, cause)
	_ = f.sides[journal.Secondary].delete(ctx, f.opts.CallTimeout, rec.key, nil)
	f.opts.Logger.Warn("failoverblob: delete recorded as a tombstone while the primary is down", "key", rec.key, "cause", cause)
	return nil
}

// mirrorDelete is one delete in Mirror mode, which goes to both sides and
// records a tombstone for each side it may have missed.
type mirrorDelete struct {
	f       *Failover
	rec     *records // its tombstones
	p       keyState
	pending bool
	opts    *driver.DeleteOptions

	on [2]deleteOutcome // by side
	// before is what the secondary held of a key with no pending work
	// when the primary missed the delete, looked at before the tombstone
	// for the primary was recorded (see lookFirst).
	before secondaryBefore
	// recordedFirst says tombstones were recorded before any side was
	// asked: the key had pending work (see run).
	recordedFirst bool
}

// secondaryBefore is what a look at the secondary found (see lookFirst).
type secondaryBefore int

const (
	notLooked secondaryBefore = iota
	lookFailed
	secondaryHad
	secondaryLacked
)

// deleteOutcome is what one side made of a Mirror-mode delete.
type deleteOutcome struct {
	err      error // the side's answer
	answered bool  // it deleted the key, or did not have it
	found    bool  // it had the key and deleted it
	missed   bool  // it is missing the delete: it is down, or refused it after the primary deleted
}

func (d *mirrorDelete) run() error {
	// While a key has pending work, every change to it is recorded for the
	// sides it is pending on.
	for _, s := range sideIDs {
		if d.p.entries[s] > 0 {
			if err := d.rec.record(s); err != nil {
				return err
			}
			d.recordedFirst = true
		}
	}
	for _, s := range d.f.sides {
		if done, err := d.deleteOn(s); done {
			return err
		}
	}
	return d.settle()
}

// settle decides the delete once each side has been asked.
func (d *mirrorDelete) settle() error {
	pr, sec := d.on[journal.Primary], d.on[journal.Secondary]
	switch {
	case !pr.answered && !sec.answered:
		return d.bothDown()
	case d.unresolved():
		return d.deleteUnresolved()
	case d.foundNowhere() && d.removedByItsTombstone():
		return d.foundGone()
	case d.foundNowhere():
		return d.notFound()
	case d.onlyPrimaryHad():
		if err := d.guardSecondary(); err != nil {
			return err
		}
	}
	if d.afterFlights() && d.f.opts.Ack != AckBoth {
		// The writes in flight stamped before this delete must take their
		// place before it, whatever they meet when they commit.
		d.f.idx.deleteAfterFlights(d.rec.key, d.rec.v)
	}
	if !d.rec.unseen || !d.unseen() {
		// An unseen delete answered NotFound leaves the key's state to be
		// worked out from the sides, as its repair will: a write by
		// another instance that lands on the secondary after it, stamped
		// before it, stands (see stamp.unseen).
		d.f.idx.commit(d.rec.key, d.rec.v, true, [2]bool{}, 0)
	}
	d.lookAgain()
	if (pr.found || sec.found) && !d.pending {
		// A key without pending work is the same on both sides: the
		// object removed was its state, not a copy left behind.
		d.f.idx.deleteFound(d.rec.key, d.rec.v)
	}
	switch {
	case d.f.opts.Ack == AckBoth && (pr.missed || sec.missed):
		return unavailable(errors.Join(pr.err, sec.err), "delete of %q reached only one side; a repair is recorded", d.rec.key)
	case d.unseen():
		return sec.err
	case d.pending && !d.p.known && d.f.inDoubt(d.rec.key, d.p):
		return deletedInDoubt(errors.Join(pr.err, sec.err), d.rec.key)
	}
	return nil
}

// deletedInDoubt answers, in either mode, a delete of a key with pending
// work whose state could not be worked out before it, in doubt (see
// inDoubt), which found the key on a side (cause: what the sides
// answered): what it removed there may be an older copy a tombstone
// covers, as well as the key's newest version, so whether the key existed
// cannot be told. Its tombstones stand, and it is unavailable, as a read
// of the key is; a second delete answers NotFound.
func deletedInDoubt(cause error, key string) error {
	return unavailable(cause, "the state of %q before its delete could not be worked out, so whether it existed cannot be told; its delete is recorded", key)
}

// unseen reports whether the delete is to answer NotFound, though its
// tombstone for the primary stays: the secondary did not have a key with no
// pending work while the primary, which may hold it (see foundNowhere),
// was down. Once the primary is back, the tombstone removes what a write
// cut between the sides left there, as the answer says nothing is; when
// the look before it found the secondary without the key (see lookFirst),
// it removes nothing else (see stamp.unseen). A
// write of the key in flight in this process, stamped before the
// tombstone, gives way to it when it commits: the delete then answers
// success, as having come after that write.
func (d *mirrorDelete) unseen() bool {
	return d.missedWhereItMayBe() && !d.f.idx.inFlightBefore(d.rec.key, d.rec.v)
}

// afterFlights reports whether the delete answers success only as coming
// after the writes of the key in flight stamped before it (see unseen).
func (d *mirrorDelete) afterFlights() bool {
	return d.missedWhereItMayBe() && d.f.idx.inFlightBefore(d.rec.key, d.rec.v)
}

// missedWhereItMayBe reports whether the delete found nothing on the
// secondary for a key with no pending work, and missed the primary, which
// may hold it.
func (d *mirrorDelete) missedWhereItMayBe() bool {
	pr, sec := d.on[journal.Primary], d.on[journal.Secondary]
	return pr.missed && sec.answered && !sec.found && !d.pending
}

// unresolved reports whether the delete met a key with pending work whose
// state could not be worked out (a side was down), and only one side
// answered, that it did not have the key: whether the key exists is up to
// the other side, which may hold a version the journal records.
func (d *mirrorDelete) unresolved() bool {
	pr, sec := d.on[journal.Primary], d.on[journal.Secondary]
	return d.pending && !d.p.known && pr.answered != sec.answered && !pr.found && !sec.found
}

// deleteUnresolved settles an unresolved delete (see unresolved) as a
// read of the key would: if the journal and the side that answered say
// the key is deleted, the delete is NotFound (with a journal only this
// instance reads; see below); if the side that did not answer may hold
// its newest version, the tombstones stand, so that the delete takes
// effect if the key does exist, and the delete is unavailable, as a read
// of the key is (a second delete answers NotFound). Answering success
// would say the key existed, which a delete of another instance, which
// this one has not learnt of, may have answered already.
func (d *mirrorDelete) deleteUnresolved() error {
	var objs [2]sideObject
	down := journal.Primary
	for i, o := range d.on {
		objs[i].asked = o.answered
		if !o.answered {
			down = journal.Side(i)
		}
	}
	q, own := d.f.ownOrder(d.p, objs)
	if st, ok := decide(q, own, d.f.opts.MaxClockSkew); ok && st.deleted && !d.f.sharedJournal() {
		d.rec.withdraw() // no side holds it: an answer, not a change
		return d.on[down.Other()].err
	}
	// With a journal other instances read, the tombstones this delete
	// recorded before it asked the sides (the key is pending) may have
	// been applied by another instance's reconciler, removing a write this
	// instance does not know of: whether the delete removed something
	// cannot be told, so it is unavailable, as deleteAmbiguous answers in
	// Redirect mode.
	d.f.idx.commit(d.rec.key, d.rec.v, true, [2]bool{}, 0)
	return unavailable(d.on[down].err, "%q has pending work and the %s, which may hold its newest version, is down; its delete is recorded", d.rec.key, down)
}

// inDoubt reports whether what a delete of key, a key with pending work
// whose state p could not be worked out, finds on a side may be an older
// copy a tombstone covers: the journal holds a tombstone of the key, or
// its entries of the key could not all be read (see index.markUnsure).
func (f *Failover) inDoubt(key string, p keyState) bool {
	return !p.hintDel.v.IsZero() || f.idx.isUnsure(key)
}

// foundNowhere reports whether no side had the key to delete, the primary
// having answered, and the index does not say it may exist: the delete is
// an answer, not a change. The secondary's miss alone says nothing: a
// write cut by a crash between the two sides' commits (the primary's comes
// first) leaves the key on the primary alone, with nothing recorded. A
// pending key whose state is unknown may exist only on a side that did not
// answer: when both answered that they do not have it, it exists nowhere.
func (d *mirrorDelete) foundNowhere() bool {
	pr, sec := d.on[journal.Primary], d.on[journal.Secondary]
	mayExist := d.pending && d.p.mayExist() && (d.p.known || !sec.answered)
	return pr.answered && !pr.found && !sec.found && !mayExist
}

// removedByItsTombstone reports whether a delete that found the key on
// no side may have found nothing through its own tombstones: it recorded
// them, in a journal other instances read, before it asked the sides, for
// a key whose state it could not work out, and another instance's
// reconciler may have applied them meanwhile, removing the key from both
// sides.
func (d *mirrorDelete) removedByItsTombstone() bool {
	return d.recordedFirst && !d.p.known && d.f.sharedJournal()
}

// foundGone settles a delete that found the key on no side, perhaps
// through its own tombstones (see removedByItsTombstone): whether the key
// existed when the delete began cannot be told, so neither NotFound nor
// success is a true answer. The tombstones stand (they delete nothing more
// if the key was absent), and the delete is unavailable, as
// deleteAmbiguous answers in Redirect mode; a second delete answers
// NotFound.
func (d *mirrorDelete) foundGone() error {
	d.f.idx.commit(d.rec.key, d.rec.v, true, [2]bool{}, 0)
	return unavailable(errors.Join(d.on[journal.Primary].err, d.on[journal.Secondary].err), "no side holds %q, perhaps through this delete's tombstones, which another instance may have applied before the sides were asked; the delete is recorded", d.rec.key)
}

// onlyPrimaryHad reports whether the primary had a key with no pending
// work that the secondary answered it did not have.
func (d *mirrorDelete) onlyPrimaryHad() bool {
	pr, sec := d.on[journal.Primary], d.on[journal.Secondary]
	return !d.pending && pr.found && !sec.found && sec.answered
}

// lookAgain looks again at the side that answered it did not have the key
// when the other side had it, and removes, conditionally, a copy older
// than the delete found there: the side was missing a write, which another
// instance's reconciler may have copied onto it after this delete's call
// to it, from the side this delete had not reached yet. (That reconciler
// looks at its source again after its copy, and undoes it if the source
// is gone: see repairKey.sourceStayed; between the two looks one of them
// sees the other's change.) A look that fails leaves the copy to the
// tombstone, if one was recorded, or to that look.
func (d *mirrorDelete) lookAgain() {
	for _, s := range d.f.sides {
		o, other := d.on[s.id], d.on[s.id.Other()]
		if o.answered && !o.found && other.found {
			_ = d.f.removeOlder(d.rec, s)
		}
	}
}

// guardSecondary records a tombstone for the secondary, which lacked a key
// the primary had: a write of it by another instance may be pending there,
// and that instance's reconciler could copy it onto the secondary after
// this delete. The tombstone keeps it away.
func (d *mirrorDelete) guardSecondary() error {
	if err := d.rec.recordAfter(journal.Secondary); err != nil {
		return unavailable(err, "delete of %q reached the primary; the tombstone that keeps a pending copy off the secondary cannot be recorded", d.rec.key)
	}
	return nil
}

// deleteOn deletes the key on s and takes in its answer. done says the
// delete is decided, with err its outcome.
func (d *mirrorDelete) deleteOn(s *side) (done bool, err error) {
	f, id, o := d.f, s.id, &d.on[s.id]
	if f.opts.Ack == AckBoth && id == journal.Secondary && d.on[journal.Primary].missed {
		// Both are needed and the primary is down: leave the secondary be.
		o.err, o.missed = d.on[journal.Primary].err, true
		return false, nil
	}
	if d.pending && f.sharedJournal() {
		// Another instance's pass that listed the journal before this
		// delete's tombstones were recorded may be about to copy the key
		// onto s from the other side: the marker tells it the key was
		// deleted since. A marker that cannot be written is a delete s
		// missed.
		if err = f.writeMarker(d.rec.ctx, s, d.rec.key, d.rec.v); err == nil {
			d.rec.marked[s.id] = true
		}
	}
	if err == nil {
		err = s.delete(d.rec.ctx, f.opts.CallTimeout, d.rec.key, d.opts)
	}
	o.err = err
	switch {
	case err == nil && id == journal.Secondary && d.rec.unseen:
		// A write put the key on the secondary after the look: the
		// tombstone for the primary removes what the primary holds older
		// too.
		o.answered, o.found = true, true
		return d.strengthen()
	case err == nil:
		o.answered, o.found = true, true
	case isNotFound(err) && id == journal.Secondary && d.before == lookFailed && f.sharedJournal():
		// Whether the key was there before the tombstone for the primary,
		// which another instance's reconciler may have applied since
		// (removing the key from both sides), cannot be told. (With a
		// journal only this instance reads, nothing applies it meanwhile.)
		o.missed = true
		return true, d.ambiguous(err)
	case isNotFound(err):
		// The secondary is asked even when the primary did not have the
		// key: a delete cut by a crash between the two sides (the
		// primary's comes first) leaves the key on the secondary alone,
		// with nothing recorded. If it held the key before the tombstone
		// for the primary was recorded, it no longer does: this delete's
		// tombstone, applied by another instance's reconciler, or another
		// delete, removed it; either way this delete found it.
		o.answered, o.found = true, d.before == secondaryHad
	case s.outage(d.rec.ctx, err):
		o.missed = true
		if id == journal.Primary {
			d.lookFirst()
		}
		return d.recordOrFail(id)
	case id == journal.Primary, !d.on[journal.Primary].answered:
		// Refused before anything was deleted (by the primary, or by the
		// secondary with the primary down): the delete changes nothing.
		d.rec.withdraw()
		return true, err
	default:
		// The primary's delete stands; the secondary's refusal is repaired
		// like a miss.
		o.missed = true
		return d.recordOrFail(id)
	}
	return false, nil
}

// lookFirst looks, for a delete the primary missed of a key with no
// pending work, at what the secondary holds, before the tombstone for the
// primary is recorded. If it lacks the key, the tombstone is an unseen one
// (see stamp.unseen): the delete will find nothing there unless a write
// puts the key there meanwhile, and such a write, ordered after the
// delete, is not the tombstone's to remove from the primary. If it holds
// the key, the delete finds it whatever the secondary answers next: the
// tombstone, once recorded, may be applied by another instance's
// reconciler, removing the key from both sides before this delete asks
// the secondary. Not with AckBoth, which leaves the secondary be. The look
// costs one call, on this path alone.
func (d *mirrorDelete) lookFirst() {
	f := d.f
	if d.pending || f.opts.Ack == AckBoth {
		return
	}
	o, err := f.inspect(d.rec.ctx, f.sides[journal.Secondary], d.rec.key)
	switch {
	case err != nil:
		d.before = lookFailed
	case o.exists:
		d.before = secondaryHad
	default:
		d.before = secondaryLacked
		d.rec.unseen = true
	}
}

// strengthen records the tombstone for the primary again, as an ordinary
// one, for an unseen delete that found the key on the secondary after all
// (see lookFirst): the tombstone removes what the primary holds older than
// it, the object the delete removed from the secondary included.
func (d *mirrorDelete) strengthen() (done bool, err error) {
	d.rec.unseen = false
	if d.rec.e[journal.Primary] != nil {
		d.rec.also = append(d.rec.also, d.rec.e[journal.Primary])
		d.rec.e[journal.Primary] = nil
	}
	if err := d.rec.recordAfter(journal.Primary); err != nil {
		return true, unavailable(err, "delete of %q reached the secondary; its tombstone for the primary, which is down, cannot be recorded", d.rec.key)
	}
	return false, nil
}

// ambiguous settles a delete the primary missed whose call to the
// secondary answered NotFound, where whether the key was there before its
// tombstone for the primary was recorded is unknown (see lookFirst): the
// tombstone stands, and the delete is unavailable, as deleteAmbiguous
// answers in Redirect mode; a second delete answers NotFound.
func (d *mirrorDelete) ambiguous(notFound error) error {
	d.f.idx.commit(d.rec.key, d.rec.v, true, [2]bool{}, 0)
	return unavailable(notFound, "the secondary does not hold %q, perhaps through this delete's tombstone for the primary, which another instance may have applied before the secondary was asked; the delete is recorded", d.rec.key)
}

func (d *mirrorDelete) recordOrFail(s journal.Side) (done bool, err error) {
	if err := d.rec.recordAfter(s); err != nil {
		return true, err
	}
	return false, nil
}

// bothDown settles a delete that no side answered.
func (d *mirrorDelete) bothDown() error {
	errs := [2]error{d.on[journal.Primary].err, d.on[journal.Secondary].err}
	err := unavailable(errors.Join(errs[0], errs[1]), "both sides are down deleting %q", d.rec.key)
	var he *hookError
	if errors.As(errs[1], &he) || (errors.Is(errs[0], circuit.ErrOpen) && errors.Is(errs[1], circuit.ErrOpen)) {
		// The caller's hook refused the delete (it runs for the first side
		// reached, so the primary was not reached), or neither side was
		// asked: nothing was deleted.
		d.rec.withdraw()
		return err
	}
	// A side that was asked may have deleted the object and lost the answer.
	// The delete then has to reach both sides, or they stay apart for good:
	// record it for both, and read the key as deleted until it is
	// reconciled. The caller still learns it failed.
	for _, s := range sideIDs {
		if rerr := d.rec.recordAfter(s); rerr != nil {
			return rerr
		}
	}
	d.f.idx.commit(d.rec.key, d.rec.v, true, [2]bool{}, 0)
	return err
}

// notFound settles a delete of a key no side had: an answer, not a change.
// Committing it as the key's newest change would overrule a write in flight
// that this answer says came later, so nothing is recorded.
func (d *mirrorDelete) notFound() error {
	d.rec.withdraw()
	return d.on[journal.Primary].err
}
