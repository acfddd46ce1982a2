package failoverblob

import (
	"context"
	"errors"
	"fmt"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/journal"
)

// Close commits the write; see writer for when it is durable. If the
// context the writer was opened with is done, nothing is committed.
func (w *writer) Close() error {
	if w.closed {
		return errors.New("failoverblob: writer already closed")
	}
	w.closed = true
	if w.stopLanding != nil {
		w.stopLanding()
	}
	defer w.land()
	defer func() {
		w.abortAll()
		if w.sp != nil {
			_ = w.sp.Close()
		}
	}()
	if err := w.ready(); err != nil {
		return err
	}
	if err := w.f.readOnly(w.key); err != nil {
		// Forced read-only while the write streamed: nothing is committed.
		w.abortAll()
		return err
	}
	defer w.f.locks.lock(w.key).Unlock()
	defer w.f.stale.changing(w.key)()
	if done, err := w.giveWay(); done {
		w.abortAll()
		return err
	}
	if w.opts.IfNotExist {
		if err := w.clearTombstone(); err != nil {
			w.abortAll()
			return err
		}
		// Still under the key's lock, after the commit.
		defer w.f.idx.conditional(w.key, w.version)
	}
	defer w.f.idx.commitStarts(w.key)()
	commit := w.commitRedirect
	if w.f.opts.Mode == Mirror {
		commit = w.commitMirror
	}
	err := commit()
	if err != nil {
		// A side whose commit failed may hold the write all the same.
		w.f.idx.reached(w.key, w.reached)
	}
	return err
}

// ready brings the write to the point of committing: its context is live,
// nothing failed, and the sides' writers are open.
func (w *writer) ready() error {
	if err := w.ctx.Err(); err != nil {
		w.abortAll()
		return err
	}
	if w.err != nil {
		return w.err
	}
	if !w.started {
		return w.start()
	}
	return nil
}

// giveWay decides, under the key's lock, whether the write must not commit,
// and with what outcome: an IfNotExist write of a key that exists where the
// primary's precondition cannot see it, or a write overtaken by a newer
// change.
func (w *writer) giveWay() (done bool, err error) {
	if w.opts.IfNotExist && w.f.idx.cameBefore(w.key, w.version) {
		// A delete answered success as coming after this write, which was
		// in flight (see mirrorDelete.unseen): the write takes its place
		// just before that delete, which removed it, whatever came since.
		return true, nil
	}
	if w.opts.IfNotExist {
		if err := w.f.journalKnown(w.ctx); err != nil {
			return true, err // whether the key exists may be on the side not read
		}
		p, pending, err := w.f.state(holding(w.ctx, w.key), w.key)
		switch {
		case err != nil:
			return true, err
		case pending && !p.deleted:
			// The newest version may be only on the secondary, where the
			// primary's precondition cannot see it.
			return true, fmt.Errorf("%w: %q", errExists, w.key)
		}
	}
	newer, by := w.f.idx.overtaken(w.key, w.version)
	if !newer {
		return false, nil
	}
	// A change stamped after this write opened has already committed.
	// Committing now would put an older version over it, which the
	// reconciler would later undo in favour of the newer one, or leave the
	// sides apart; instead the write takes its place just before that
	// change, which replaced it. Nothing is left to store.
	switch {
	case w.opts.IfNotExist && !by.deleted:
		return true, fmt.Errorf("%w: %q", errExists, w.key)
	case by.conditional:
		// That change found the key absent: nothing came just before it.
		return true, unavailable(nil, "an IfNotExist write of %q committed while this write was in flight", w.key)
	case w.opts.IfNotExist && by.found:
		// That delete removed an object: the key existed just before it,
		// where this write takes its place.
		return true, fmt.Errorf("%w: %q", errExists, w.key)
	case w.opts.IfNotExist:
		// Whether the key was absent just before the delete is unknown.
		return true, unavailable(nil, "%q was deleted while an IfNotExist write of it was in flight", w.key)
	}
	return true, nil
}

// clearTombstone applies a pending tombstone of the key to the sides this
// IfNotExist write goes to: a side may still hold the object the tombstone
// deleted, and its precondition would refuse the write. The delete is part
// of this write and rides on its breaker slot (a half-open breaker has no
// other). If it fails, the side's answer would say the deleted object
// exists: the write fails.
func (w *writer) clearTombstone() error {
	p, ok := w.f.idx.get(w.key)
	if !ok || !p.known || !p.deleted {
		return nil
	}
	if p.hintDel.unseen {
		// The delete found nothing, and what a side holds now may be
		// another writer's write, which its tombstone does not remove
		// (see stamp.unseen): removing it would lose that write. Where
		// neither side holds the key, the tombstone has nothing to
		// remove, and the write's own condition decides.
		if err := w.f.neitherHolds(w.ctx, w.key); err != nil {
			return unavailable(err, "writing %q with IfNotExist: its delete found nothing on the secondary, and whether the key exists is up to its repair", w.key)
		}
		return nil
	}
	for _, sw := range w.sw {
		if sw == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(w.ctx, w.f.opts.CallTimeout)
		err := sw.s.d.Delete(ctx, w.key, &driver.DeleteOptions{})
		cancel()
		if err != nil && !isNotFound(err) {
			return unavailable(err, "writing %q with IfNotExist needs its deleted object gone from the %s", w.key, sw.s.id)
		}
	}
	return nil
}

