package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/failoverblob/failoverblob/journal"
)

// entry is a journal entry this process appended, as retract needs it.
type entry struct {
	id      string
	key     string
	missing journal.Side
	op      journal.Op
	s       stamp
	prev    stamp // the key's newest put or delete hint before this entry
}

// record appends a journal entry saying side missing lacks the change, and
// counts it in the index. Callers hold the key's lock.
func (f *Failover) record(ctx context.Context, key string, op journal.Op, v Version, missing journal.Side, size int64) (entry, error) {
	now := f.opts.Now()
	id, err := f.opts.Journal.Append(ctx, journal.Entry{
		Key: key, Op: op, Version: v.String(), Missing: missing, Size: size, Recorded: now,
	})
	if err != nil {
		if id != "" {
			// The entry may be stored all the same, for a change that is
			// then not made (or is recorded again): it must not count.
			f.dropUnrecorded(id, key, op, v)
		}
		return entry{}, fmt.Errorf("failoverblob: recording that the %s is missing %s of %q: %w", missing, op, key, err)
	}
	e := entry{id: id, key: key, missing: missing, op: op, s: stamp{v: v, at: now, unseen: unseenEntry(op, size)}}
	e.prev = f.idx.added(key, missing, op, e.s, now, id)
	f.warnIfUnreconciled()
	return e, nil
}

// warnIfUnreconciled logs, once, that work has been pending for three
// reconcile intervals while no Run is running: nothing will repair it. It
// looks at most once an interval, the index's oldest entry being a scan.
func (f *Failover) warnIfUnreconciled() {
	if f.running.Load() > 0 || f.warnedNoRun.Load() {
		return
	}
	now := time.Now()
	last := f.lastNoRunCheck.Load()
	if now.UnixNano()-last < int64(f.opts.ReconcileInterval) || !f.lastNoRunCheck.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if _, oldest := f.idx.stats(); !oldest.IsZero() && now.Sub(oldest) > 3*f.opts.ReconcileInterval && !f.warnedNoRun.Swap(true) {
		f.opts.Logger.Warn("failoverblob: work has been pending for several reconcile intervals and no reconciler is running: call Run (or open the bucket with OpenBucket or by URL)",
			"oldest_pending", oldest, "reconcile_interval", f.opts.ReconcileInterval)
	}
}

// retract withdraws an entry recorded for a change that then changed
// nothing (it was refused, or no side was asked), so that it does not take
// effect later: a Drain that listed it skips it, the index forgets it, and
// the journal drops it. Dropping it is best effort: an entry left behind is
// verified by version before it is applied. Callers hold the key's lock.
func (f *Failover) retract(e entry) {
	if strings.HasPrefix(e.id, keptPrefix) {
		f.idx.unhint(e.id, e.key, e.op, e.s, e.prev)
		f.idx.dropKept(e.id)
		f.idx.acked(e.key, e.missing, []string{e.id}, time.Time{})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.CallTimeout)
	defer cancel()
	// Before the hint goes: a listing's sync in between must leave the
	// entry out, and a Drain that listed it before must not apply it.
	f.markWithdrawn(e.id, retraction{at: time.Now()})
	if !f.idx.unhint(e.id, e.key, e.op, e.s, e.prev) {
		f.relearn(ctx, e.key)
	}
	if err := f.opts.Journal.Ack(ctx, e.id); err != nil {
		f.unsettle(e.key)
		return
	}
	f.idx.acked(e.key, e.missing, []string{e.id}, time.Time{})
	f.markWithdrawn(e.id, retraction{at: time.Now(), dropped: true})
}

// unmark removes the markers a withdrawn delete wrote (see Failover.unmark).
func (r *records) unmark() {
	for _, s := range sideIDs {
		if !r.marked[s] {
			continue
		}
		r.marked[s] = false
		ctx, cancel := context.WithTimeout(context.Background(), r.f.opts.CallTimeout)
		r.f.unmark(ctx, r.f.sides[s], r.key, r.v)
		cancel()
	}
}

// markWithdrawn records the withdrawal r of the entry id.
func (f *Failover) markWithdrawn(id string, r retraction) {
	f.retractedMu.Lock()
	f.retracted[entryName(id)] = r
	f.retractedMu.Unlock()
}

// relearn reads the journal again for key, whose hint names an entry just
// withdrawn: what came before that entry is known only to the journal,
// and a reading leaves the entry out now. If the journal cannot be read
// whole, the key is unavailable until it can (see index.markUnsure).
func (f *Failover) relearn(ctx context.Context, key string) {
	if _, err := f.readJournal(ctx); err != nil {
		f.idx.markUnsure(key)
	}
}

