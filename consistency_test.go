package failoverblob_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

// Reads never go back in time: once a reader has seen a change, no later
// read answers with the state before it, while changes commit, fail or are
// repaired.

// A slow read reached the primary after a Mirror-mode write had committed
// there, while the index still held the key's earlier tombstone: the slow
// read returned w2, the next read NotFound, then w2 again. A read now waits
// for a commit in progress.
func TestReadDoesNotGoBackWhileACommitIsRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, IdleTimeout: time.Minute, FirstByteTimeout: 5 * time.Minute})
		require.NoError(t, r.write("k", "w1"))
		// The slow read reaches the primary 2m10s from now.
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{Latency: 2*time.Minute + 10*time.Second, Times: 1})
		slow := make(chan string)
		go func() { slow <- r.read("k") }()
		synctest.Wait()

		r.faults[secondary].Outage(nil)
		require.NoError(t, r.b.Delete(r.ctx, "k"), "delete with the secondary down")
		r.heal() // 2 minutes
		// w2 commits on the primary; its commit on the secondary hangs for
		// the idle timeout (a minute), well past the slow read.
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 2, Hang: true, Times: 1})
		wrote := make(chan error)
		go func() { wrote <- r.write("k", "w2") }()
		require.Equal(t, "w2", <-slow, "slow read")
		assert.Equal(t, "w2", r.read("k"), "read after a read saw w2")
		require.NoError(t, <-wrote, "write of w2")
	})
}

// Found by TestChaos (seed 44, mirror): a write committed on the primary,
// then hung committing on the secondary; the primary went down and reads
// fell back to the secondary's older value after a read had seen the new
// one.
func TestMirrorReadDuringACommitDoesNotGoBackToTheOldValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, IdleTimeout: 30 * time.Second})
		require.NoError(t, r.write("k", "old"))
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 3, Hang: true, Times: 1})
		written := make(chan error)
		go func() { written <- r.write("k", "new") }()
		synctest.Wait()
		require.Equal(t, "new", r.content(primary, "k"), "primary during the secondary's commit")
		r.faults[primary].Outage(nil)
		assert.NotEqual(t, "old", r.read("k"), "read with the primary down, the new value committed there")
		<-written
	})
}

// A Mirror-mode write that failed on both sides, having reached the
// secondary after all, must not make reads flicker between the secondary's
// copy and the primary's older one.
func TestFailedMirrorWriteDoesNotFlickerBetweenSides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		r.faults[secondary].Outage(nil)
		require.NoError(t, r.write("k", "v1")) // pending: on the primary only
		r.heal()
		require.NoError(t, r.write("k", "v2")) // on both sides
		// v3 fails on the primary and is applied on the secondary, whose
		// answer is lost.
		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 2, Times: 1})
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
		require.Error(t, r.write("k", "v3"), "write of v3")
		r.heal()
		var seen []string
		for _, down := range []int{-1, primary, -1} {
			if down >= 0 {
				r.faults[down].Outage(nil)
			}
			seen = append(seen, r.read("k"))
			if down >= 0 {
				r.heal()
			}
		}
		newest := map[string]int{"v2": 2, "v3": 3, "<unavailable>": 0}
		high := 0
		for _, got := range seen {
			n, ok := newest[got]
			require.True(t, ok && (n == 0 || n >= high), "reads with the primary up, down, up: %q; a read went back to an older version", seen)
			high = max(high, n)
		}
	})
}

// Found by TestChaos (seed 198): a write failed, but the secondary had
// applied it; while the primary was down reads served it from there, and
// once the primary was back they served the older value again.
func TestFailedWriteDoesNotFlickerWhileThePrimaryIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The default breaker, which one failed write does not trip.
		r := newRig(t, failoverblob.Options{Breaker: &circuit.Settings{}})
		require.NoError(t, r.write("k", "v1"))
		r.faults[primary].Outage(nil)
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
		require.ErrorIs(t, r.write("k", "v2"), failoverblob.ErrUnavailable, "write applied on the secondary, reported failed")
		during := r.read("k")
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute) // past the breaker's timeout
		after := r.read("k")
		assert.False(t, during == "v2" && after == "v1", "read the failed write's value during the outage, then the older value after it")
	})
}

// Found by TestChaos (seed 150): a read looked up the key's holder (the
// secondary), then the reconciler moved the object to the primary and
// removed the secondary's copy, and the read found nothing there: NotFound
// for an acknowledged write.
func TestReadRacingReconcileFindsTheMovedObject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		require.NoError(t, r.write("k", "v"))
		r.heal()
		// The read reaches the secondary 5s late; reconcile runs meanwhile.
		r.faults[secondary].Set(failovertest.OpRead, failovertest.Fault{Latency: 5 * time.Second, Times: 1})
		got := make(chan string)
		go func() { got <- r.read("k") }()
		synctest.Wait()
		r.drain()
		assert.Equal(t, "v", <-got, "read racing reconcile")

	})
}
