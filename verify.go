package failoverblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/journal"
)

// VerifyOptions configures Verify. The zero value verifies the whole bucket
// and repairs nothing.
type VerifyOptions struct {
	// Prefix limits the scan to keys under it. Empty means every key.
	Prefix string
	// After resumes a scan after this key: a previous report's Cursor.
	// Empty means from the first key.
	After string
	// Repair makes Verify repair what differs. False only reports it.
	Repair bool
	// KeysPerSecond bounds the scan's pace. Zero means no bound.
	KeysPerSecond int
	// MaxKeys stops the scan after this many keys, with a Cursor to resume
	// from. Zero means no bound.
	MaxKeys int
	// Settle is how long a difference must last before Verify repairs it
	// (with Repair): another instance's change in flight between the two
	// sides (a Mirror-mode delete that removed the key from the primary
	// and is still deleting it on the secondary, or recording a tombstone
	// for it) looks like a write that missed a side, until it ends. Zero
	// means three times Options.CallTimeout, the longest such a change
	// takes (its call to the second side, and the journal entry for a
	// side it missed). A negative value repairs at the first look: only
	// for a bucket no other instance is changing.
	Settle time.Duration
}

// VerifyReport sums up one Verify.
type VerifyReport struct {
	Scanned int // keys compared
	Pending int // keys skipped because they have pending work: the reconciler settles them
	// Differing counts the keys the sides hold differently without
	// pending work: with Repair, those that still did, the same way, once
	// Settle had passed, or that changed meanwhile and still differ.
	Differing int
	Repaired  int   // of those, keys repaired
	Bytes     int64 // bytes copied by the repairs
	// Cursor is where to resume a scan that stopped early (MaxKeys, or
	// ctx done), to pass as VerifyOptions.After: the last key scanned, or,
	// if keys found differing were still waiting for their second look
	// (see Verify), the key before the first of them. Empty when the scan
	// reached the end, or stopped before the first key it held (an error
	// says so): resume from the start.
	Cursor string
}

// Verify is the anti-entropy verifier: it lists both sides page by page,
// compares every key they hold, and reports (and, with Repair, repairs) the
// keys the sides hold differently although no journal entry says they
// should: a write a crash kept from being recorded (in Mirror mode,
// between one side's commit and the other side's entry), entries lost,
// objects written around the failover bucket. It reads the journal first
// (see Refresh), so keys with pending work, which the reconciler settles,
// are skipped.
//
// Two sides hold a key alike when both list it with the same size and MD5,
// or, when the listing cannot tell, when both hold the same version. A key
// that differs is repaired by version order, as the reconciler repairs:
//   - on both sides: the newer version is copied over the older;
//   - on one side only, in Mirror mode: it is copied to the other (a write
//     that missed a side; a delete that missed one is journaled, and so
//     pending);
//   - on the secondary only, in Redirect mode: a temporary copy no entry
//     accounts for; it is moved to the primary;
//   - on the secondary and, as new or newer, on the primary, in Redirect
//     mode: the secondary's stale copy is removed.
//
// With Repair, a key found differing is repaired only if it still differs
// the same way once VerifyOptions.Settle has passed and the journal has
// been read again: another instance's change in flight between the sides
// (a Mirror-mode delete, between its delete on the primary and its delete
// on the secondary or the tombstone it records for it) has ended by then,
// and either the sides agree or the key is pending. Verify holds up to
// verifyBatch such keys at a time, and waits once for them all.
//
// Copies are conditional where the side allows it, and verified by MD5 as
// the reconciler's are. Verify holds each key's lock while it repairs it.
// It stops at ctx's end, or after MaxKeys, with a Cursor to resume from.
func (f *Failover) Verify(ctx context.Context, opts *VerifyOptions) (VerifyReport, error) {
	v := &verify{f: f}
	if opts != nil {
		v.o = *opts
	}
	if v.o.Settle == 0 {
		v.o.Settle = 3 * f.opts.CallTimeout
	}
	v.resume = v.o.After
	if err := f.Refresh(ctx); err != nil {
		return v.rep, err
	}
	if v.o.Repair {
		if err := f.checkDistinct(ctx); err != nil {
			return v.rep, err
		}
	}
	err := v.scan(ctx)
	if len(v.held) > 0 && ctx.Err() == nil {
		err = errors.Join(err, v.settle(ctx))
	}
	if len(v.held) > 0 {
		// Keys left unsettled are scanned again from the cursor.
		v.rep.Cursor = v.resume
		if err == nil {
			err = ctx.Err()
		}
	}
	return v.rep, errors.Join(append(v.errs, err)...)
}

