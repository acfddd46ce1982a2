package failoverblob

import (
	"context"
	"errors"
	"time"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/journal"
)

// state returns what the index knows of key, and whether key has pending
// work. The state of a pending key that is unknown (see keyState) is first
// resolved from the versions the sides hold; if a side that may hold the
// newest version cannot be asked, the error wraps ErrUnavailable; the
// state returned with it is what the index knows, for callers that go
// ahead all the same.
func (f *Failover) state(ctx context.Context, key string) (keyState, bool, error) {
	if err := f.sureOf(ctx, key); err != nil {
		p, _ := f.idx.get(key) // its state is unknown (see markUnsure)
		return p, true, err
	}
	if err := f.keptRecorded(ctx, key, false); err != nil {
		// A change that goes ahead all the same (a delete) still sees what
		// the index knows: the entries, and a state this process committed.
		p, _ := f.idx.get(key)
		return p, true, err
	}
	p, ok := f.idx.get(key)
	if !ok || p.known {
		return p, ok, nil
	}
	if ctx.Value(lockHeld{}) != key {
		// Resolving under the key's lock keeps this process's own changes
		// of the key from committing between the sides' answers and the
		// index taking them in.
		defer f.locks.lock(key).Unlock()
		if p, ok = f.idx.get(key); !ok || p.known {
			return p, ok, nil
		}
		// A change that held the lock may have been withdrawn meanwhile.
		if err := f.sureOf(ctx, key); err != nil {
			return p, true, err
		}
	}
	return f.resolve(ctx, key, p)
}

// sureOf returns nil unless key's hints may count a withdrawn entry (see
// index.markUnsure). A reading of the whole journal settles that: one is
// tried at most once every journalRetry.
func (f *Failover) sureOf(ctx context.Context, key string) error {
	if !f.idx.isUnsure(key) {
		return nil
	}
	var err error
	if f.unsureTries.due() {
		err = f.learn(ctx, f.readingsBegun.Load())
	}
	if !f.idx.isUnsure(key) {
		return nil
	}
	return unavailable(err, "a change of %q was withdrawn, and what the journal held for it before cannot be read until the whole journal can", key)
}

// sideObject is what one side answered about a key.
type sideObject struct {
	asked   bool // the side answered
	exists  bool
	s       stamp
	size    int64
	modTime time.Time
	attrs   *driver.Attributes
}

// resolve reads the version of key on both sides and works out its state
// (see decide). Callers hold the key's lock.
func (f *Failover) resolve(ctx context.Context, key string, p keyState) (keyState, bool, error) {
	var objs [2]sideObject
	var errs [2]error
	for _, s := range f.sides {
		objs[s.id], errs[s.id] = f.inspect(ctx, s, key)
		if errs[s.id] != nil && !s.outage(ctx, errs[s.id]) {
			return p, true, errs[s.id]
		}
	}
	q, own := f.ownOrder(p, objs)
	st, ok := decide(q, own, f.opts.MaxClockSkew)
	if ok && st.deleted && (!objs[0].asked || !objs[1].asked) && !f.idx.journalRead() {
		// The part of the journal this instance has never read (kept on
		// a side that was down whenever it listed) may hold a change of
		// the key newer than its tombstones, made while the other side
		// was down, which the side not asked may hold.
		ok = false
	}
	if ok && st.deleted && !st.latest.v.IsZero() {
		st.latest = p.hintDel // as the journal gave it
	}
	if ok && !st.deleted {
		// The state keeps the stamps as the sides gave them.
		for id := range objs {
			if st.on[id] {
				st.latest = objs[id].s
				break
			}
		}
	}
	if !ok {
		down := journal.Primary
		if errs[down] == nil {
			down = journal.Secondary
		}
		return p, true, unavailable(errors.Join(errs[0], errs[1]), "%q has pending work and the %s, which may hold its newest version, is down", key, down)
	}
	f.idx.resolved(key, st)
	if q, ok := f.idx.get(key); ok {
		return q, true, nil
	}
	return st, true, nil
}

// ownOrder returns p and objs with the stamps of the changes this writer
// made, by a clock no further ahead than its own now is (plus
// MaxClockSkew), placed by their versions rather than by when they were
// stored: the journal entries this process appended are placed by its own
// clock (see record), while the objects on the sides, and the entries a
// listing of the journal returns, are placed by the storage's clock, and
// a writer whose clock runs fast would otherwise take its own earlier
// tombstone, placed an hour ahead, for newer than its own later write, or
// the reverse. A version beyond its own clock (written before the clock
// stepped back) keeps the storage's place. Only reads' decisions use it:
// the reconciler places every writer's changes by the storage's clock.
func (f *Failover) ownOrder(p keyState, objs [2]sideObject) (keyState, [2]sideObject) {
	limit := f.opts.Now().UnixNano() + int64(f.opts.MaxClockSkew)
	own := func(s *stamp) {
		if !s.v.IsZero() && s.v.Writer == f.opts.WriterID && s.v.Wall <= limit {
			s.at = time.Time{}
		}
	}
	own(&p.hintPut)
	own(&p.hintDel)
	for i := range objs {
		if objs[i].exists {
			own(&objs[i].s)
		}
	}
	return p, objs
}

