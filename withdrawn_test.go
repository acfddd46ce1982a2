package failoverblob_test

import (
	"context"
	"io"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
)

// A delete whose tombstone's append failed after storing it, and whose
// withdrawal of the entry failed too, leaves the tombstone in the shared
// journal, where another instance's pass applies it: the key is gone from
// both sides. The deleting instance, whose delete failed, no longer lists
// the key by the state it knew (its own redirected write, on the
// secondary): it looks at the sides. (Seed 646 of the several-writer
// chaos tier: a Get answered NotFound and a List right after showed the
// key.)
func TestWithdrawnEntryAnotherInstanceAppliedLeavesNoPhantom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 2, failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1})
		a, r := fl.in[0], fl.in[1]
		ctx := fl.ctx
		a.redirect(t, ctx, "k", "redirected")

		// The tombstone's append stores it on the secondary and reports a
		// failure, fails on the primary, and its withdrawal fails.
		a.faults[1].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
		a.faults[0].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
		a.faults[1].Set(failovertest.OpDelete, failovertest.Fault{Times: 1})
		require.Error(t, a.f.Bucket().Delete(ctx, "k"), "the delete whose tombstone could not be recorded")
		a.faults[0].Heal()
		a.faults[1].Heal()

		_, err := r.f.Drain(ctx)
		require.NoError(t, err, "another instance's pass")
		require.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the pass")
		require.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the pass")

		assert.Equal(t, "<not found>", a.read(ctx, "k"), "a read by the deleting instance")
		assert.NotContains(t, listKeys(t, a), "k", "a listing by the deleting instance")
	})
}

// An instance whose index says where a key's newest version is, and whose
// read finds it gone from there (another instance deleted it, and this one
// has not read the journal since), no longer lists the key by its index:
// a listing after that read looks at the sides, and does not show the key
// the read said was not found. (Seed 5573 of the several-writer chaos
// tier.)
func TestReadThatFindsTheHolderWithoutTheKeyUnsettlesItsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 2, failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1})
		a, b := fl.in[0], fl.in[1]
		ctx := fl.ctx
		a.redirect(t, ctx, "k", "redirected")
		require.NoError(t, b.f.Refresh(ctx))
		require.NoError(t, b.f.Bucket().Delete(ctx, "k"), "another instance's delete")
		require.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the delete")

		assert.Equal(t, "<not found>", a.read(ctx, "k"), "a read by the instance that redirected the write")
		assert.NotContains(t, listKeys(t, a), "k", "a listing by that instance after its read")
	})
}

// listKeys lists every key through in's bucket.
func listKeys(t *testing.T, in *instance) []string {
	t.Helper()
	var keys []string
	it := in.f.Bucket().List(nil)
	for {
		o, err := it.Next(context.Background())
		if err == io.EOF {
			return keys
		}
		require.NoError(t, err)
		keys = append(keys, o.Key)
	}
}