// verifyBatch bounds the keys Verify holds for a second look.
const verifyBatch = 1000

// verify is one run of Verify.
type verify struct {
	f    *Failover
	o    VerifyOptions
	rep  VerifyReport
	errs []error // keys that could not be verified

	// held are the differing keys waiting for their second look (see
	// Verify), in key order; resume is the cursor before the first of them.
	held   []heldKey
	resume string
}

// heldKey is a key found differing, and what its first look saw.
type heldKey struct {
	key  string
	got  [2]sideObject
	seen time.Time
}

// scan compares the keys the sides list, holding those that differ for a
// second look (with Repair), until the listings end, MaxKeys, or ctx's end.
func (v *verify) scan(ctx context.Context) error {
	sc := newScan(v.f, v.o)
	defer sc.stop()
	for {
		if v.o.MaxKeys > 0 && v.rep.Scanned >= v.o.MaxKeys {
			return nil
		}
		key, objs, ok, err := sc.next(ctx)
		if err != nil {
			return err
		}
		if !ok {
			v.rep.Cursor = ""
			return nil
		}
		if err := sc.wait(ctx); err != nil {
			return err
		}
		v.rep.Scanned++
		if err := v.f.verifyKey(ctx, key, objs, v); err != nil {
			v.errs = append(v.errs, fmt.Errorf("verifying %q: %w", key, err))
		}
		v.rep.Cursor = key
		if len(v.held) == 0 {
			v.resume = key
		}
		if len(v.held) >= verifyBatch {
			if err := v.settle(ctx); err != nil {
				return err
			}
		}
	}
}

// hold keeps a differing key for its second look, or repairs it at once
// when Settle is negative.
func (v *verify) hold(ctx context.Context, key string, got [2]sideObject) error {
	if v.o.Settle < 0 {
		v.rep.Differing++
		return v.f.repairDifference(ctx, key, got, &v.rep)
	}
	v.held = append(v.held, heldKey{key: key, got: got, seen: time.Now()})
	return nil
}

// settle takes the second look at the keys held: once Settle has passed
// since the last of them was seen, it reads the journal again and repairs
// each that still differs as it did, unless it is pending now.
func (v *verify) settle(ctx context.Context) error {
	if len(v.held) == 0 {
		return nil
	}
	t := time.NewTimer(time.Until(v.held[len(v.held)-1].seen.Add(v.o.Settle)))
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
	if err := v.f.Refresh(ctx); err != nil {
		return fmt.Errorf("reading the journal before repairing the keys found differing: %w", err)
	}
	for i, h := range v.held {
		if err := ctx.Err(); err != nil {
			// The keys not looked at again stay held, for the cursor to
			// resume before them.
			v.held = v.held[i:]
			return err
		}
		if err := v.f.recheck(ctx, h, &v.rep); err != nil {
			v.errs = append(v.errs, fmt.Errorf("verifying %q: %w", h.key, err))
		}
	}
	v.held = v.held[:0]
	v.resume = v.rep.Cursor
	return nil
}

// recheck is a held key's second look: it is repaired if the sides still
// hold what its first look saw, and counted as differing if they still
// differ otherwise (a later Verify looks at it again).
func (f *Failover) recheck(ctx context.Context, h heldKey, rep *VerifyReport) error {
	unlock, ok := f.lockSettled(h.key, rep)
	if !ok {
		return nil
	}
	defer unlock()
	got, _, err := f.inspectBoth(ctx, h.key)
	if err != nil {
		return err
	}
	if f.alikeByVersion(got) {
		return nil
	}
	rep.Differing++
	for i := range got {
		if got[i].exists != h.got[i].exists || got[i].exists && got[i].s.v != h.got[i].s.v {
			f.opts.Logger.Info("failoverblob: the sides still differ, otherwise than a moment ago; left for a later Verify", "key", h.key)
			return nil
		}
	}
	return f.repairDifference(ctx, h.key, got, rep)
}