// neitherHolds returns nil if both sides answer that they do not hold
// key, and otherwise why not.
func (f *Failover) neitherHolds(ctx context.Context, key string) error {
	got, _, err := f.inspectBoth(ctx, key)
	if err != nil {
		return err
	}
	for _, s := range f.sides {
		if got[s.id].exists {
			return fmt.Errorf("the %s holds %q", s.id, key)
		}
	}
	return nil
}

// commitRedirect commits a Redirect-mode write: on the primary, or, if the
// primary is down (or fails at its commit), on the secondary with a repair
// for the primary recorded at the same time.
func (w *writer) commitRedirect() error {
	rec := w.f.newRecords(w.ctx, w.key, journal.Put, w.version, w.size)
	if pw := w.sw[journal.Primary]; pw != nil {
		committed, err := w.commitPrimary(pw, rec)
		if committed || err != nil {
			return err
		}
	}
	sw := w.sw[journal.Secondary]
	w.sw[journal.Secondary] = nil
	err, rerr := w.commitRecording(sw, rec, !rec.recorded(journal.Primary))
	switch {
	case rerr != nil:
		w.reached[journal.Secondary] = err == nil
		return rerr
	case err != nil && sw.s.outage(w.ctx, err):
		w.reached[journal.Secondary] = true
		return unavailable(errors.Join(w.missed[journal.Primary], err), "both sides are down writing %q", w.key)
	case err != nil:
		return err
	}
	w.f.idx.commit(w.key, w.version, false, only(journal.Secondary), w.size)
	return nil
}

// commitPrimary commits the write on the primary. While a key has pending
// work, every change to it is recorded, so the reconciler sees the newest
// one, and recorded before it is committed: a crash in between then leaves
// an entry for a write that did not happen, not an object newer than the
// journal knows of, which an instance that works out the key's state while
// the primary is down would not see (see decide). If the primary fails
// with an outage, the write is redirected to the secondary (committed is
// false, err nil) for commitRedirect to commit there.
func (w *writer) commitPrimary(pw *sideWriter, rec *records) (committed bool, err error) {
	_, pending := w.f.idx.get(w.key)
	// An instance that has not read the whole journal (a side's part of it
	// could not be listed) cannot tell whether the key has pending work:
	// another instance's write of it may wait on the secondary, and a
	// version the journal does not know of on the primary would be taken,
	// once it is known, for older than that write.
	pending = pending || !w.f.idx.journalRead()
	w.sw[journal.Primary] = nil
	if pending {
		if err := rec.record(journal.Primary); err != nil {
			pw.abort(nil)
			return false, err
		}
	}
	err = pw.commit()
	switch {
	case err == nil:
		w.f.idx.commit(w.key, w.version, false, only(journal.Primary), w.size)
		return true, nil
	case !pw.s.outage(w.ctx, err):
		return false, err
	}
	w.reached[journal.Primary] = true
	// The entry recorded before the commit was stored before the bytes
	// are replayed to the secondary, which takes as long as the write
	// has bytes: a pass that found neither side holding the write long
	// after the entry (see Failover.mayLand) would take it for failed.
	// A new entry is recorded beside the secondary's commit.
	rec.renew(journal.Primary)
	return false, w.redirect(err)
}

// commitRecording commits sw, a redirected write, and, if record is set,
// records at the same time that the primary is missing it: with a journal
// on the buckets, the entry and the data are two requests, and a write
// waits for the slower, not for both in turn. The write is acknowledged
// only once both have succeeded, so an acknowledged write is always
// recorded; a crash between the two can leave a copy no entry describes,
// which reads do not serve (see readUnrecorded) and the verifier finds.
// err is the commit's outcome, rerr the record's.
func (w *writer) commitRecording(sw *sideWriter, rec *records, record bool) (err, rerr error) {
	if !record {
		return sw.commit(), nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rerr = rec.recordAfter(journal.Primary)
	}()
	err = sw.commit()
	<-done
	return err, rerr
}

