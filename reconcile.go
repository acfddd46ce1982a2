package failoverblob

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/journal"
)

// Repair reports what the reconciler did for one key on one side.
type Repair struct {
	Key  string
	Side journal.Side // the side that was repaired
	// Action is "copied" (the newer object was copied onto Side), "deleted"
	// (a tombstone was applied to Side), or "none" (Side already held the
	// newest change, or no side held the data an entry described).
	Action string
	// Bytes is the size of the object copied.
	Bytes int64
	// Cleaned reports that the temporary copy on the secondary was removed
	// (Redirect mode).
	Cleaned bool
	// Entries is the number of journal entries acknowledged.
	Entries int
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

// Run reconciles until ctx is done or the bucket is closed: every
// ReconcileInterval it drains the journal, repairing the sides that are
// reachable, and every VerifyInterval (if set) it runs the verifier. It
// starts no goroutine that outlives it. It returns nil when the bucket is
// closed and ctx.Err() when ctx is done.
func (f *Failover) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	var verify <-chan time.Time
	if f.opts.VerifyInterval > 0 {
		vt := time.NewTicker(f.opts.VerifyInterval)
		defer vt.Stop()
		verify = vt.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.closed:
			return nil
		case <-verify:
			rep, err := f.Verify(ctx, &VerifyOptions{Repair: true, KeysPerSecond: f.opts.VerifyKeysPerSecond})
			if err != nil && ctx.Err() == nil {
				f.opts.Logger.Info("failoverblob: verify pass incomplete", "err", err)
			}
			if rep.Differing > 0 {
				f.opts.Logger.Warn("failoverblob: verify found the sides apart", "keys", rep.Differing, "repaired", rep.Repaired)
			}
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

// refresh lists the journal and brings the index up to date with it. A
// journal that could list only one side (journal.ErrPartial) is taken as far
// as it goes, and the error returned; any other error leaves the index as
// it was. Callers hold drainMu.
func (f *Failover) refresh(ctx context.Context) ([]journal.Entry, error) {
	listedAt := time.Now()
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
	f.idx.sync(entries, err == nil)
	f.forgetRetracted(listedAt)
	return entries, err
}

// Drain makes one pass over the journal: for each key with pending entries
// it brings the side that is missing a change up to the newest version that
// exists (never overwriting a newer object), applies tombstones, verifies the
// MD5 of each copy, removes the temporary copy from the secondary in
// Redirect mode, and acknowledges the entries. Keys whose sides are down are
// left pending and reported in the error. At most ReconcileConcurrency keys
// are repaired at once; the goroutines end before Drain returns. Passes do
// not overlap: a Drain called during another waits for it.
func (f *Failover) Drain(ctx context.Context) (Report, error) {
	// One pass at a time: two passes over the same listing would
	// acknowledge entries twice.
	f.drainMu.Lock()
	defer f.drainMu.Unlock()
	listedAt := time.Now()
	entries, listErr := f.refresh(ctx)
	if listErr != nil && !errors.Is(listErr, journal.ErrPartial) {
		return Report{Remaining: f.pendingEntries()}, listErr
	}
	if len(entries) == 0 {
		return Report{Remaining: f.pendingEntries()}, listErr
	}
	if err := f.checkDistinct(ctx); err != nil {
		return Report{Remaining: f.pendingEntries()}, errors.Join(err, listErr)
	}
	type group struct {
		key     string
		missing journal.Side
	}
	groups := map[group][]journal.Entry{}
	var order []group
	for _, e := range entries {
		g := group{e.Key, e.Missing}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], e)
	}
	// Repairs whose shard another instance holds the lease of are left to
	// it (see lease.go).
	keys, sides := make([]string, len(order)), make([]journal.Side, len(order))
	for i, g := range order {
		keys[i], sides[i] = g.key, g.missing
	}
	keep, held := f.leased(ctx, keys, sides)
	skipped := 0
	mine := order[:0]
	for i, g := range order {
		if keep[i] {
			mine = append(mine, g)
		} else {
			skipped++
		}
	}
	order = mine

	var (
		mu   sync.Mutex
		cbMu sync.Mutex // serializes OnRepair, apart from the report's lock
		rep  Report
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, f.opts.ReconcileConcurrency)
	)
	unsettled := map[leaseShard]bool{} // shards with a repair that failed
	settle := func(g group) {
		r, err := f.repair(ctx, g.key, g.missing, groups[g], listedAt)
		if err != nil {
			mu.Lock()
			unsettled[leaseShard{g.missing, shardOf(g.key)}] = true
			mu.Unlock()
		}
		if err == nil && f.opts.OnRepair != nil {
			cbMu.Lock()
			f.opts.OnRepair(r)
			cbMu.Unlock()
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("repairing %q on the %s: %w", g.key, g.missing, err))
			return
		}
		rep.Keys++
		rep.Bytes += r.Bytes
		switch r.Action {
		case "copied":
			rep.Copied++
		case "deleted":
			rep.Deleted++
		}
		if r.Cleaned {
			rep.Cleaned++
		}
	}
	for i, g := range order {
		if ctx.Err() != nil {
			break
		}
		if i == 0 {
			// The first repair alone: while a breaker is half-open it is
			// the probe, and the others would only be refused.
			settle(g)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			settle(g)
		}()
	}
	wg.Wait()
	for _, sh := range held {
		if !unsettled[sh] && ctx.Err() == nil {
			f.release(ctx, sh)
		}
	}
	rep.Remaining, _ = f.idx.stats()
	rep.Leased = skipped
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	if listErr != nil {
		errs = append(errs, listErr)
	}
	return rep, errors.Join(errs...)
}