// dropUnrecorded withdraws the entry id, which an append that failed may
// have stored all the same (see journal.Journal.Append): a reading of the
// journal leaves it out and a Drain that lists it acknowledges it, as for a
// withdrawn entry, and the journal is asked to drop it now.
//
// The withdrawal is remembered even when the journal drops the entry at
// once: the append may still land after the drop (a write held past its
// deadline). It is forgotten once a Drain acknowledges the entry, or after
// unrecordedMemory.
//
// The index counts the entry only if a reading of the journal took it in
// while the append was under way: the key's hint then names it, and the
// journal is read again (see relearn).
func (f *Failover) dropUnrecorded(id, key string, op journal.Op, v Version) {
	f.markWithdrawn(id, retraction{at: time.Now(), unrecorded: true})
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.CallTimeout)
	defer cancel()
	if f.idx.hinted(key, op, v) {
		f.relearn(ctx, key)
	}
	_ = f.opts.Journal.Ack(ctx, id)
	f.unsettle(key)
}

// unsettle makes key's state unknown in the index, after this process
// withdrew an entry of it from a journal other instances read, which may
// hold it still (its append failed and may have stored it all the same, or
// its acknowledgement failed): another instance's reconciler may apply it,
// changing the key on the sides behind this process's index, which would
// otherwise go on listing (or reading) the key by the state it knew. The
// next read or listing of the key resolves it from the sides' versions.
func (f *Failover) unsettle(key string) {
	if f.sharedJournal() {
		f.idx.unsettle(key)
	}
}

// unrecordedMemory is how long the withdrawal of a failed append's entry
// is remembered when no Drain acknowledges the entry: a write that lands
// later than that is a write delivered late (see README, Limitations).
const unrecordedMemory = time.Hour

// retraction is an entry retract withdrew: when, and whether the journal
// dropped it.
type retraction struct {
	at         time.Time
	dropped    bool
	unrecorded bool // the entry of an append that failed (see dropUnrecorded)
}

// isRetracted reports whether the entry was withdrawn after a Drain may have
// listed it. Callers hold the key's lock, which retract also held.
func (f *Failover) isRetracted(id string) bool {
	f.retractedMu.Lock()
	defer f.retractedMu.Unlock()
	_, ok := f.retracted[entryName(id)]
	return ok
}

// dropped records that the journal dropped the entries ids, of which the
// withdrawn ones can now be forgotten (see forgetRetracted).
func (f *Failover) dropped(ids []string) {
	f.retractedMu.Lock()
	defer f.retractedMu.Unlock()
	for _, id := range ids {
		if _, ok := f.retracted[entryName(id)]; ok {
			f.retracted[entryName(id)] = retraction{at: time.Now(), dropped: true}
		}
	}
}

// forgetRetracted forgets the entries the journal dropped before listedAt:
// a listing made then no longer holds them.
func (f *Failover) forgetRetracted(listedAt time.Time) {
	f.retractedMu.Lock()
	defer f.retractedMu.Unlock()
	for id, r := range f.retracted {
		if r.dropped && r.at.Before(listedAt) || r.unrecorded && listedAt.Sub(r.at) > unrecordedMemory {
			delete(f.retracted, id)
		}
	}
}

// records are the journal entries one change of a key records: at most one
// for each side missing it.
type records struct {
	f    *Failover
	ctx  context.Context
	key  string
	op   journal.Op
	v    Version
	size int64
	e    [2]*entry // by missing side
	// unseen makes the entry for the primary an unseen tombstone (see
	// stamp.unseen); a tombstone the journal could not record is kept as
	// an ordinary one.
	unseen bool
	// alongside marks the entry for a side as an alongside one (see
	// alongsideSize): the change is being made on that side too.
	alongside [2]bool
	also      []*entry // entries recorded before e's, for the same change
	// marked says a delete wrote its marker on the side (see
	// markerPrefix), which withdraw removes.
	marked [2]bool
}

// newRecords returns the records of a change of key, none recorded yet.
func (f *Failover) newRecords(ctx context.Context, key string, op journal.Op, v Version, size int64) *records {
	return &records{f: f, ctx: ctx, key: key, op: op, v: v, size: size}
}

// record records, once, that side s is missing the change.
func (r *records) record(s journal.Side) error {
	if r.e[s] != nil {
		return nil
	}
	size := r.size
	if r.unseen && r.op == journal.Delete && s == journal.Primary {
		size = unseenSize
	}
	if r.alongside[s] && r.op == journal.Put {
		size = alongsideSize(size)
	}
	e, err := r.f.record(r.ctx, r.key, r.op, r.v, s, size)
	if err != nil {
		return err
	}
	r.e[s] = &e
	return nil
}

