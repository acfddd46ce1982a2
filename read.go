package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/journal"
)

// read runs op on the side that should answer a read of key, falling over to
// the other side when that one is down:
//   - a key with a pending delete reads as not found;
//   - a key with a pending put is read from a side holding its newest
//     version, and is unavailable while every such side is down;
//   - any other key is read from the primary, then from the secondary. A miss
//     on the secondary is proof of absence only in Mirror mode.
//
// A change of key being committed is waited for first: the sides may show
// it before the index does, and a read that went by the index meanwhile
// could answer with the state before it after another read had seen it.
func (f *Failover) read(ctx context.Context, key string, op sideRead) error {
	if err := f.idx.awaitCommit(ctx, key); err != nil {
		return err
	}
	if err := f.journalKnown(ctx); err != nil {
		return err
	}
	p, pending, err := f.state(ctx, key)
	switch {
	case err != nil:
		return err
	case pending:
		return f.readPending(ctx, key, p, op)
	case f.opts.StrictReads:
		return f.readStrict(ctx, key, op)
	}
	return f.readSettled(ctx, key, op)
}

// journalKnown returns nil unless strict reads (Options.StrictReads) need
// the whole journal and this instance has not read it in full since it
// opened (for a read, a listing, a delete, whose answer says whether the
// key existed, or an IfNotExist write): a side that could not be listed
// may hold entries for any key (a tombstone, or the record of a newer
// version on the other side), which the sides' versions alone do not
// show. It then reads the journal again, at most once every journalRetry,
// and is unavailable until it can.
func (f *Failover) journalKnown(ctx context.Context) error {
	if !f.opts.StrictReads || f.idx.journalRead() {
		return nil
	}
	if !f.journalTries.due() {
		return unavailable(nil, "strict reads need the whole journal, and a side's part of it could not be read since the bucket opened")
	}
	err := f.learn(ctx, f.readingsBegun.Load())
	if f.idx.journalRead() {
		return nil
	}
	return unavailable(err, "strict reads need the whole journal, and a side's part of it cannot be read")
}

// journalRetry is how often journalKnown tries again to read a journal it
// could not read in full, and keptRecorded to record kept entries.
const journalRetry = time.Second

// retries paces a retry made on callers' behalf to one every journalRetry,
// however many callers ask.
type retries struct{ last atomic.Int64 } // when the last began, in Unix nanoseconds

// due reports whether a retry may begin now, and if so counts it begun.
func (r *retries) due() bool {
	now := time.Now().UnixNano()
	last := r.last.Load()
	return now-last >= int64(journalRetry) && r.last.CompareAndSwap(last, now)
}

// readStrict reads a key this instance knows of no pending work for
// (Options.StrictReads): another instance may have redirected a newer
// version this one has not learnt of yet, so both sides' versions are
// compared and the newer one served. A newer version on the secondary is
// served only once the journal, read again, has an entry for the key: an
// acknowledged write that missed the primary is recorded before it is
// acknowledged, while a copy no entry accounts for (a write or a delete
// cut by a crash between the sides, or a change still in flight) is not
// served, as listings and reads on the primary do not show it either,
// until the reconciler or Verify settles it: the read answers as the
// primary does.
func (f *Failover) readStrict(ctx context.Context, key string, op sideRead) error {
	begun := f.readingsBegun.Load()
	got, err := f.sidesOf(ctx, key)
	if err != nil {
		return err
	}
	if newestSide(got, f.opts.MaxClockSkew) == journal.Secondary {
		if err := f.learn(ctx, begun); err != nil {
			return unavailable(err, "the secondary holds a newer version of %q than the primary, and the journal, which says whether that version is recorded, cannot be read", key)
		}
		if f.idx.pending(key) {
			return f.read(ctx, key, op)
		}
	}
	if !got[journal.Primary].exists {
		return fmt.Errorf("%w: %q", errNotFound, key)
	}
	return op.on(ctx, f.sides[journal.Primary])
}