// repair settles one key on the side missing, given the journal entries that
// say it is missing changes. It holds the key's lock, so the key's writes in
// this process wait for it.
func (f *Failover) repair(ctx context.Context, key string, missing journal.Side, entries []journal.Entry, listedAt time.Time) (Repair, error) {
	defer f.locks.lock(key).Unlock()
	// Entries withdrawn since the journal was listed (a refused delete's
	// tombstone, say) must not be applied.
	live := entries[:0:0]
	for _, e := range entries {
		if !f.isRetracted(e.ID) {
			live = append(live, e)
		}
	}
	entries = live
	dst, src := f.sides[missing], f.sides[missing.Other()]
	rep := Repair{Key: key, Side: missing, Action: "none", Entries: len(entries)}
	if len(entries) == 0 {
		return rep, nil
	}

	d, err := f.inspect(ctx, dst, key)
	if err != nil {
		return rep, err
	}
	sObj, err := f.inspect(ctx, src, key)
	if err != nil {
		return rep, err
	}
	// The secondary holds only temporary copies in Redirect mode.
	temporary := f.opts.Mode == Redirect && missing == journal.Primary
	skew := f.opts.MaxClockSkew

	changes, err := f.changesOf(key, entries)
	if err != nil {
		return rep, err
	}
	for _, c := range changes {
		if c.op == journal.Delete {
			if d.exists && d.s.compare(c.s, skew) <= 0 {
				if err := dst.delete(ctx, f.opts.CallTimeout, key, dst.deleteIf(d.attrs)); err != nil && !isNotFound(err) {
					return rep, err
				}
				rep.Action, d.exists = "deleted", false
			}
			if temporary && sObj.exists && sObj.s.compare(c.s, skew) <= 0 {
				if err := src.delete(ctx, f.opts.CallTimeout, key, src.deleteIf(sObj.attrs)); err != nil && !isNotFound(err) {
					return rep, err
				}
				rep.Cleaned, sObj.exists = true, false
			}
			break
		}
		// A put's data, where a side holds it, places it by when it was
		// stored (see stamp.order).
		cs := c.s
		switch {
		case sObj.exists && sObj.s.v == c.s.v:
			cs = sObj.s
		case d.exists && d.s.v == c.s.v:
			cs = d.s
		}
		if d.exists && d.s.compare(cs, skew) >= 0 {
			break // the missing side already has this change or a newer one
		}
		if sObj.exists && sObj.s.compare(cs, skew) >= 0 {
			n, err := f.copyObject(ctx, src, dst, key, sObj.s.v, d.attrs)
			if err != nil {
				return rep, err
			}
			rep.Action, rep.Bytes, d = "copied", n, sObj
			break
		}
		// No side holds this change: its write failed after the entry was
		// recorded. An older entry may still describe data that exists.
	}
	if temporary && sObj.exists && d.exists && sObj.s.compare(d.s, skew) <= 0 {
		// Entries recorded since the journal was listed stay pending, and
		// the index may send reads to the copy about to go.
		f.idx.moved(key, d.s, missing)
		if err := src.delete(ctx, f.opts.CallTimeout, key, src.deleteIf(sObj.attrs)); err != nil && !isNotFound(err) {
			return rep, err
		}
		rep.Cleaned = true
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	if err := f.opts.Journal.Ack(ctx, ids...); err != nil {
		return rep, fmt.Errorf("acknowledging journal entries: %w", err)
	}
	f.idx.acked(key, missing, ids, listedAt)
	f.opts.Logger.Info("failoverblob: repaired", "key", key, "side", missing.String(), "action", rep.Action, "bytes", rep.Bytes, "cleaned", rep.Cleaned)
	return rep, nil
}

// change is one change to a key that a side may be missing.
type change struct {
	op journal.Op
	s  stamp
}

// changesOf returns the changes the entries describe, newest first. The
// entries were listed before the key was locked: a change this process
// committed since (its entry is left for a later pass) is the key's newest
// state, so nothing older may be brought back over it, and it counts too.
func (f *Failover) changesOf(key string, entries []journal.Entry) ([]change, error) {
	changes := make([]change, 0, len(entries)+1)
	for _, e := range entries {
		v, err := ParseVersion(e.Version)
		if err != nil {
			return nil, err
		}
		changes = append(changes, change{e.Op, stamp{v: v, at: e.Recorded}})
	}
	if p, ok := f.idx.get(key); ok && p.known && !p.latest.v.IsZero() {
		op := journal.Put
		if p.deleted {
			op = journal.Delete
		}
		changes = append(changes, change{op, p.latest})
	}
	skew := f.opts.MaxClockSkew
	sort.Slice(changes, func(i, j int) bool { return changes[i].s.compare(changes[j].s, skew) > 0 })
	return changes, nil
}

// copyObject streams key from src to dst, keeping its attributes and its
// version. It verifies the bytes read against the MD5 src reports before
// committing them (and hands that MD5 to dst, so a provider verifies what
// arrives), or, where src reports none, compares the MD5 dst reports after.
// want is the version src is expected to hold; if src changed since, the
// copy is abandoned. prior is what dst held when the copy was decided (nil:
// nothing); where dst's provider can, the write is conditional on it.
func (f *Failover) copyObject(ctx context.Context, src, dst *side, key string, want Version, prior *driver.Attributes) (int64, error) {
	attrs, err := src.attributes(ctx, f.opts.CallTimeout, key)
	if err != nil {
		return 0, err
	}
	if got := versionOf(attrs.Metadata); got.Compare(want) != 0 {
		return 0, fmt.Errorf("the %s's copy changed during repair (version %s, expected %s)", src.id, got, want)
	}
	r, err := f.openReader(ctx, src, key, 0, -1, &driver.ReaderOptions{})
	if err != nil {
		return 0, err
	}
	defer func() { _ = r.Close() }()

	var srcMD5 []byte
	if len(attrs.MD5) == md5.Size {
		srcMD5 = attrs.MD5
	}
	w := &writer{f: f, ctx: ctx, key: key, contentType: attrs.ContentType, opts: &driver.WriterOptions{
		CacheControl:       attrs.CacheControl,
		ContentDisposition: attrs.ContentDisposition,
		ContentEncoding:    attrs.ContentEncoding,
		ContentLanguage:    attrs.ContentLanguage,
		ContentMD5:         srcMD5,
		Metadata:           attrs.Metadata,
		BeforeWrite:        dst.writeIf(prior),
	}}
	if err := w.open(dst); err != nil {
		return 0, err
	}
	sw := w.sw[dst.id]
	h := md5.New()
	n, rerr, werr := copyTo(io.MultiWriter(sw, h), r)
	sum := h.Sum(nil)
	switch {
	case rerr != nil || werr != nil:
		err = errors.Join(rerr, werr)
	case n != attrs.Size:
		err = fmt.Errorf("read %d bytes of %d from the %s", n, attrs.Size, src.id)
	case srcMD5 != nil && !bytes.Equal(sum, srcMD5):
		err = fmt.Errorf("MD5 of the bytes read from the %s is %x, it reports %x", src.id, sum, srcMD5)
	}
	if err != nil {
		sw.abort(nil)
		return n, err
	}
	if err := sw.commit(); err != nil {
		if gcerrors.Code(err) == gcerrors.FailedPrecondition {
			return n, fmt.Errorf("the %s's copy changed during repair (conditional write refused): %w", dst.id, err)
		}
		return n, err
	}
	if srcMD5 == nil {
		got, err := dst.attributes(ctx, f.opts.CallTimeout, key)
		if err != nil {
			return n, err
		}
		if len(got.MD5) == md5.Size && !bytes.Equal(got.MD5, sum) {
			// Remove the bad copy so the next pass copies again rather
			// than taking it for the newest version.
			_ = dst.delete(ctx, f.opts.CallTimeout, key, nil)
			return n, fmt.Errorf("MD5 mismatch after copying to the %s: stored %x, sent %x", dst.id, got.MD5, sum)
		}
	}
	return n, nil
}

// ErrSameStorage is returned (wrapped) by Drain and Run when the primary and
// the secondary turn out to be the same storage under two handles: the
// reconciler's removal of a temporary copy would then remove the only copy.
var ErrSameStorage = errors.New("failoverblob: the primary and the secondary are the same storage")

// checkDistinct makes sure, once, that the two sides are not the same
// storage: a marker written under the reserved prefix of the secondary must
// not appear on the primary. Its calls go to the sides without their
// breakers, so as not to take a half-open breaker's probe from the repairs;
// while a breaker is open it does not try.
func (f *Failover) checkDistinct(ctx context.Context) error {
	if f.distinct.Load() {
		return nil
	}
	pr, sec := f.sides[journal.Primary], f.sides[journal.Secondary]
	for _, s := range f.sides {
		if s.br.State() == circuit.StateOpen {
			return unavailable(nil, "the %s is down; the reconciler needs both sides", s.id)
		}
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	key := ReservedPrefix + "identity/" + hex.EncodeToString(id[:])
	direct := func(s *side, fn func(ctx context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, f.opts.CallTimeout)
		defer cancel()
		return fn(cctx)
	}
	err := direct(sec, func(ctx context.Context) error {
		w, err := sec.d.NewTypedWriter(ctx, key, "text/plain", &driver.WriterOptions{})
		if err != nil {
			return err
		}
		if _, err := w.Write([]byte("written on the secondary; must not be seen on the primary")); err != nil {
			return err // the cancellation of ctx aborts w
		}
		return w.Close()
	})
	if err != nil {
		return fmt.Errorf("failoverblob: checking that the sides are distinct storage: %w", err)
	}
	defer func() {
		_ = direct(sec, func(ctx context.Context) error { return sec.d.Delete(ctx, key, &driver.DeleteOptions{}) })
	}()
	err = direct(pr, func(ctx context.Context) error {
		_, err := pr.d.Attributes(ctx, key)
		return err
	})
	switch {
	case err == nil:
		f.opts.Logger.Error("failoverblob: the primary and the secondary are the same storage; the reconciler will not run")
		return ErrSameStorage
	case !isNotFound(err):
		return fmt.Errorf("failoverblob: checking that the sides are distinct storage: %w", err)
	}
	f.distinct.Store(true)
	return nil
}

// pendingEntries returns the number of pending journal entries.
func (f *Failover) pendingEntries() int {
	n, _ := f.idx.stats()
	return n
}