// inspectBoth reads what each side holds of key, the primary first; on a
// failure it returns the side that failed.
func (f *Failover) inspectBoth(ctx context.Context, key string) ([2]sideObject, *side, error) {
	var got [2]sideObject
	for _, s := range f.sides {
		o, err := f.inspect(ctx, s, key)
		if err != nil {
			return got, s, err
		}
		got[s.id] = o
	}
	return got, nil, nil
}

// lockSettled takes key's lock for Verify unless the key has pending work
// (the reconciler's to settle), which it counts in rep; ok says the lock
// is held, for the caller to release with unlock.
func (f *Failover) lockSettled(key string, rep *VerifyReport) (unlock func(), ok bool) {
	if f.idx.pending(key) {
		rep.Pending++
		return nil, false
	}
	l := f.locks.lock(key)
	if f.idx.pending(key) {
		l.Unlock()
		rep.Pending++
		return nil, false
	}
	return l.Unlock, true
}

// scan walks the two sides' listings together in key order, at a pace.
type scan struct {
	pagers [2]*pager
	after  string
	pace   *time.Ticker // nil: no bound
}

func newScan(f *Failover, o VerifyOptions) *scan {
	sc := &scan{
		pagers: [2]*pager{newPager(f, f.sides[0], o.Prefix), newPager(f, f.sides[1], o.Prefix)},
		after:  o.After,
	}
	if o.KeysPerSecond > 0 {
		sc.pace = time.NewTicker(time.Second / time.Duration(o.KeysPerSecond))
	}
	return sc
}

func (sc *scan) stop() {
	if sc.pace != nil {
		sc.pace.Stop()
	}
}

// next returns the next key either side lists, with what each listed for
// it (nil where a side lacks it); ok is false when both listings are done.
func (sc *scan) next(ctx context.Context) (key string, objs [2]*driver.ListObject, ok bool, err error) {
	var heads [2]*driver.ListObject
	for i, p := range sc.pagers {
		if heads[i], err = p.peek(ctx, sc.after); err != nil {
			return "", objs, false, err
		}
	}
	if key, ok = nextKey(heads); !ok {
		return "", objs, false, nil
	}
	for i, h := range heads {
		if h != nil && h.Key == key {
			objs[i] = h
			sc.pagers[i].next()
		}
	}
	return key, objs, true, nil
}

// wait waits for the pace to allow the next key, or for ctx's end, and
// returns ctx's error.
func (sc *scan) wait(ctx context.Context) error {
	if sc.pace != nil {
		select {
		case <-sc.pace.C:
		case <-ctx.Done():
		}
	}
	return ctx.Err()
}

// nextKey returns the smaller of the keys at the heads of the two
// listings; ok is false when both are done.
func nextKey(heads [2]*driver.ListObject) (string, bool) {
	switch {
	case heads[0] == nil && heads[1] == nil:
		return "", false
	case heads[0] == nil:
		return heads[1].Key, true
	case heads[1] == nil || heads[0].Key <= heads[1].Key:
		return heads[0].Key, true
	}
	return heads[1].Key, true
}

// alike reports whether two listed objects are the same by their listing.
func alike(a, b *driver.ListObject) bool {
	return a.Size == b.Size && len(a.MD5) > 0 && bytes.Equal(a.MD5, b.MD5)
}

// verifyKey compares key on the two sides (objs: what each listed, nil
// when it lacks the key), and, with Repair, holds it for a second look if
// they differ (see Verify).
func (f *Failover) verifyKey(ctx context.Context, key string, objs [2]*driver.ListObject, v *verify) error {
	if f.alikeByListing(objs) {
		return nil
	}
	unlock, ok := f.lockSettled(key, &v.rep)
	if !ok {
		return nil
	}
	defer unlock()
	got, _, err := f.inspectBoth(ctx, key)
	if err != nil {
		return err
	}
	if f.alikeByVersion(got) {
		return nil
	}
	p, sec := got[journal.Primary], got[journal.Secondary]
	f.opts.Logger.Warn("failoverblob: the sides differ without pending work", "key", key,
		"primary", p.s.v.String(), "secondary", sec.s.v.String(), "primary_has", p.exists, "secondary_has", sec.exists)
	if !v.o.Repair {
		v.rep.Differing++
		return nil
	}
	return v.hold(ctx, key, got)
}

