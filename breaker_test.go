package failoverblob_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

// What counts against a side's breaker, and when it trips and recovers.

// The caller's own cancellation is an answer: it never trips a breaker and
// never moves a write.
func TestCancelledContextDoesNotTrip(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	ctx, cancel := context.WithCancel(r.ctx)
	cancel()
	for range 10 {
		err := r.b.WriteAll(ctx, "k", []byte("v"), nil)
		if gcerrors.Code(err) != gcerrors.Canceled {
			t.Fatalf("write with a cancelled context: got %v, want Canceled", err)
		}
		if _, err := r.b.ReadAll(ctx, "k"); err == nil {
			t.Fatalf("read with a cancelled context: got nil error")
		}
	}
	st := r.f.Status()
	if st.Primary.State != circuit.StateClosed || st.Primary.Failures != 0 {
		t.Errorf("primary after cancelled calls: state %v, failures %d; want closed, 0", st.Primary.State, st.Primary.Failures)
	}
	for i := range 2 {
		if got := r.content(i, "k"); got != "<absent>" {
			t.Errorf("side %d: got %q, want <absent>", i, got)
		}
	}
	if n := r.journal.Len(); n != 0 {
		t.Errorf("journal entries: got %d, want 0", n)
	}
}

// Answers (NotFound, a failed precondition) never trip the breaker or move
// a call to the secondary.
func TestAnswersDoNotFailOver(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	for range 10 {
		if _, err := r.b.ReadAll(r.ctx, "missing"); gcerrors.Code(err) != gcerrors.NotFound {
			t.Fatalf("read of a missing key: got %v, want NotFound", err)
		}
	}
	if err := r.write("k", "v"); err != nil {
		t.Fatal(err)
	}
	err := r.b.WriteAll(r.ctx, "k", []byte("v2"), &blob.WriterOptions{IfNotExist: true})
	if gcerrors.Code(err) != gcerrors.FailedPrecondition {
		t.Errorf("IfNotExist over an existing key: got %v, want FailedPrecondition", err)
	}
	if st := r.f.Status(); st.Primary.State != circuit.StateClosed {
		t.Errorf("primary breaker: got %v, want closed", st.Primary.State)
	}
	if got := r.content(secondary, "k"); got != "<absent>" {
		t.Errorf("secondary: got %q, want <absent>", got)
	}
	if got := r.content(primary, "k"); got != "v" {
		t.Errorf("primary: got %q, want %q", got, "v")
	}
}

// Breaker timing in virtual time: it trips after the configured failures,
// stays open for Timeout (calls skip the primary), lets one probe through
// when half-open, and closes when the probe succeeds.
func TestBreakerTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var transitions []string
		r := newRig(t, failoverblob.Options{Breaker: &circuit.Settings{
			ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 3 },
			Timeout:     30 * time.Second,
			OnStateChange: func(_ string, from, to circuit.State) {
				transitions = append(transitions, from.String()+"->"+to.String())
			},
		}})
		r.faults[primary].Outage(nil)
		for i := range 3 {
			if err := r.write("k", "v"); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		if got := r.f.Status().Primary.State; got != circuit.StateOpen {
			t.Fatalf("after 3 outages: state %v, want open", got)
		}
		calls := r.faults[primary].Calls(failovertest.OpWrite)
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		if got := r.faults[primary].Calls(failovertest.OpWrite); got != calls {
			t.Errorf("write while open reached the primary: calls %d, want %d", got, calls)
		}
		time.Sleep(29 * time.Second)
		if got := r.f.Status().Primary.State; got != circuit.StateOpen {
			t.Errorf("29s after tripping: state %v, want open", got)
		}
		time.Sleep(2 * time.Second)
		if got := r.f.Status().Primary.State; got != circuit.StateHalfOpen {
			t.Errorf("31s after tripping: state %v, want half-open", got)
		}
		r.faults[primary].Heal()
		if err := r.write("probe", "p"); err != nil {
			t.Fatal(err)
		}
		if got := r.f.Status().Primary.State; got != circuit.StateClosed {
			t.Errorf("after a successful probe: state %v, want closed", got)
		}
		if got := r.content(primary, "probe"); got != "p" {
			t.Errorf("probe write on the primary: got %q, want %q", got, "p")
		}
		want := []string{"closed->open", "open->half-open", "half-open->closed"}
		if !slices.Equal(transitions, want) {
			t.Errorf("transitions: got %q, want %q", transitions, want)
		}
	})
}
