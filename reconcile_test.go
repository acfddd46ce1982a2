package failoverblob_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// The reconciler: what Drain and Run repair, and what they must leave
// alone.

// A write made after the primary recovered, before reconcile ran, is newer
// than the redirected copy; reconcile must not clobber it.
func TestNewerWriteAfterRecoveryWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "old"); err != nil {
			t.Fatalf("redirected write: %v", err)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		if err := r.write("k", "new"); err != nil {
			t.Fatalf("write after recovery: %v", err)
		}
		if got := r.read("k"); got != "new" {
			t.Errorf("read before reconcile: got %q, want %q", got, "new")
		}
		r.drain()
		for i, want := range []string{"new", "<absent>"} {
			if got := r.content(i, "k"); got != want {
				t.Errorf("side %d after reconcile: got %q, want %q", i, got, want)
			}
		}
		if got := r.read("k"); got != "new" {
			t.Errorf("read after reconcile: got %q, want %q", got, "new")
		}
	})
}

// Run reconciles in the background of the caller's choosing and returns
// when the bucket closes, leaving no goroutine behind (synctest fails the
// test if one is left blocked).
func TestRunReconcilesAndStopsOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{ReconcileInterval: 5 * time.Second})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() { done <- r.f.Run(r.ctx) }()
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := r.content(primary, "k"); got != "v" {
			t.Errorf("primary after Run: got %q, want %q", got, "v")
		}
		if got := r.f.Status().Pending; got != 0 {
			t.Errorf("pending after Run: got %d, want 0", got)
		}
		if err := r.f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Run after Close: got %v, want nil", err)
		}
	})
}

// Found by TestChaos (seed 6): a reconcile pass listed the journal, then
// waited for a key's lock while a delete of the key committed (primary up,
// tombstone recorded). The repair, working from its listing, found the
// primary without the object and copied the older redirected copy back: a
// deleted object came back.
func TestReconcileDoesNotResurrectADeleteNewerThanItsListing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &steppingJournal{Memory: journal.NewMemory()}
		r := newRig(t, failoverblob.Options{Journal: j})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "redirected"); err != nil {
			t.Fatal(err)
		}
		r.heal()
		j.step = func() {
			if err := r.b.Delete(r.ctx, "k"); err != nil {
				t.Errorf("delete: %v", err)
			}
		}
		if _, err := r.f.Drain(r.ctx); err != nil {
			t.Fatal(err)
		}
		if got := r.content(primary, "k"); got != "<absent>" {
			t.Errorf("primary after the pass: got %q, want <absent> (the delete is newer)", got)
		}
		r.drain()
		if got := r.read("k"); got != "<not found>" {
			t.Errorf("read after the delete and reconcile: got %q, want <not found>", got)
		}
	})
}

// Found by TestChaos (seed 72): a write applied on the primary but reported
// failed was redirected, its entry recorded after a reconcile pass had read
// the journal. The pass found the same version on both sides and removed the
// secondary's copy, but the key stayed pending with the index sending reads
// to that copy: reads said NotFound for an acknowledged write.
func TestReconcileCleanupDoesNotStrandReadsOnTheRemovedCopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &steppingJournal{Memory: journal.NewMemory()}
		// The default breaker, which one failed write does not trip.
		r := newRig(t, failoverblob.Options{Journal: j, Breaker: &circuit.Settings{}})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.heal()
		if err := r.write("probe", "p"); err != nil { // closes the primary's breaker
			t.Fatal(err)
		}
		j.step = func() {
			r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
			if err := r.write("k", "v2"); err != nil {
				t.Errorf("write applied on the primary, reported failed, redirected: %v", err)
			}
		}
		if _, err := r.f.Drain(r.ctx); err != nil {
			t.Fatal(err)
		}
		if got := r.read("k"); got != "v2" {
			t.Errorf("read after the pass: got %q, want v2", got)
		}
	})
}

// A tombstone withdrawn by a refused delete must not be applied by a Drain
// that listed the journal before it was withdrawn.
func TestRetractedTombstoneIsNotAppliedByAConcurrentDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		entered, release := make(chan struct{}), make(chan struct{})
		delErr := make(chan error)
		go func() {
			delErr <- r.b.DeleteWithOptions(r.ctx, "k", &blob.DeleteOptions{BeforeDelete: func(func(any) bool) error {
				close(entered)
				<-release
				return errors.New("caller refuses the delete")
			}})
		}()
		<-entered
		drained := make(chan error)
		go func() { _, err := r.f.Drain(r.ctx); drained <- err }()
		synctest.Wait()
		close(release)
		if err := <-delErr; err == nil {
			t.Fatal("refused delete: got nil error")
		}
		if err := <-drained; err != nil {
			t.Fatal(err)
		}
		if got := r.read("k"); got != "v1" {
			t.Errorf("read after the refused delete and Drain: got %q, want %q", got, "v1")
		}
	})
}