// commitMirror commits a Mirror-mode write on the sides it is open on,
// with a repair recorded for each side that missed it, and acknowledges it
// as the AckPolicy says.
func (w *writer) commitMirror() error {
	rec := w.f.newRecords(w.ctx, w.key, journal.Put, w.version, w.size)
	// A side that missed the write needs a repair; while a key has pending
	// work, every change to it is recorded for the sides it is pending on.
	p, _ := w.f.idx.get(w.key)
	for _, s := range sideIDs {
		if w.missed[s] != nil || p.entries[s] > 0 {
			// A side the write is committing on too gets an alongside
			// entry: should its commit fail, an ordinary one follows.
			rec.alongside[s] = w.missed[s] == nil
			if err := rec.record(s); err != nil {
				return err
			}
		}
	}
	applied, err := w.commitEach(rec)
	if err != nil {
		return err
	}
	return w.acknowledgeMirror(applied)
}

// commitEach commits the write on each side it is open on, and records a
// repair for a side whose commit fails. A write that carries a condition
// (IfNotExist, or the caller's BeforeWrite, which runs for the first side
// only) commits on the primary first: its refusal refuses the write before
// the secondary commits, and a repair for the primary is recorded before
// the secondary commits, or, for the secondary, after the primary did, so
// a crash in between is left to the verifier. Any other write commits on
// both sides at once (see commitBoth), and a repair for a side whose commit
// failed is recorded once both have answered. A refusal (a failed
// precondition, say) while the other side did not commit refuses the write.
func (w *writer) commitEach(rec *records) (applied [2]bool, err error) {
	if w.sw[journal.Primary] != nil && w.sw[journal.Secondary] != nil && !w.conditional() {
		errs := w.commitBoth()
		applied = [2]bool{errs[0] == nil, errs[1] == nil}
		for _, s := range sideIDs {
			if done, err := w.commitFailed(rec, s, errs[s], applied); done {
				return applied, err
			}
		}
		return applied, nil
	}
	for _, s := range sideIDs {
		sw := w.sw[s]
		if sw == nil {
			continue
		}
		w.sw[s] = nil
		err := sw.commit()
		applied[s] = err == nil
		if done, err := w.commitFailed(rec, s, err, applied); done {
			return applied, err
		}
	}
	return applied, nil
}

// conditional reports whether the write carries a condition a side may
// refuse it for: IfNotExist, or the caller's BeforeWrite.
func (w *writer) conditional() bool {
	return w.opts.IfNotExist || w.opts.BeforeWrite != nil
}

// commitBoth commits the write on both sides at once, so that it takes
// the slower side's round trip rather than the sum of both, and returns
// each side's outcome.
func (w *writer) commitBoth() (errs [2]error) {
	pw, sw := w.sw[journal.Primary], w.sw[journal.Secondary]
	w.sw = [2]*sideWriter{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		errs[journal.Secondary] = sw.commit()
	}()
	errs[journal.Primary] = pw.commit()
	<-done
	return errs
}

// commitFailed takes in err, the outcome of side s's commit, given the
// sides that applied the write. A failure is recorded as a repair for s,
// unless it is a refusal while the other side did not apply the write,
// which refuses it. done says the write is decided, with outcome err.
//
// A primary's refusal of a write the secondary committed at the same time
// cannot undo that commit (putting back what the secondary held before
// could bring back an older version over one another instance wrote
// there): the write is recorded as missing on the primary, so that the
// sides converge, and acknowledgeMirror reports it unavailable, its
// outcome being left to the repair.
func (w *writer) commitFailed(rec *records, s journal.Side, err error, applied [2]bool) (done bool, _ error) {
	if err == nil {
		return false, nil
	}
	outage := w.f.sides[s].outage(w.ctx, err)
	if !outage && !applied[s.Other()] {
		return true, err
	}
	w.missed[s], w.reached[s] = err, outage
	if !outage && s == journal.Primary {
		w.refused = err
	}
	if err := rec.recordMissed(s); err != nil {
		return true, err
	}
	return false, nil
}

// acknowledgeMirror settles a Mirror-mode write committed on the sides in
// applied.
func (w *writer) acknowledgeMirror(applied [2]bool) error {
	if !applied[0] && !applied[1] {
		return unavailable(errors.Join(w.missed[0], w.missed[1]), "both sides are down writing %q", w.key)
	}
	holder := journal.Primary
	if !applied[journal.Primary] {
		holder = journal.Secondary
	}
	w.f.idx.commit(w.key, w.version, false, applied, w.size)
	if w.refused != nil {
		return unavailable(w.refused, "the primary refused the write of %q, which the secondary, written at the same time, committed; a repair for the primary is recorded", w.key)
	}
	if w.f.opts.Ack == AckBoth && !(applied[0] && applied[1]) {
		return unavailable(w.missed[holder.Other()], "write of %q reached only the %s; a repair is recorded", w.key, holder)
	}
	if !applied[journal.Primary] {
		w.f.opts.Logger.Warn("failoverblob: mirrored write reached only the secondary", "key", w.key, "cause", w.missed[journal.Primary])
	}
	return nil
}
