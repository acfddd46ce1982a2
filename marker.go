package failoverblob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"gocloud.dev/blob/driver"
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
// So such a delete writes, on each side and before it removes the key
// there, a marker: a small object named by the key's hash under
// markerPrefix, whose metadata holds the delete's version. A repair that
// is about to copy onto a side lacking the key reads that side's marker
// first (one Attributes call), and leaves the key for a later pass if the
// marker is newer than the version it would copy: that pass lists the
// tombstone, recorded before the marker. The marker was written before the
// side lost the key, so a repair that found the key gone through the
// delete finds the marker too. A repair that looked at the side before the
// delete reached it writes conditionally on what it found there, and
// where the side held nothing, the delete's own second look, or the
// repair's (see Failover.sweepRacedCopy, repairKey.copyRaced), removes the
// copy.
//
// Markers cost one small write per side, only for deletes of keys with
// pending work. A marker that is no longer needed (a pass that listed the
// journal after it was written sees the tombstone it guards) is removed
// by the sweep of leftovers once an instance has nothing pending (see
// Failover.tidyLeases), once it is older than landingTime.
const markerPrefix = ReservedPrefix + "deletes/"

// markerName returns the name of key's delete marker: keys may be as long
// as a side allows, so the name holds their hash.
func markerName(key string) string {
	h := sha256.Sum256([]byte(key))
	return markerPrefix + hex.EncodeToString(h[:])
}

// writeMarker writes, on s, the marker of a delete of key stamped v (see
// markerPrefix), before the delete removes the key there.
func (f *Failover) writeMarker(ctx context.Context, s *side, key string, v Version) error {
	f.leftBehind.Store(true)
	opts := &driver.WriterOptions{Metadata: map[string]string{VersionMetadataKey: v.String()}}
	err := s.call(ctx, opWrite, f.opts.CallTimeout, func(ctx context.Context) error {
		return s.writeSmall(ctx, markerName(key), nil, opts)
	})
	if err != nil {
		return fmt.Errorf("writing the delete marker of %q on the %s: %w", key, s.id, err)
	}
	return nil
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
// markerPrefix), conditionally on the marker read, a page at a time, at
// most markerSweepPages pages a sweep. It reports whether none is left.
func (f *Failover) sweepMarkers(ctx context.Context, s *side, before time.Time) bool {
	var token []byte
	swept := true
	for range markerSweepPages {
		var page *driver.ListPage
		err := s.call(ctx, opList, f.opts.CallTimeout, func(ctx context.Context) (err error) {
			page, err = s.d.ListPaged(ctx, &driver.ListOptions{Prefix: markerPrefix, PageSize: 1000, PageToken: token})
			return err
		})
		if err != nil {
			return false
		}
		for _, o := range page.Objects {
			if !o.ModTime.Before(before) {
				swept = false
				continue
			}
			attrs, err := s.attributes(ctx, f.opts.CallTimeout, o.Key)
			switch {
			case isNotFound(err):
				continue
			case err != nil || !attrs.ModTime.Before(before):
				swept = false
				continue
			}
			if err := s.remove(ctx, f.opts.CallTimeout, o.Key, attrs); err != nil {
				swept = false
			}
		}
		if len(page.NextPageToken) == 0 {
			return swept
		}
		token = page.NextPageToken
	}
	return false
}

// markerSweepPages bounds the pages of markers one sweep reads on a side.
const markerSweepPages = 10
