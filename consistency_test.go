package failoverblob_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

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
		if err := r.write("k", "w1"); err != nil {
			t.Fatal(err)
		}
		// The slow read reaches the primary 2m10s from now.
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{Latency: 2*time.Minute + 10*time.Second, Times: 1})
		slow := make(chan string)
		go func() { slow <- r.read("k") }()
		synctest.Wait()

		r.faults[secondary].Outage(nil)
		if err := r.b.Delete(r.ctx, "k"); err != nil {
			t.Fatalf("delete with the secondary down: %v", err)
		}
		r.heal() // 2 minutes
		// w2 commits on the primary; its commit on the secondary hangs for
		// the idle timeout (a minute), well past the slow read.
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 2, Hang: true, Times: 1})
		wrote := make(chan error)
		go func() { wrote <- r.write("k", "w2") }()
		if got := <-slow; got != "w2" {
			t.Fatalf("slow read: got %q, want w2 (the test needs it to see the commit on the primary)", got)
		}
		if got := r.read("k"); got != "w2" {
			t.Errorf("read after a read saw w2: got %q, want w2", got)
		}
		if err := <-wrote; err != nil {
			t.Fatalf("write of w2: %v", err)
		}
	})
}

// Found by TestChaos (seed 44, mirror): a write committed on the primary,
// then hung committing on the secondary; the primary went down and reads
// fell back to the secondary's older value after a read had seen the new
// one.
func TestMirrorReadDuringACommitDoesNotGoBackToTheOldValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, IdleTimeout: 30 * time.Second})
		if err := r.write("k", "old"); err != nil {
			t.Fatal(err)
		}
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 3, Hang: true, Times: 1})
		written := make(chan error)
		go func() { written <- r.write("k", "new") }()
		synctest.Wait()
		if got := r.content(primary, "k"); got != "new" {
			t.Fatalf("primary during the secondary's commit: %q, want new", got)
		}
		r.faults[primary].Outage(nil)
		if got := r.read("k"); got == "old" {
			t.Errorf("read with the primary down, the new value committed there: got the old value")
		}
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
		if err := r.write("k", "v1"); err != nil { // pending: on the primary only
			t.Fatal(err)
		}
		r.heal()
		if err := r.write("k", "v2"); err != nil { // on both sides
			t.Fatal(err)
		}
		// v3 fails on the primary and is applied on the secondary, whose
		// answer is lost.
		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 2, Times: 1})
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
		if err := r.write("k", "v3"); err == nil {
			t.Fatal("write of v3: got nil error")
		}
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
			if !ok || (n > 0 && n < high) {
				t.Fatalf("reads with the primary up, down, up: %q; a read went back to an older version", seen)
			}
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
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Outage(nil)
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
		if err := r.write("k", "v2"); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("write applied on the secondary, reported failed: got %v, want ErrUnavailable", err)
		}
		during := r.read("k")
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute) // past the breaker's timeout
		if after := r.read("k"); during == "v2" && after == "v1" {
			t.Errorf("read the failed write's value during the outage, then the older value after it")
		}
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
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		r.heal()
		// The read reaches the secondary 5s late; reconcile runs meanwhile.
		r.faults[secondary].Set(failovertest.OpRead, failovertest.Fault{Latency: 5 * time.Second, Times: 1})
		got := make(chan string)
		go func() { got <- r.read("k") }()
		synctest.Wait()
		r.drain()
		if g := <-got; g != "v" {
			t.Errorf("read racing reconcile: got %q, want v", g)
		}
	})
}
