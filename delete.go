package failoverblob

import (
	"context"
	"errors"
	"fmt"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/journal"
)

// Delete implements driver.Bucket. A key this bucket knows to be deleted (a
// tombstone not yet carried to every side) is NotFound. In Redirect mode a
// delete while the primary is down is acknowledged once its tombstone is
// recorded in the journal; it then reports success whether or not the
// object existed, since the primary cannot be asked. The caller's
// BeforeDelete runs once: on the first side the delete reaches, or, for a
// tombstone recorded while the primary is down, before it is recorded, with
// no driver types to inspect.
func (b *bucket) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	f := b.f
	defer f.locks.lock(key).Unlock()
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
		d := &mirrorDelete{f: f, ctx: ctx, key: key, v: f.clock.Now(), p: p, pending: pending, opts: &driver.DeleteOptions{BeforeDelete: h.guard()}}
		return d.run()
	}
	return f.deleteRedirect(ctx, key, p, pending, h)
}

// mayExist reports whether a pending key's state says it may exist.
func (p keyState) mayExist() bool { return !p.known || !p.deleted }

func (f *Failover) deleteRedirect(ctx context.Context, key string, p keyState, pending bool, h *hook) error {
	pr, sec := f.sides[journal.Primary], f.sides[journal.Secondary]
	// A key this instance knows of no pending work for may still have a
	// redirected copy on the secondary, written by another instance during
	// an outage and not yet reconciled; that instance's reconciler would
	// copy it back over this delete. So the secondary is asked first. If it
	// holds a copy (or cannot say), a tombstone is recorded, newer than the
	// copy (the clock has seen its version), before the primary deletes.
	var copied sideObject
	var recorded *entry
	if !pending {
		o, err := f.inspect(ctx, sec, key)
		if err != nil || o.exists {
			e, rerr := f.record(ctx, key, journal.Delete, f.clock.Now(), journal.Primary, 0)
			if rerr != nil {
				return unavailable(errors.Join(err, rerr), "deleting %q needs a tombstone for the secondary's copy, which cannot be recorded", key)
			}
			recorded, copied = &e, o
		}
	} else {
		e, err := f.record(ctx, key, journal.Delete, f.clock.Now(), journal.Primary, 0)
		if err != nil {
			return err
		}
		recorded = &e
	}
	v := f.clock.Now()
	if recorded != nil {
		v = recorded.s.v
	}
	err := pr.delete(ctx, f.opts.CallTimeout, key, &driver.DeleteOptions{BeforeDelete: h.guard()})
	refused := func(err error) error {
		// The delete must not take effect later either.
		if recorded != nil {
			f.retract(*recorded)
		}
		return err
	}
	switch {
	case err == nil, isNotFound(err) && (copied.exists || pending && p.mayExist()):
		// The primary no longer has it; the tombstone (if any) keeps the
		// secondary's copy from coming back, and the copy goes now.
		f.idx.commit(key, v, true, [2]bool{}, 0)
		if copied.exists {
			_ = sec.delete(ctx, f.opts.CallTimeout, key, nil)
		}
		return nil
	case !pr.outage(ctx, err):
		return refused(err)
	}
	// The primary is down: the delete takes effect by its tombstone, which
	// the caller's hook, not run by the primary, must allow first.
	if herr := h.runUnreached(); herr != nil {
		return refused(herr)
	}
	if recorded == nil {
		if _, err := f.record(ctx, key, journal.Delete, v, journal.Primary, 0); err != nil {
			return err
		}
	}
	f.idx.commit(key, v, true, [2]bool{}, 0)
	// The temporary copy, if any, goes now; the tombstone covers it if not.
	_ = sec.delete(ctx, f.opts.CallTimeout, key, nil)
	f.opts.Logger.Warn("failoverblob: delete recorded as a tombstone while the primary is down", "key", key, "cause", err)
	return nil
}

// mirrorDelete is one delete in Mirror mode, which goes to both sides and
// records a tombstone for each side it may have missed.
type mirrorDelete struct {
	f       *Failover
	ctx     context.Context
	key     string
	v       Version
	p       keyState
	pending bool
	opts    *driver.DeleteOptions

	recorded [2]*entry // tombstones recorded, by missing side
	errs     [2]error  // each side's answer
	answered [2]bool   // the side answered (deleted it, or did not have it)
	found    [2]bool   // the side had it and deleted it
	down     [2]bool   // the side is missing the delete
}

// record records a tombstone for side s, once.
func (d *mirrorDelete) record(s journal.Side) error {
	if d.recorded[s] != nil {
		return nil
	}
	e, err := d.f.record(d.ctx, d.key, journal.Delete, d.v, s, 0)
	if err != nil {
		return err
	}
	d.recorded[s] = &e
	return nil
}