// recordAfter records, once, that side s is missing a change that reached
// a side, or may have. If the journal cannot record it, the caller fails,
// but the change may stand all the same, on some sides and not others:
// entries for both sides (for the primary alone, in Redirect mode) are
// kept in the index, so that this process
// answers for the change (its reads and listings weigh it, as recorded
// entries), and the next Drain records them. An entry for a side that has
// the change, or for a change no side has, is settled by its repair with
// nothing to do.
func (r *records) recordAfter(s journal.Side) error {
	err := r.record(s)
	if err != nil {
		for _, s := range sideIDs {
			// In Redirect mode the secondary holds only temporary copies:
			// no change is ever repaired onto it.
			if s == journal.Secondary && r.f.opts.Mode == Redirect {
				continue
			}
			if r.e[s] == nil {
				e := r.f.keep(r.key, r.op, r.v, s, r.size)
				r.e[s] = &e
			}
		}
	}
	return err
}

// recordMissed records, as recordAfter does, that side s is missing a
// change whose commit there failed. An alongside entry for s (see
// alongsideSize) said the change was being made there: an ordinary one is
// recorded beside it.
func (r *records) recordMissed(s journal.Side) error {
	if r.alongside[s] {
		r.alongside[s] = false
		r.renew(s)
	}
	return r.recordAfter(s)
}

// renew makes the entry for side s, if recorded, one of the change's
// earlier entries (also), so that the next record for s appends a new one.
func (r *records) renew(s journal.Side) {
	if r.e[s] != nil {
		r.also = append(r.also, r.e[s])
		r.e[s] = nil
	}
}

// keep counts in the index an entry the journal could not record.
func (f *Failover) keep(key string, op journal.Op, v Version, missing journal.Side, size int64) entry {
	now := f.opts.Now()
	e := entry{key: key, missing: missing, op: op, s: stamp{v: v, at: now}}
	e.id, e.prev = f.idx.keep(key, missing, op, e.s, now, size)
	return e
}

// recordKept records in the journal the entries the index keeps (see
// records.recordAfter). Drain calls it first, so that its listing holds
// them. Each is recorded under its key's lock, so that a withdrawal does
// not race it.
func (f *Failover) recordKept(ctx context.Context) error {
	return f.recordKeptOf(ctx, func(string) bool { return true })
}

// recordKeptOf records the kept entries of the keys match accepts. A key
// whose lock ctx holds (see holding) is not locked again.
func (f *Failover) recordKeptOf(ctx context.Context, match func(key string) bool) error {
	var errs []error
	for id, r := range f.idx.keptEntries() {
		if !match(r.key) {
			continue
		}
		unlock := func() {}
		if ctx.Value(lockHeld{}) != r.key {
			unlock = f.locks.lock(r.key).Unlock
		}
		if !f.idx.isKept(id) {
			unlock() // withdrawn meanwhile
			continue
		}
		recorded, err := f.opts.Journal.Append(ctx, journal.Entry{
			// Recorded now: the time since the change was stamped places
			// it (see entryAt).
			Key: r.key, Op: r.op, Version: r.s.v.String(), Missing: r.missing, Size: r.size, Recorded: f.opts.Now(),
		})
		if err == nil {
			f.idx.recordedKept(id, recorded)
		} else {
			errs = append(errs, fmt.Errorf("failoverblob: recording that the %s is missing %s of %q: %w", r.missing, r.op, r.key, err))
		}
		unlock()
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// keptRecorded returns nil if no change of key (with under, of any key
// under the prefix key) waits to be recorded (see keep). Otherwise it tries
// to record them now, at most once every journalRetry for each key, and
// returns the error that answers for such a key until then: a crash before the record
// would lose the change, and the sides would be reconciled as if it had
// not been made, so what a read showed could be undone.
func (f *Failover) keptRecorded(ctx context.Context, key string, under bool) error {
	if !f.idx.unrecorded(key, under) {
		return nil
	}
	match := func(k string) bool { return k == key }
	if under {
		match = func(k string) bool { return strings.HasPrefix(k, key) }
	}
	var err error
	if f.idx.keptDue(key, under, journalRetry) {
		if err = f.recordKeptOf(ctx, match); err == nil && !f.idx.unrecorded(key, under) {
			return nil
		}
	}
	waiting, ok := f.idx.unrecordedKey(key, under)
	switch {
	case !ok:
		return nil
	case under:
		return unavailable(err, "a change of %q (under %q) that failed may have reached a side, and the journal could not record it yet", waiting, key)
	}
	return unavailable(err, "a change of %q that failed may have reached a side, and the journal could not record it yet", key)
}

// recorded reports whether the entry for side s is recorded.
func (r *records) recorded(s journal.Side) bool { return r.e[s] != nil }

// withdraw retracts the entries recorded: the change changed nothing.
//
// A change recorded for both sides has two entries of one version, the
// second appended over the first's hint: the hint before the change is
// the one the first entry found, and every entry goes back to it.
func (r *records) withdraw() {
	r.unmark()
	all := append(r.e[:], r.also...)
	var prev *stamp
	for _, e := range all {
		if e != nil && e.prev.v != r.v {
			prev = &e.prev
		}
	}
	for _, e := range all {
		if e != nil {
			w := *e
			if prev != nil {
				w.prev = *prev
			}
			r.f.retract(w)
		}
	}
}