// sidesOf reads what each side holds of key, for a strict read: a side
// that is down makes the read unavailable.
func (f *Failover) sidesOf(ctx context.Context, key string) ([2]sideObject, error) {
	got, s, err := f.inspectBoth(ctx, key)
	if err != nil && s.outage(ctx, err) {
		return got, unavailable(err, "strict reads compare both sides while work is pending, and the %s is down", s.id)
	}
	return got, err
}

// newestSide returns the side holding the newer of got's versions (the
// primary when they are the same, or neither side holds the key).
func newestSide(got [2]sideObject, skew time.Duration) journal.Side {
	p, sec := got[journal.Primary], got[journal.Secondary]
	if sec.exists && (!p.exists || sec.s.compare(p.s, skew) > 0) {
		return journal.Secondary
	}
	return journal.Primary
}

// readNewest compares both sides' versions of key and reads the newer, or
// the side that holds known, the newest version this instance knows of,
// if one does.
func (f *Failover) readNewest(ctx context.Context, key string, op sideRead, known *Version) error {
	got, err := f.sidesOf(ctx, key)
	if err != nil {
		return err
	}
	if !got[journal.Primary].exists && !got[journal.Secondary].exists {
		return fmt.Errorf("%w: %q", errNotFound, key)
	}
	newest := newestSide(got, f.opts.MaxClockSkew)
	for id, o := range got {
		if known != nil && o.exists && o.s.v == *known {
			newest = journal.Side(id)
		}
	}
	return op.on(ctx, f.sides[newest])
}

// readPending reads a key with pending work from a side holding its newest
// version, the primary first (hedged, when both hold it).
func (f *Failover) readPending(ctx context.Context, key string, p keyState, op sideRead) error {
	if p.deleted {
		return fmt.Errorf("%w: %q", errDeleted, key)
	}
	h := f.hedge(ctx, op, p.on[journal.Primary] && p.on[journal.Secondary])
	defer h.release()
	var down []error
	for _, id := range []journal.Side{journal.Primary, journal.Secondary} {
		if !p.on[id] {
			continue
		}
		s := f.sides[id]
		sctx := ctx
		if len(down) > 0 {
			// The other holder is down.
			sctx = f.failingOver(ctx, op.op, down[0])
		}
		err := h.on(sctx, s)
		switch {
		case err == nil:
			return nil
		case s.outage(ctx, err):
			down = append(down, err)
		case isNotFound(err) && f.idx.changed(key, p):
			// The reconciler may have moved the newest version and removed
			// this copy since the index was read: read again.
			h.release()
			return f.read(ctx, key, op)
		case isNotFound(err):
			// Another instance's reconciler may have moved the newest
			// version to the other side, or its delete removed it: the
			// sides' versions tell, and the index, which no longer says
			// where the key is, no longer answers for it (a listing next
			// resolves it too).
			h.release()
			f.idx.unsettleIf(key, p)
			return f.readNewest(ctx, key, op, &p.latest.v)
		default:
			return err
		}
	}
	if p.on[journal.Primary] && p.on[journal.Secondary] {
		return unavailable(errors.Join(down...), "both sides hold the newest version of %q and both are down", key)
	}
	holder := journal.Primary
	if p.on[journal.Secondary] {
		holder = journal.Secondary
	}
	return unavailable(errors.Join(down...), "the %s holds the newest version of %q and is down", holder, key)
}

