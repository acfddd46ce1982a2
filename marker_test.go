package failoverblob_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
)

// A Redirect-mode pass that listed the journal before another instance's
// delete recorded its tombstone, and looked at the key after that delete
// removed it from the primary, finds the delete's marker there and leaves
// the key: it does not copy the redirected object, which the delete could
// not remove from the secondary, back onto the primary. (Seed 765 of the
// several-writer chaos tier: the copy landed after the delete was
// acknowledged, and stayed until the tombstone's repair.)
func TestRepairLeavesAKeyDeletedSinceItsListing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 3, failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1})
		w, d, r := fl.in[0], fl.in[1], fl.in[2]
		ctx := fl.ctx
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("v0"), nil))
		w.redirect(t, ctx, "k", "redirected")
		require.NoError(t, d.f.Refresh(ctx))

		// r's look at k on the primary waits while d deletes k; d cannot
		// look at the secondary, so the redirected copy stays there.
		drained := r.drainStalled(ctx, "k", 1, 5*time.Second)
		d.faults[1].Set(failovertest.OpAttributes, failovertest.Fault{})
		require.NoError(t, d.f.Bucket().Delete(ctx, "k"), "the delete")
		require.Equal(t, "redirected", fl.content(1, "k"), "the secondary after the delete, which could not look at it")
		require.NoError(t, <-drained, "the pass that listed the journal before the tombstone")
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after that pass")

		d.faults[1].Heal()
		_, err := r.f.Drain(ctx)
		require.NoError(t, err, "the next pass")
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the next pass")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the next pass")
		assert.Zero(t, r.f.Status().Pending, "entries left")
	})
}

// The Mirror-mode form: a pass repairing the secondary, which missed a
// write, listed the journal before another instance's delete (which knew
// of the pending work, and missed the primary) recorded its tombstones,
// and looked at the key after the delete removed it from the secondary. It
// finds the delete's marker on the secondary, and does not copy the
// primary's object there. (Seeds 6317 and 5797 of the several-writer
// chaos tier.)
func TestMirrorRepairLeavesAKeyDeletedSinceItsListing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := mirrorFleet(t, 3)
		w, d, r := fl.in[0], fl.in[1], fl.in[2]
		ctx := fl.ctx
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("v0"), nil))
		w.faults[1].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil), "a write the secondary missed")
		require.NoError(t, d.f.Refresh(ctx))
		require.NotZero(t, d.f.Status().Pending, "entries the deleting instance knows of")

		// r's look at k on the secondary waits while d deletes k, with
		// the primary failing d's calls.
		drained := r.drainStalledOn(ctx, 1, "k", 1, 5*time.Second)
		d.faults[0].Outage(nil)
		require.NoError(t, d.f.Bucket().Delete(ctx, "k"), "the delete")
		require.Equal(t, "v1", fl.content(0, "k"), "the primary, which the delete missed")
		require.NoError(t, <-drained, "the pass that listed the journal before the tombstones")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after that pass")

		d.faults[0].Heal()
		_, err := r.f.Drain(ctx)
		require.NoError(t, err, "the next pass")
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the next pass")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the next pass")
		assert.Zero(t, r.f.Status().Pending, "entries left")
	})
}

// A delete marker no pass needs any more is removed once an instance has
// nothing pending, and not before it is older than the time a write may
// take to land.
func TestDeleteMarkersAreSweptOnceNothingIsPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 2, failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1})
		w, d := fl.in[0], fl.in[1]
		ctx := fl.ctx
		w.redirect(t, ctx, "k", "redirected")
		require.NoError(t, d.f.Refresh(ctx))
		require.NoError(t, d.f.Bucket().Delete(ctx, "k"))
		require.Equal(t, 1, markers(t, fl), "markers after the delete of a key with pending work")

		_, err := d.f.Drain(ctx)
		require.NoError(t, err)
		require.Zero(t, d.f.Status().Pending)
		assert.Equal(t, 1, markers(t, fl), "markers right after the drain")
		time.Sleep(2 * time.Minute)
		_, err = d.f.Drain(ctx)
		require.NoError(t, err)
		assert.Zero(t, markers(t, fl), "markers after an idle pass once they aged")
	})
}

// markers counts the delete markers on both sides of fl.
func markers(t *testing.T, fl *fleet) int {
	t.Helper()
	n := 0
	for _, b := range fl.raw {
		it := b.List(nil)
		for {
			o, err := it.Next(fl.ctx)
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			if strings.HasPrefix(o.Key, failoverblob.ReservedPrefix+"deletes/") {
				n++
			}
		}
	}
	return n
}

// A Mirror-mode delete of a key with pending work whose state it could not
// work out records its tombstones before it asks the sides; another
// instance's pass may apply them meanwhile, removing the key from both
// sides, and the delete then finds it nowhere. It cannot tell whether the
// key existed when it began, so it is unavailable, not NotFound (which
// would say an acknowledged write never existed), and a second delete
// answers NotFound. (Seed 3249 of the several-writer chaos tier.)
func TestMirrorDeleteWhoseTombstoneAnotherInstanceAppliedFirstIsUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := mirrorFleet(t, 3)
		w, d, r := fl.in[0], fl.in[1], fl.in[2]
		ctx := fl.ctx
		w.faults[0].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil), "a write the primary missed")
		require.NoError(t, d.f.Refresh(ctx))

		// d cannot work out k's state (the secondary fails its looks), and
		// its first write to the primary, the delete's marker, is slow.
		d.faults[1].Set(failovertest.OpAttributes, failovertest.Fault{})
		d.faults[0].Set(failovertest.OpWrite, failovertest.Fault{Latency: 5 * time.Second})
		deleted := make(chan error, 1)
		go func() { deleted <- d.f.Bucket().Delete(ctx, "k") }()
		synctest.Wait()
		_, err := r.f.Drain(ctx)
		require.NoError(t, err, "a pass that applies the delete's tombstone")
		require.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the pass")

		err = <-deleted
		assert.ErrorIs(t, err, failoverblob.ErrUnavailable, "the delete that found the key nowhere")
		assert.Equal(t, gcerrors.NotFound, gcerrors.Code(d.f.Bucket().Delete(ctx, "k")), "a second delete")
	})
}

// A delete that is withdrawn (here the primary refuses it, as a side
// refuses a name it cannot store) removes the marker it wrote: it deleted
// nothing, and its marker would hold back repairs whose passes listed the
// journal before it.
func TestWithdrawnDeleteRemovesItsMarker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 1, failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1})
		a := fl.in[0]
		ctx := fl.ctx
		a.redirect(t, ctx, "k", "redirected")
		refused := errors.New("refused by the side")
		a.faults[0].Refuse(func(k string) error {
			if k == "k" {
				return refused
			}
			return nil
		})
		require.ErrorIs(t, a.f.Bucket().Delete(ctx, "k"), refused)
		assert.Zero(t, markers(t, fl), "markers after a refused delete")
		a.faults[0].Refuse(nil)
		assert.Equal(t, "redirected", a.read(ctx, "k"), "the key after a refused delete")
	})
}
