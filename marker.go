package failoverblob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"
)

// Delete markers close most of a race between one instance's repair and
// another's delete, with a journal the fleet shares. A pass lists the
// journal, then repairs each key: it looks at both sides and copies what
// the side being repaired lacks from the other. A delete of a key with
// pending work records its tombstone, then removes the key from each side.
// A pass that listed the journal before the tombstone was recorded, and
// looked at the key after the delete removed it from the side being
// repaired, would copy the deleted object back there from a side the
// delete had not reached yet (or could not reach).
//
// So such a delete writes, before it removes the key from a side, a marker
// there: a small object named by the key's hash under markerPrefix, whose
// metadata holds the delete's version. In Mirror mode that is a delete of
// a key with pending work, on each side; in Redirect mode, a delete that
// records a tombstone for the primary (the key has pending work, or the
// secondary holds a copy or cannot say), on the primary, the only side a
// repair copies onto. A repair that copies onto a side lacking the key
// reads that side's marker once its look at the side has ended, beside
// the copy's streaming, and the copy commits only if no delete newer than
// it wrote the marker since the pass listed the journal; otherwise the
// key is left for a later pass, which lists the tombstone, recorded before
// the marker. The marker was written before the side lost the key, so a
// repair that found the key gone through the delete finds the marker too.
// A repair that looked at the side before the delete reached it writes
// conditionally on what it found there, and where the side held nothing,
// the delete's own second look, or the repair's (see
// Failover.sweepRacedCopy, repairKey.copyRaced, repairKey.sourceStayed),
// removes the copy. So does a pass that applies the tombstone, which
// writes no marker, while another pass that listed the journal before it
// repairs the key: the reconcile leases make that rare. Verify copies
// without reading markers: it repairs a difference only once it has
// lasted Settle and the journal has been read again.
//
// Markers cost a small write (and, over an older marker, a read) a side,
// only for such deletes. A withdrawn delete removes its markers. A marker
// no pass needs any more (a pass that listed the journal after it was
// written sees the tombstone it guards) is removed by the sweep of
// leftovers once an instance has nothing pending (see
// Failover.tidyLeftovers), once it is older than landingTime.
const markerPrefix = ReservedPrefix + "deletes/"

// markerName returns the name of key's delete marker: keys may be as long
// as a side allows, so the name holds their hash.
func markerName(key string) string {
	h := sha256.Sum256([]byte(key))
	return markerPrefix + hex.EncodeToString(h[:])
}

// writeMarker writes, on s, the marker of a delete of key stamped v (see
// markerPrefix), before the delete removes the key there, unless s holds
// the marker of a delete as new already: a delete stamped earlier whose
// marker write was slow must not replace the marker of a later one, which
// a write between the two would then pass. The marker is created where
// there is none (one call, as in a converged bucket); over one, the write
// is conditional on the marker read, where the side allows it, and a
// conflict reads again.
func (f *Failover) writeMarker(ctx context.Context, s *side, key string, v Version) error {
	f.markersWritten.Add(1)
	f.leftBehind.Store(true)
	name := markerName(key)
	var prior *driver.Attributes // none, as a converged bucket holds
	var err error
	for range 3 {
		opts := &driver.WriterOptions{Metadata: map[string]string{VersionMetadataKey: v.String()}, IfNotExist: prior == nil}
		if prior != nil {
			opts.BeforeWrite = s.writeIf(prior)
		}
		err = s.call(ctx, opWrite, f.opts.CallTimeout, func(ctx context.Context) error {
			return s.writeSmall(ctx, name, nil, opts)
		})
		if gcerrors.Code(err) != gcerrors.FailedPrecondition {
			break
		}
		var rerr error
		prior, rerr = s.attributes(ctx, f.opts.CallTimeout, name)
		switch {
		case isNotFound(rerr):
			prior = nil
		case rerr != nil:
			return fmt.Errorf("reading the delete marker of %q on the %s: %w", key, s.id, rerr)
		case objectStamp(prior).compare(stamp{v: v, at: time.Now()}, f.opts.MaxClockSkew) >= 0:
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("writing the delete marker of %q on the %s: %w", key, s.id, err)
	}
	return nil
}

// unmark removes, best effort, the marker a delete of key stamped v wrote
// on s, if it is still that delete's: the delete was withdrawn (refused, or
// it found nothing to delete), and its marker would hold back repairs
// whose passes listed the journal before it (see repairKey.notDeletedSince).
func (f *Failover) unmark(ctx context.Context, s *side, key string, v Version) {
	attrs, err := s.attributes(ctx, f.opts.CallTimeout, markerName(key))
	if err != nil || objectStamp(attrs).v != v {
		return
	}
	_ = s.remove(ctx, f.opts.CallTimeout, markerName(key), attrs)
}

// readMarker reads s's marker of a delete of key (see markerPrefix): the
// delete's version, placed by when the marker was stored; the zero stamp
// if there is none.
func (f *Failover) readMarker(ctx context.Context, s *side, key string) (stamp, error) {
	attrs, err := s.attributes(ctx, f.opts.CallTimeout, markerName(key))
	switch {
	case isNotFound(err):
		return stamp{}, nil
	case err != nil:
		return stamp{}, fmt.Errorf("reading the delete marker of %q on the %s: %w", key, s.id, err)
	}
	return objectStamp(attrs), nil
}

// sweepMarkers removes the delete markers on s older than before (see
// markerPrefix), conditionally on the marker read, at most a page of
// markerSweepPage a sweep, ReconcileConcurrency at a time. It reports
// whether none is left.
func (f *Failover) sweepMarkers(ctx context.Context, s *side, before time.Time) bool {
	var page *driver.ListPage
	err := s.call(ctx, opList, f.opts.CallTimeout, func(ctx context.Context) (err error) {
		page, err = s.d.ListPaged(ctx, &driver.ListOptions{Prefix: markerPrefix, PageSize: markerSweepPage})
		return err
	})
	if err != nil {
		return false
	}
	var left atomic.Bool
	left.Store(len(page.NextPageToken) > 0)
	work := make(chan *driver.ListObject)
	var wg sync.WaitGroup
	for range max(f.opts.ReconcileConcurrency, 1) {
		wg.Go(func() {
			for o := range work {
				if !f.sweepMarker(ctx, s, o, before) {
					left.Store(true)
				}
			}
		})
	}
	for _, o := range page.Objects {
		work <- o
	}
	close(work)
	wg.Wait()
	return !left.Load()
}

// sweepMarker removes the marker o if it is older than before, and
// reports whether it is gone.
func (f *Failover) sweepMarker(ctx context.Context, s *side, o *driver.ListObject, before time.Time) bool {
	if !o.ModTime.Before(before) {
		return false
	}
	attrs, err := s.attributes(ctx, f.opts.CallTimeout, o.Key)
	switch {
	case isNotFound(err):
		return true
	case err != nil || !attrs.ModTime.Before(before):
		return false
	}
	return s.remove(ctx, f.opts.CallTimeout, o.Key, attrs) == nil
}

// markerSweepPage bounds the markers one sweep reads on a side: a sweep
// runs at the end of a pass, which the next waits for.
const markerSweepPage = 1000

// markerTimeGrain is the coarsest time a side may report when it stored an
// object (S3 reports whole seconds): a marker stored after a listing began
// may seem to have been stored up to that much earlier.
const markerTimeGrain = time.Second