// decide works out the state of a pending key whose state is unknown from
// what the sides hold (objs; a side that could not be asked has asked
// false) and the newest put and delete the journal holds for it (p's
// hints). The newest of the objects found and the journaled delete is the
// key's state; a journaled put whose data is on no side is a write that
// failed. Every change to a pending key is journaled, so no side holds a
// version newer than the journal knows of, except through other writers.
// ok is false when a side that could not be asked may hold the newest
// version: a journaled put newer than everything else known.
func decide(p keyState, objs [2]sideObject, skew time.Duration) (st keyState, ok bool) {
	held, have := newestHeld(objs, skew)
	switch {
	case !objs[0].asked && !objs[1].asked:
		// Nothing is answered on the strength of entries alone: a
		// tombstone may be an entry left behind, older than what the
		// sides hold.
		return keyState{}, false
	case (!objs[0].asked || !objs[1].asked) && p.putBeyond(held, have, skew):
		return keyState{}, false
	case p.hintDel.unseen && !objs[journal.Secondary].asked && (have || !p.hintPut.v.IsZero()),
		p.hintDel.unseen && !objs[journal.Primary].asked && !have && !p.hintPut.v.IsZero():
		// Whether the unseen tombstone removes what the primary holds
		// depends on what the secondary holds; or the primary may hold
		// the version of a put, which the tombstone does not remove.
		return keyState{}, false
	case p.deleteCovers(held, have, skew):
		return keyState{latest: p.hintDel, deleted: true}, true
	case !have && (!objs[0].asked || !objs[1].asked):
		// A side that could not be asked may hold a version from before
		// the key had pending work, which no entry describes.
		return keyState{}, false
	case !have:
		// No side holds it and no delete is journaled: every write the
		// journal knows of failed.
		return keyState{deleted: true}, true
	}
	return held, true
}

// newestHeld returns the newest object the sides that answered hold, as a
// key's state; have is false when none holds the key.
func newestHeld(objs [2]sideObject, skew time.Duration) (st keyState, have bool) {
	for id, o := range objs {
		if !o.asked || !o.exists {
			continue
		}
		switch c := o.s.compare(st.latest, skew); {
		case !have || c > 0:
			st.latest, st.on, st.size, st.modTime = o.s, [2]bool{}, o.size, o.modTime
			st.on[id] = true
			have = true
		case c == 0:
			st.on[id] = true
		}
	}
	return st, have
}

// deleteCovers reports whether the newest delete the journal holds is as
// new as held, the newest object found (have false: none).
//
// An unseen tombstone (see stamp.unseen) covers only a version the
// secondary lacks and the newest put the journal holds does not describe,
// as its repair applies it (see repairKey.unseenVoid).
func (p keyState) deleteCovers(held keyState, have bool, skew time.Duration) bool {
	if have && p.hintDel.unseen && (held.on[journal.Secondary] || held.latest.v == p.hintPut.v) {
		return false
	}
	return !p.hintDel.v.IsZero() && (!have || p.hintDel.compare(held.latest, skew) >= 0)
}

// putBeyond reports whether the newest put the journal holds is newer than
// both held, the newest object found (have false: none), and the newest
// delete it holds.
func (p keyState) putBeyond(held keyState, have bool, skew time.Duration) bool {
	return !p.hintPut.v.IsZero() && (!have || p.hintPut.compare(held.latest, skew) > 0) &&
		(p.hintDel.v.IsZero() || p.hintPut.compare(p.hintDel, skew) > 0)
}

// inspect reads the attributes of key on s, as a sideObject. A miss is an
// answer (exists false); any other failure is returned.
func (f *Failover) inspect(ctx context.Context, s *side, key string) (sideObject, error) {
	attrs, err := s.attributes(ctx, f.opts.CallTimeout, key)
	switch {
	case isNotFound(err):
		return sideObject{asked: true}, nil
	case err != nil:
		return sideObject{}, err
	}
	st := objectStamp(attrs)
	f.seen(key, s.id, st)
	return sideObject{asked: true, exists: true, s: st, size: attrs.Size, modTime: attrs.ModTime, attrs: attrs}, nil
}
