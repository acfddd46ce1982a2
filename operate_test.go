package failoverblob_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

// Run's active probe notices a healed primary well before the breaker's
// timeout, with no user traffic, and leaves a side that is still down open.
func TestProbeNoticesRecoveryBeforeTheBreakerTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{ProbeInterval: 5 * time.Second, ReconcileInterval: time.Hour})
		ctx, cancel := context.WithCancel(r.ctx)
		defer cancel()
		go func() { _ = r.f.Run(ctx) }()

		r.faults[primary].Outage(nil)
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(6 * time.Second) // a probe finds the primary still down
		if st := r.f.Status().Primary.State; st != circuit.StateOpen {
			t.Fatalf("primary after a probe while down: %v, want open", st)
		}
		r.faults[primary].Heal()
		time.Sleep(6 * time.Second) // the next probe; the breaker's timeout is a minute
		if st := r.f.Status().Primary.State; st != circuit.StateClosed {
			t.Errorf("primary 6 s after it healed: %v, want closed by the probe", st)
		}
		if n := r.faults[primary].Calls(failovertest.OpWrite); n < 2 {
			t.Errorf("writes that reached the primary: %d, want the probes' canaries", n)
		}
	})
}

// A side traffic is forced off takes no calls; a write streaming to it when
// the force comes commits on the other side; read-only refuses writes,
// copies and deletes and keeps reads; ForceNone routes by the breakers.
func TestForceRoutesTrafficAsTheOperatorSays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}

		// ForceSecondary, switched on while a write streams to the primary.
		w, err := r.b.NewWriter(r.ctx, "k", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("v2 streamed")); err != nil {
			t.Fatal(err)
		}
		r.f.Force(failoverblob.ForceSecondary)
		if err := w.Close(); err != nil {
			t.Fatalf("write forced off the primary mid-stream: %v", err)
		}
		if p, s := r.content(primary, "k"), r.content(secondary, "k"); p != "v1" || s != "v2 streamed" {
			t.Errorf("after the forced write: primary %q, secondary %q; want it on the secondary", p, s)
		}
		if got := r.read("k"); got != "v2 streamed" {
			t.Errorf("read while forced: %q", got)
		}
		if st := r.f.Status(); st.Forced != failoverblob.ForceSecondary || st.Primary.Failures != 0 {
			t.Errorf("status: forced %v, primary failures %d; want secondary, none (a forced side is not failing)", st.Forced, st.Primary.Failures)
		}

		// ForceReadOnly: writes, copies and deletes refused; reads go on.
		r.f.Force(failoverblob.ForceReadOnly)
		for name, err := range map[string]error{
			"write":  r.write("k", "v3"),
			"copy":   r.b.Copy(r.ctx, "k2", "k", nil),
			"delete": r.b.Delete(r.ctx, "k"),
		} {
			if !errors.Is(err, failoverblob.ErrReadOnly) || gcerrors.Code(err) != gcerrors.FailedPrecondition {
				t.Errorf("%s while read-only: %v, want ErrReadOnly (FailedPrecondition)", name, err)
			}
		}
		if got := r.read("k"); got != "v2 streamed" {
			t.Errorf("read while read-only: %q", got)
		}
		if st := r.f.Status(); st.Writable {
			t.Errorf("status while read-only: writable")
		}

		// ForcePrimary: with the primary down, calls fail instead of
		// failing over.
		r.f.Force(failoverblob.ForcePrimary)
		r.faults[primary].Outage(nil)
		if err := r.write("other", "x"); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("write with the primary down, forced to the primary: %v, want ErrUnavailable", err)
		}
		if got := r.content(secondary, "other"); got != "<absent>" {
			t.Errorf("the secondary got %q while traffic was forced to the primary", got)
		}

		// Back to automatic.
		r.faults[primary].Heal()
		r.f.Force(failoverblob.ForceNone)
		time.Sleep(2 * time.Minute)
		r.drain()
		if p, s := r.content(primary, "k"), r.content(secondary, "k"); p != "v2 streamed" || s != "<absent>" {
			t.Errorf("after ForceNone and a drain: primary %q, secondary %q", p, s)
		}
	})
}

// The readiness answer says whether a write can be acknowledged under the
// bucket's policy: Mirror with AckBoth and one side down cannot.
func TestReadinessFollowsTheAckPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth})
		r.faults[secondary].Outage(nil)
		if err := r.write("k", "v"); err == nil {
			t.Fatal("AckBoth write with the secondary down: got nil")
		}
		if st := r.f.Status(); st.Writable || !strings.Contains(st.Reason, "AckBoth") {
			t.Errorf("status: writable %v (%s), want not writable, AckBoth named", st.Writable, st.Reason)
		}
	})
}

// OpenBucket runs the reconciler as a URL-opened bucket does, and Close
// stops it.
func TestOpenBucketReconcilesInTheBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		base := memblob.OpenBucket(nil)
		defer base.Close()
		primary, faults := failovertest.Wrap(base, nil)
		b, err := failoverblob.OpenBucket(ctx, primary, memblob.OpenBucket(nil), &failoverblob.Options{ReconcileInterval: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		faults.Outage(nil)
		if err := b.WriteAll(ctx, "k", []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		faults.Heal()
		time.Sleep(11 * time.Second)
		if got, err := base.ReadAll(ctx, "k"); err != nil || string(got) != "v" {
			t.Errorf("primary 11 s after it healed: %q, %v; want the background reconciler to have repaired it", got, err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		// synctest fails the test if the reconciler's goroutine outlives it.
	})
}

// Work pending for several intervals with no reconciler running is logged,
// once.
func TestPendingWorkWithNoReconcilerIsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		r := newRig(t, failoverblob.Options{ReconcileInterval: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		r.faults[primary].Outage(nil)
		for i := range 10 {
			if err := r.b.WriteAll(r.ctx, "k", []byte{byte(i)}, &blob.WriterOptions{}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Second)
		}
		if n := strings.Count(logs.String(), "no reconciler is running"); n != 1 {
			t.Errorf("warnings about no reconciler: %d, want 1; logs:\n%s", n, logs.String())
		}
	})
}

// Status.Reconcile says whether Run runs and counts the passes completed,
// Run's and Drain calls', so a dashboard sees a reconciler that stopped.
func TestStatusReportsReconcilePasses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{ReconcileInterval: 10 * time.Second})
		if got := r.f.Status().Reconcile; got != (failoverblob.ReconcileStatus{}) {
			t.Fatalf("before any pass: %+v, want the zero value", got)
		}
		opened := time.Now()
		if _, err := r.f.Drain(r.ctx); err != nil {
			t.Fatal(err)
		}
		if got := r.f.Status().Reconcile; got.Running || got.Passes != 1 || !got.LastPass.Equal(opened) {
			t.Fatalf("after a Drain: %+v, want 1 pass at %v and not running", got, opened)
		}

		ctx, cancel := context.WithCancel(r.ctx)
		done := make(chan error, 1)
		go func() { done <- r.f.Run(ctx) }()
		time.Sleep(25 * time.Second) // the first pass at once, then at 10 s and 20 s
		synctest.Wait()
		if got := r.f.Status().Reconcile; !got.Running || got.Passes != 4 || !got.LastPass.Equal(opened.Add(20*time.Second)) {
			t.Errorf("25 s into Run: %+v, want running, 4 passes, the last at %v", got, opened.Add(20*time.Second))
		}
		cancel()
		<-done
		if got := r.f.Status().Reconcile; got.Running {
			t.Errorf("after Run returned: %+v, want not running", got)
		}
	})
}