// readSettled reads a key without pending work: from the primary, or, while
// it is down, from the secondary. In Mirror mode both sides hold every
// settled key, so the read may be hedged.
func (f *Failover) readSettled(ctx context.Context, key string, op sideRead) error {
	pr, sec := f.sides[journal.Primary], f.sides[journal.Secondary]
	h := f.hedge(ctx, op, f.opts.Mode == Mirror)
	defer h.release()
	err := h.on(ctx, pr)
	if err == nil || !pr.outage(ctx, err) {
		return err
	}
	// A change in flight may have reached the primary and not yet the
	// secondary, and a reader may have seen it there: wait for its outcome.
	if err := f.idx.awaitCommit(ctx, key); err != nil {
		return err
	}
	if f.idx.pending(key) {
		// A change to it failed, on the primary or the secondary, while
		// the primary was read: read as the index now says.
		h.release()
		return f.read(ctx, key, op)
	}
	if f.opts.Mode == Redirect {
		h.release()
		return f.readUnrecorded(f.failingOver(ctx, op.op, err), key, op, err)
	}
	err2 := h.on(f.failingOver(ctx, op.op, err), sec)
	switch {
	case err2 == nil:
		f.opts.Logger.Debug("failoverblob: read served by the secondary", "key", key, "cause", err)
		return nil
	case sec.outage(ctx, err2):
		return unavailable(errors.Join(err, err2), "both sides are down reading %q", key)
	default:
		return err2
	}
}

// readUnrecorded reads, in Redirect mode while the primary is down
// (cause), a key this instance knows of no pending work for. The secondary
// holds temporary copies only, each described by a journal entry until it
// is removed, save the copy of a write that a crash cut between recording
// it and storing it (the two go at once), which may be older than what the
// primary holds. So a copy found there is served only once a reading of
// the journal begun after it was found describes it: the key is then
// pending (another instance's redirected write, learnt of now), and read
// as such.
func (f *Failover) readUnrecorded(ctx context.Context, key string, op sideRead, cause error) error {
	sec := f.sides[journal.Secondary]
	begun := f.readingsBegun.Load()
	o, err := f.inspect(ctx, sec, key)
	switch {
	case err != nil && sec.outage(ctx, err):
		return unavailable(errors.Join(cause, err), "both sides are down reading %q", key)
	case err != nil:
		return err
	case !o.exists:
		return unavailable(cause, "%q is not on the secondary and the primary is down", key)
	}
	if err := f.learn(ctx, begun); err != nil {
		return unavailable(errors.Join(cause, err), "the journal, which says whether the secondary's copy of %q is the newest, cannot be read, and the primary is down", key)
	}
	if f.idx.pending(key) {
		return f.read(ctx, key, op)
	}
	return unavailable(cause, "the secondary's copy of %q is in no journal entry (a write cut by a crash), and the primary, which may hold a newer version, is down", key)
}

// Attributes implements driver.Bucket. The version metadata is hidden.
func (b *bucket) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f := b.f
	var got answer
	err := f.read(ctx, key, sideRead{op: opAttributes, call: func(ctx context.Context, s *side) (any, error) {
		attrs, err := s.attributes(ctx, f.opts.CallTimeout, key)
		if err != nil {
			return nil, err
		}
		f.seen(key, s.id, objectStamp(attrs))
		return attrs, nil
	}, hedged: true, got: &got})
	if got.stop != nil {
		got.stop()
	}
	if err != nil {
		return nil, err
	}
	return withoutVersion(got.v.(*driver.Attributes)), nil
}

// withoutVersion returns a copy of a without the reserved metadata (see
// isReservedMetadata). Drivers may return attributes they keep, so a is
// not changed.
func withoutVersion(a *driver.Attributes) *driver.Attributes {
	c := *a
	reserved := 0
	for k := range a.Metadata {
		if isReservedMetadata(k) {
			reserved++
		}
	}
	if reserved > 0 {
		c.Metadata = make(map[string]string, len(a.Metadata)-reserved)
		for k, v := range a.Metadata {
			if !isReservedMetadata(k) {
				c.Metadata[k] = v
			}
		}
	}
	return &c
}

// NewRangeReader implements driver.Bucket.
func (b *bucket) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return b.f.openRead(ctx, key, offset, length, &driver.ReaderOptions{BeforeRead: guardHook(opts.BeforeRead, false)})
}