// withdraw retracts the tombstones recorded: the delete changed nothing.
func (d *mirrorDelete) withdraw() {
	for _, e := range d.recorded {
		if e != nil {
			d.f.retract(*e)
		}
	}
}

func (d *mirrorDelete) run() error {
	// While a key has pending work, every change to it is recorded for the
	// sides it is pending on.
	for _, s := range []journal.Side{journal.Primary, journal.Secondary} {
		if d.p.entries[s] > 0 {
			if err := d.record(s); err != nil {
				return err
			}
		}
	}
	for _, s := range d.f.sides {
		done, err := d.deleteOn(s)
		if done {
			return err
		}
	}
	switch {
	case !d.answered[0] && !d.answered[1]:
		return d.bothDown()
	case !d.found[0] && !d.found[1] && !(d.pending && d.p.mayExist()):
		return d.notFound()
	case !d.pending && d.found[journal.Primary] && d.answered[journal.Secondary] && !d.found[journal.Secondary]:
		// The secondary lacked a key the primary had: a write of it by
		// another instance may be pending there, and that instance's
		// reconciler could copy it onto the secondary after this delete.
		// A tombstone keeps it away.
		if err := d.record(journal.Secondary); err != nil {
			return unavailable(err, "delete of %q reached the primary; the tombstone that keeps a pending copy off the secondary cannot be recorded", d.key)
		}
	}
	d.f.idx.commit(d.key, d.v, true, [2]bool{}, 0)
	if d.f.opts.Ack == AckBoth && (d.down[0] || d.down[1]) {
		return unavailable(errors.Join(d.errs[0], d.errs[1]), "delete of %q reached only one side; a repair is recorded", d.key)
	}
	return nil
}

// deleteOn deletes the key on s and takes in its answer. done says the
// delete is decided, with err its outcome.
func (d *mirrorDelete) deleteOn(s *side) (done bool, err error) {
	f, id := d.f, s.id
	if f.opts.Ack == AckBoth && id == journal.Secondary && d.down[journal.Primary] {
		// Both are needed and the primary is down: leave the secondary be.
		d.errs[id], d.down[id] = d.errs[journal.Primary], true
		return false, nil
	}
	err = s.delete(d.ctx, f.opts.CallTimeout, d.key, d.opts)
	d.errs[id] = err
	switch {
	case err == nil:
		d.answered[id], d.found[id] = true, true
	case isNotFound(err) && id == journal.Primary && !d.pending:
		// Both sides hold every key that is not pending: the primary's
		// miss is the answer.
		return true, err
	case isNotFound(err):
		d.answered[id] = true
	case s.outage(d.ctx, err):
		d.down[id] = true
		return d.recordOrFail(id)
	case id == journal.Primary, !d.answered[journal.Primary]:
		// Refused before anything was deleted (by the primary, or by the
		// secondary with the primary down): the delete changes nothing.
		d.withdraw()
		return true, err
	default:
		// The primary's delete stands; the secondary's refusal is repaired
		// like a miss.
		d.down[id] = true
		return d.recordOrFail(id)
	}
	return false, nil
}

func (d *mirrorDelete) recordOrFail(s journal.Side) (done bool, err error) {
	if err := d.record(s); err != nil {
		return true, err
	}
	return false, nil
}

// bothDown settles a delete that no side answered.
func (d *mirrorDelete) bothDown() error {
	err := unavailable(errors.Join(d.errs[0], d.errs[1]), "both sides are down deleting %q", d.key)
	var he *hookError
	if errors.As(d.errs[1], &he) || (errors.Is(d.errs[0], circuit.ErrOpen) && errors.Is(d.errs[1], circuit.ErrOpen)) {
		// The caller's hook refused the delete (it runs for the first side
		// reached, so the primary was not reached), or neither side was
		// asked: nothing was deleted.
		d.withdraw()
		return err
	}
	// A side that was asked may have deleted the object and lost the answer.
	// The delete then has to reach both sides, or they stay apart for good:
	// record it for both, and read the key as deleted until it is
	// reconciled. The caller still learns it failed.
	for _, s := range []journal.Side{journal.Primary, journal.Secondary} {
		if rerr := d.record(s); rerr != nil {
			return rerr
		}
	}
	d.f.idx.commit(d.key, d.v, true, [2]bool{}, 0)
	return err
}

// notFound settles a delete of a key no side had: an answer, not a change.
// Committing it as the key's newest change would overrule a write in flight
// that this answer says came later, so nothing is recorded.
func (d *mirrorDelete) notFound() error {
	d.withdraw()
	if !d.down[journal.Primary] {
		return d.errs[journal.Primary]
	}
	// The secondary holds every key that is not pending, so its miss is an
	// answer too.
	return d.errs[journal.Secondary]
}
