package failoverblob_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

// Hedged reads (Options.HedgeAfter), in virtual time: which reads hedge,
// the budget, and the call that loses.

const hedgeAfter = 10 * time.Millisecond

// slow makes side i's reads (opening a reader) and Attributes calls take d.
func (r *rig) slow(i int, d time.Duration) {
	r.faults[i].Set(failovertest.OpRead, failovertest.Fault{Latency: d})
	r.faults[i].Set(failovertest.OpAttributes, failovertest.Fault{Latency: d})
}

// timedRead reads key and returns what it got and how long it took.
func (r *rig) timedRead(key string) (string, time.Duration) {
	start := time.Now()
	got := r.read(key)
	return got, time.Since(start)
}

// Which reads hedge: only those whose other side holds the version the
// read would serve.
func TestHedgedReadsGoOnlyWhereTheOtherSideHoldsTheVersion(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  failoverblob.Mode
		setUp func(r *rig) // leaves "k" with "v2" as its newest value
		hedge bool
		took  time.Duration // how long a read takes with the primary slow
	}{
		{"mirror, no pending work", failoverblob.Mirror, func(r *rig) {
			require.NoError(r.t, r.writeV("k", "v2"))
		}, true, hedgeAfter},
		{"mirror, pending, both sides hold the newest", failoverblob.Mirror, func(r *rig) {
			r.faults[secondary].Outage(nil)
			require.NoError(r.t, r.writeV("k", "v1"))
			r.heal()
			require.NoError(r.t, r.writeV("k", "v2"))
		}, true, hedgeAfter},
		{"mirror, pending, the secondary holds an older version", failoverblob.Mirror, func(r *rig) {
			require.NoError(r.t, r.writeV("k", "v1"))
			r.faults[secondary].Outage(nil)
			require.NoError(r.t, r.writeV("k", "v2"))
			r.heal()
		}, false, time.Second},
		{"redirect, no pending work", failoverblob.Redirect, func(r *rig) {
			require.NoError(r.t, r.writeV("k", "v2"))
		}, false, time.Second},
		{"redirect, pending, only the secondary holds it", failoverblob.Redirect, func(r *rig) {
			require.NoError(r.t, r.writeV("k", "v1"))
			r.faults[primary].Outage(nil)
			require.NoError(r.t, r.writeV("k", "v2"))
			r.heal()
		}, false, 0}, // the primary is not asked
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, failoverblob.Options{Mode: tc.mode, HedgeAfter: hedgeAfter})
				tc.setUp(r)
				r.slow(primary, time.Second)
				got, took := r.timedRead("k")
				assert.Equal(t, "v2", got, "read")
				assert.Equal(t, "v2", r.attrsValue("k"), "Attributes")
				assert.Equal(t, tc.took, took, "how long the read took")
				want := failoverblob.HedgeStatus{After: hedgeAfter}
				if tc.hedge {
					want.Hedged, want.Won = 2, 2 // the read and the Attributes call
				}
				assert.Equal(t, want, r.f.Status().Hedges)
				if tc.hedge {
					synctest.Wait() // for the cancelled calls to end
					assertUncounted(t, r.f.Status().Primary)
				}
			})
		})
	}
}

// writeV writes value as key's bytes and its "v" metadata (see
// attrsValue).
func (r *rig) writeV(key, value string) error {
	return r.b.WriteAll(r.ctx, key, []byte(value), &blob.WriterOptions{Metadata: map[string]string{"v": value}})
}

// assertUncounted checks that a side's breaker counted no failure and is
// closed (the rig's breakers trip on the first outage).
func assertUncounted(t *testing.T, st failoverblob.SideStatus) {
	t.Helper()
	assert.Zero(t, st.Failures, "failures counted against the %s", st.Name)
	assert.Equal(t, circuit.StateClosed, st.State, "the %s's breaker", st.Name)
}