// alikeByListing reports whether the listings show the sides need no
// closer look: in Mirror mode, both list the same object; in Redirect
// mode, the secondary, which holds only temporary copies, lists none.
func (f *Failover) alikeByListing(objs [2]*driver.ListObject) bool {
	if f.opts.Mode == Redirect {
		return objs[journal.Secondary] == nil
	}
	return objs[0] != nil && objs[1] != nil && alike(objs[0], objs[1])
}

// alikeByVersion reports whether what the sides hold (got) needs no
// repair: in Mirror mode, the same version, however listed; in either
// mode, nothing, the key having been deleted since it was listed.
func (f *Failover) alikeByVersion(got [2]sideObject) bool {
	p, sec := got[journal.Primary], got[journal.Secondary]
	if f.opts.Mode == Mirror && p.exists && sec.exists && p.s.compare(sec.s, f.opts.MaxClockSkew) == 0 {
		return true
	}
	return !p.exists && !sec.exists
}

// repairDifference repairs a key the sides hold differently (got) by
// version order: the side holding the newer version, or the only one, is
// the source. In Redirect mode the secondary's copy is removed once the
// primary holds the key, by the copy or already.
func (f *Failover) repairDifference(ctx context.Context, key string, got [2]sideObject, rep *VerifyReport) error {
	defer f.stale.changing(key)()
	skew := f.opts.MaxClockSkew
	p, sec := got[journal.Primary], got[journal.Secondary]
	src, dst := journal.Primary, journal.Secondary
	if !p.exists || (sec.exists && sec.s.compare(p.s, skew) > 0) {
		src, dst = journal.Secondary, journal.Primary
	}
	stale := src == journal.Primary || p.exists && p.s.compare(sec.s, skew) == 0
	if f.opts.Mode == Redirect && stale {
		// The secondary's copy is stale, or a leftover of a repair: remove
		// it.
		if err := f.sides[journal.Secondary].remove(ctx, f.opts.CallTimeout, key, sec.attrs); err != nil {
			return err
		}
		f.tel.reconciledObject(ctx, actionCleaned, 0)
		rep.Repaired++
		return nil
	}
	n, err := f.copyObject(ctx, f.sides[src], f.sides[dst], key, got[src].attrs, got[dst].attrs, nil, nil)
	if err != nil {
		return err
	}
	rep.Bytes += n
	f.tel.reconciledObject(ctx, ActionCopied.String(), n)
	if f.opts.Mode == Redirect {
		// Moved to the primary: the temporary copy goes.
		if err := f.sides[journal.Secondary].remove(ctx, f.opts.CallTimeout, key, sec.attrs); err != nil {
			return err
		}
		f.tel.reconciledObject(ctx, actionCleaned, 0)
	}
	rep.Repaired++
	return nil
}

// pager reads one side's listing a page at a time, without the reserved
// prefix.
type pager struct {
	f    *Failover
	s    *side
	opts driver.ListOptions
	page []*driver.ListObject
	done bool
}

func newPager(f *Failover, s *side, prefix string) *pager {
	return &pager{f: f, s: s, opts: driver.ListOptions{Prefix: prefix, PageSize: defaultPageSize}}
}

// peek returns the first listed object after after, or nil at the end.
func (p *pager) peek(ctx context.Context, after string) (*driver.ListObject, error) {
	for {
		for len(p.page) > 0 && (p.page[0].Key <= after || strings.HasPrefix(p.page[0].Key, ReservedPrefix)) {
			p.page = p.page[1:]
		}
		if len(p.page) > 0 {
			return p.page[0], nil
		}
		if p.done {
			return nil, nil
		}
		var page *driver.ListPage
		err := p.s.call(ctx, opList, p.f.opts.CallTimeout, func(ctx context.Context) (err error) {
			page, err = p.s.d.ListPaged(ctx, &p.opts)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("listing the %s: %w", p.s.id, err)
		}
		p.page = page.Objects
		p.opts.PageToken = page.NextPageToken
		p.done = len(page.NextPageToken) == 0
	}
}

// next drops the object peek returned.
func (p *pager) next() { p.page = p.page[1:] }