// In Redirect mode a pending key the index knows both sides to hold at its
// newest version (here: a repair copied it and the process died before
// acknowledging, and the restarted bucket read both sides' versions) is
// hedged.
func TestHedgedReadOfARedirectKeyOnBothSides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		require.NoError(t, r.writeV("k", "v2"))
		r.heal()
		copyAsStored(t, r, "k", secondary, primary)
		f2 := r.restart(failoverblob.Options{HedgeAfter: hedgeAfter})
		assert.Equal(t, "v2", readOf(f2, r, "k"), "the first read resolves the key's state")
		r.slow(primary, time.Second)
		start := time.Now()
		assert.Equal(t, "v2", readOf(f2, r, "k"))
		assert.Equal(t, hedgeAfter, time.Since(start), "how long the read took")
		assert.Equal(t, uint64(1), f2.Status().Hedges.Won, "hedges won")
	})
}

// copyAsStored copies key from side from to side to as stored, metadata
// (the version) included, as a repair does.
func copyAsStored(t *testing.T, r *rig, key string, from, to int) {
	t.Helper()
	a, err := r.raw[from].Attributes(r.ctx, key)
	require.NoError(t, err)
	b, err := r.raw[from].ReadAll(r.ctx, key)
	require.NoError(t, err)
	require.NoError(t, r.raw[to].WriteAll(r.ctx, key, b, &blob.WriterOptions{ContentType: a.ContentType, Metadata: a.Metadata}))
}

// The budget: hedges in flight are at most HedgeBudget of the reads in
// flight, or HedgeFloor when that is more; the others wait for the first
// side and are counted as refused.
func TestHedgeBudget(t *testing.T) {
	for _, tc := range []struct {
		name            string
		budget          float64
		floor, reads    int
		hedged, refused uint64
	}{
		{"floor alone", -1, 1, 3, 1, 2},
		{"fraction alone", 0.5, -1, 4, 2, 2},
		{"the floor when it is more", 0.2, 3, 5, 3, 2},
		{"the fraction when it is more", 0.5, 1, 6, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, HedgeAfter: hedgeAfter, HedgeBudget: tc.budget, HedgeFloor: tc.floor})
				require.NoError(t, r.writeV("k", "v"))
				r.slow(primary, time.Second)
				// Hedges stay in flight together: the secondary is slow too.
				r.slow(secondary, 20*time.Millisecond)
				var wg sync.WaitGroup
				for range tc.reads {
					wg.Go(func() { assert.Equal(t, "v", r.read("k")) })
				}
				wg.Wait()
				h := r.f.Status().Hedges
				assert.Equal(t, tc.hedged, h.Hedged, "hedged")
				assert.Equal(t, tc.hedged, h.Won, "won")
				assert.Equal(t, tc.refused, h.Refused, "refused")
			})
		})
	}
}

// The first side's answer wins if it comes first, even after the hedge
// was made; the hedge is cancelled and its breaker does not count it.
func TestHedgeLosesToTheFirstSide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, HedgeAfter: hedgeAfter})
		require.NoError(t, r.writeV("k", "v"))
		r.slow(primary, 20*time.Millisecond)
		r.slow(secondary, time.Second)
		got, took := r.timedRead("k")
		assert.Equal(t, "v", got)
		assert.Equal(t, 20*time.Millisecond, took, "how long the read took")
		assert.Equal(t, failoverblob.HedgeStatus{After: hedgeAfter, Hedged: 1}, r.f.Status().Hedges)
		synctest.Wait()
		assertUncounted(t, r.f.Status().Secondary)
		assert.Zero(t, r.faults[secondary].Fired(failovertest.OpRead)-1, "the hedge was made once")
	})
}

// A first side that fails with an outage after the hedge was made falls
// over to the hedge itself: the secondary is asked once.
func TestHedgeIsTheFallbackWhenTheFirstSideFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, HedgeAfter: hedgeAfter})
		require.NoError(t, r.writeV("k", "v"))
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{Latency: 30 * time.Millisecond, Err: failovertest.ErrOutage})
		r.faults[secondary].Set(failovertest.OpRead, failovertest.Fault{Latency: 50 * time.Millisecond})
		calls := r.faults[secondary].Calls(failovertest.OpRead)
		got, took := r.timedRead("k")
		assert.Equal(t, "v", got)
		assert.Equal(t, hedgeAfter+50*time.Millisecond, took, "how long the read took")
		assert.Equal(t, int64(1), r.faults[secondary].Calls(failovertest.OpRead)-calls, "reads of the secondary")
		assert.Equal(t, failoverblob.HedgeStatus{After: hedgeAfter, Hedged: 1, Won: 1}, r.f.Status().Hedges)
	})
}

// A hedge that finds nothing does not answer for the first side, which
// may hold the key (Mirror mode's sides differ until Verify finds a
// write the secondary missed in a crash).
func TestHedgeMissWaitsForTheFirstSide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, HedgeAfter: hedgeAfter})
		require.NoError(t, r.writeV("k", "v"))
		require.NoError(t, r.raw[secondary].Delete(r.ctx, "k"))
		r.slow(primary, 30*time.Millisecond)
		got, took := r.timedRead("k")
		assert.Equal(t, "v", got)
		assert.Equal(t, 30*time.Millisecond, took, "how long the read took")
		assert.Equal(t, failoverblob.HedgeStatus{After: hedgeAfter, Hedged: 1}, r.f.Status().Hedges)
	})
}

// No hedge goes to a side whose breaker is open or that traffic was forced
// off: the call would fail at once, and it would take a place in the budget.
func TestNoHedgeToASideThatRefusesCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		down func(r *rig)
	}{
		{"breaker open", func(r *rig) {
			require.NoError(r.t, r.writeV("k", "v2"))
			r.faults[secondary].Outage(nil)
			require.NoError(r.t, r.writeV("other", "v"), "a write that trips the secondary's breaker")
			r.faults[secondary].Heal()
			require.Equal(r.t, circuit.StateOpen, r.f.Status().Secondary.State, "the secondary's breaker")
		}},
		{"forced off", func(r *rig) {
			require.NoError(r.t, r.writeV("k", "v2"))
			r.f.Force(failoverblob.ForcePrimary)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, HedgeAfter: hedgeAfter})
				tc.down(r)
				r.slow(primary, time.Second)
				calls := r.faults[secondary].Calls(failovertest.OpRead)
				got, took := r.timedRead("k")
				assert.Equal(t, "v2", got)
				assert.Equal(t, time.Second, took, "how long the read took")
				assert.Equal(t, failoverblob.HedgeStatus{After: hedgeAfter}, r.f.Status().Hedges)
				assert.Zero(t, r.faults[secondary].Calls(failovertest.OpRead)-calls, "reads of the secondary")
			})
		})
	}
}

// Without HedgeAfter nothing is hedged.
func TestNoHedgingByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		require.NoError(t, r.writeV("k", "v"))
		r.slow(primary, time.Second)
		got, took := r.timedRead("k")
		assert.Equal(t, "v", got)
		assert.Equal(t, time.Second, took)
		assert.Equal(t, failoverblob.HedgeStatus{}, r.f.Status().Hedges)
	})
}

// The call that loses is cancelled at once: a primary that hangs would
// otherwise hold it until FirstByteTimeout, which counts as an outage.
func TestHedgeCancelsTheLoser(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, HedgeAfter: hedgeAfter})
		require.NoError(t, r.writeV("k", "v"))
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{Hang: true})
		r.faults[primary].Set(failovertest.OpAttributes, failovertest.Fault{Hang: true})
		got, took := r.timedRead("k")
		assert.Equal(t, "v", got)
		assert.Equal(t, hedgeAfter, took, "how long the read took")
		assert.Equal(t, "v", r.attrsValue("k"))
		time.Sleep(time.Minute) // past every timeout
		assertUncounted(t, r.f.Status().Primary)
		assert.Equal(t, uint64(2), r.f.Status().Hedges.Won, "hedges won")
	})
}
