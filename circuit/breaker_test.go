package circuit_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob/circuit"
)

// errRefused is an outage as the default classifier sees it.
var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// transitions records OnStateChange calls.
type transitions struct {
	mu  sync.Mutex
	got []string
}

func (r *transitions) record(name string, from, to circuit.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, name+": "+from.String()+" -> "+to.String())
}

func (r *transitions) check(t *testing.T, want ...string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Equal(r.got, want) {
		t.Errorf("transitions = %q, want %q", r.got, want)
	}
}

// call makes one call through b that ends with err.
func call(t *testing.T, ctx context.Context, b *circuit.Breaker, err error) {
	t.Helper()
	done, aerr := b.Allow(ctx)
	if aerr != nil {
		t.Fatalf("Allow() = %v, want nil (state %v)", aerr, b.State())
	}
	done(err)
}

func wantState(t *testing.T, b *circuit.Breaker, want circuit.State) {
	t.Helper()
	if got := b.State(); got != want {
		t.Fatalf("State() = %v, want %v (counts %+v)", got, want, b.Counts())
	}
}

func wantRefused(t *testing.T, b *circuit.Breaker) {
	t.Helper()
	done, err := b.Allow(context.Background())
	if !errors.Is(err, circuit.ErrOpen) || done != nil {
		t.Fatalf("Allow() = (done %v, %v), want (nil, ErrOpen)", done != nil, err)
	}
	if !strings.Contains(err.Error(), b.Name()) {
		t.Errorf("Allow() error %q does not name the breaker %q", err, b.Name())
	}
}

func TestStateString(t *testing.T) {
	tests := []struct {
		in   circuit.State
		want string
	}{
		{circuit.StateClosed, "closed"},
		{circuit.StateHalfOpen, "half-open"},
		{circuit.StateOpen, "open"},
		{circuit.State(7), "unknown state: 7"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("State(%d).String() = %q, want %q", int(tt.in), got, tt.want)
		}
	}
}

func TestDefaultReadyToTrip(t *testing.T) {
	tests := []struct {
		in   circuit.Counts
		want bool
	}{
		{circuit.Counts{}, false},
		{circuit.Counts{Requests: 4, TotalFailures: 4, ConsecutiveFailures: 4}, false},
		{circuit.Counts{Requests: 5, TotalFailures: 5, ConsecutiveFailures: 5}, true},
		{circuit.Counts{Requests: 9, TotalSuccesses: 1, TotalFailures: 8, ConsecutiveFailures: 4}, false},
		{circuit.Counts{Requests: 10, TotalSuccesses: 5, TotalFailures: 5, ConsecutiveFailures: 1}, true},
		{circuit.Counts{Requests: 10, TotalSuccesses: 6, TotalFailures: 4, ConsecutiveFailures: 1}, false},
		// In-flight and excluded calls do not dilute the ratio.
		{circuit.Counts{Requests: 40, TotalSuccesses: 5, TotalFailures: 5, TotalExclusions: 20, ConsecutiveFailures: 1}, true},
		{circuit.Counts{Requests: 40, TotalSuccesses: 4, TotalFailures: 4, TotalExclusions: 20, ConsecutiveFailures: 1}, false},
	}
	for _, tt := range tests {
		if got := circuit.DefaultReadyToTrip(tt.in); got != tt.want {
			t.Errorf("DefaultReadyToTrip(%+v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuit.New(nil)
		if got := b.Name(); got != "side" {
			t.Errorf("Name() = %q, want %q", got, "side")
		}
		wantState(t, b, circuit.StateClosed)
		for range circuit.DefaultConsecutiveFailures {
			call(t, t.Context(), b, errRefused)
		}
		wantState(t, b, circuit.StateOpen)

		time.Sleep(circuit.DefaultTimeout - time.Millisecond)
		wantState(t, b, circuit.StateOpen)
		time.Sleep(2 * time.Millisecond)
		wantState(t, b, circuit.StateHalfOpen)

		// One probe at a time by default.
		done, err := b.Allow(t.Context())
		if err != nil {
			t.Fatalf("first probe: Allow() = %v, want nil", err)
		}
		wantRefused(t, b)
		done(nil)
		wantState(t, b, circuit.StateClosed)
	})
}

func TestBreakerTripsAndRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec transitions
		b := circuit.New(&circuit.Settings{
			Name:             "primary",
			Timeout:          10 * time.Second,
			HalfOpenRequests: 2,
			OnStateChange:    rec.record,
		})
		for range 4 {
			call(t, t.Context(), b, errRefused)
		}
		wantState(t, b, circuit.StateClosed)
		call(t, t.Context(), b, errRefused)
		wantState(t, b, circuit.StateOpen)
		wantRefused(t, b)

		time.Sleep(10*time.Second - time.Millisecond)
		wantRefused(t, b)
		time.Sleep(2 * time.Millisecond)
		wantState(t, b, circuit.StateHalfOpen)

		probe1, err := b.Allow(t.Context())
		if err != nil {
			t.Fatalf("probe 1: Allow() = %v, want nil", err)
		}
		probe2, err := b.Allow(t.Context())
		if err != nil {
			t.Fatalf("probe 2: Allow() = %v, want nil", err)
		}
		wantRefused(t, b)

		probe1(nil)
		wantState(t, b, circuit.StateHalfOpen)
		probe2(nil)
		wantState(t, b, circuit.StateClosed)
		call(t, t.Context(), b, nil)

		rec.check(t,
			"primary: closed -> open",
			"primary: open -> half-open",
			"primary: half-open -> closed",
		)
	})
}

func TestFailedProbeReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec transitions
		b := circuit.New(&circuit.Settings{
			Name:          "secondary",
			Timeout:       time.Minute,
			OnStateChange: rec.record,
		})
		for range 5 {
			call(t, t.Context(), b, errRefused)
		}
		time.Sleep(time.Minute + time.Millisecond)
		call(t, t.Context(), b, &statusError{503})
		wantState(t, b, circuit.StateOpen)
		wantRefused(t, b)

		// A fresh Timeout starts from the failed probe.
		time.Sleep(time.Minute - time.Millisecond)
		wantRefused(t, b)
		time.Sleep(2 * time.Millisecond)
		call(t, t.Context(), b, nil)
		wantState(t, b, circuit.StateClosed)

		rec.check(t,
			"secondary: closed -> open",
			"secondary: open -> half-open",
			"secondary: half-open -> open",
			"secondary: open -> half-open",
			"secondary: half-open -> closed",
		)
	})
}

func TestAnswersNeverTrip(t *testing.T) {
	ctx := context.Background()
	mem := memblob.OpenBucket(nil)
	defer mem.Close()
	b := circuit.New(nil)
	for range 100 {
		done, err := b.Allow(ctx)
		if err != nil {
			t.Fatalf("Allow() = %v after %+v, want nil", err, b.Counts())
		}
		_, err = mem.ReadAll(ctx, "missing")
		done(err)
	}
	wantState(t, b, circuit.StateClosed)
	if got := b.Counts(); got.TotalSuccesses != 100 || got.TotalFailures != 0 {
		t.Errorf("Counts() = %+v after 100 NotFound, want 100 successes and no failures", got)
	}
}

func TestCallerCancellationNeverTrips(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b := circuit.New(nil)
	done, err := b.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	done(ctx.Err())
	// Whatever the error, once the caller has given up it proves nothing.
	for range 100 {
		call(t, ctx, b, errRefused)
	}
	wantState(t, b, circuit.StateClosed)
	got := b.Counts()
	want := circuit.Counts{Requests: 101, TotalExclusions: 101}
	if got != want {
		t.Errorf("Counts() = %+v, want %+v", got, want)
	}
}

func TestCallerCancellationFreesProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuit.New(&circuit.Settings{Timeout: time.Second})
		for range 5 {
			call(t, t.Context(), b, errRefused)
		}
		time.Sleep(2 * time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		done, err := b.Allow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantRefused(t, b)
		cancel()
		done(ctx.Err())
		wantState(t, b, circuit.StateHalfOpen)
		call(t, t.Context(), b, nil)
		wantState(t, b, circuit.StateClosed)
	})
}

func TestFastBurstTrips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuit.New(nil)
		start := time.Now()
		for range 5 {
			call(t, t.Context(), b, &statusError{503})
		}
		if elapsed := time.Since(start); elapsed != 0 {
			t.Fatalf("burst took %v of virtual time, want 0", elapsed)
		}
		wantState(t, b, circuit.StateOpen)
	})
}

func TestFailureRatioTrips(t *testing.T) {
	b := circuit.New(nil)
	ctx := context.Background()
	// Successes and outages alternate: never two outages in a row.
	for range 4 {
		call(t, ctx, b, nil)
		call(t, ctx, b, errRefused)
	}
	call(t, ctx, b, nil)
	wantState(t, b, circuit.StateClosed) // 4 of 9: too few calls, too few failures
	call(t, ctx, b, errRefused)
	wantState(t, b, circuit.StateOpen) // 5 of 10
}

func TestOutcomesLeaveWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuit.New(&circuit.Settings{Interval: time.Minute})
		for range 4 {
			call(t, t.Context(), b, errRefused)
		}
		time.Sleep(time.Minute + 6*time.Second)
		for range 4 {
			call(t, t.Context(), b, errRefused)
		}
		wantState(t, b, circuit.StateClosed)
		if got := b.Counts().TotalFailures; got != 4 {
			t.Errorf("Counts().TotalFailures = %d, want 4 (older ones out of the window)", got)
		}
	})
}

func TestCustomClassifier(t *testing.T) {
	everything := func(context.Context, error) bool { return true }
	b := circuit.New(&circuit.Settings{Classifier: everything})
	ctx := context.Background()
	_, notFound := memblob.OpenBucket(nil).ReadAll(ctx, "missing")
	if !b.IsOutage(ctx, notFound) {
		t.Errorf("IsOutage(%v) = false, want true from the custom classifier", notFound)
	}
	for range 5 {
		call(t, ctx, b, notFound)
	}
	wantState(t, b, circuit.StateOpen)
}

func TestDoneTwice(t *testing.T) {
	b := circuit.New(nil)
	ctx := context.Background()
	done, err := b.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done(errRefused)
	done(errRefused)
	done(nil)
	got := b.Counts()
	want := circuit.Counts{Requests: 1, TotalFailures: 1, ConsecutiveFailures: 1}
	if got != want {
		t.Errorf("Counts() = %+v after done called three times, want %+v", got, want)
	}
}

func TestDoneFromOtherGoroutines(t *testing.T) {
	b := circuit.New(&circuit.Settings{ReadyToTrip: func(circuit.Counts) bool { return false }})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 50 {
		done, err := b.Allow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		outcome := []error{nil, errRefused}[i%2]
		for range 2 {
			wg.Go(func() { done(outcome) })
		}
	}
	wg.Wait()
	got := b.Counts()
	if got.TotalSuccesses != 25 || got.TotalFailures != 25 {
		t.Errorf("Counts() = %+v, want 25 successes and 25 failures", got)
	}
}

// Reset closes an open breaker at once, and says so.
func TestResetClosesAnOpenBreaker(t *testing.T) {
	var changes []string
	b := circuit.New(&circuit.Settings{
		Name:          "side",
		ReadyToTrip:   func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 },
		Timeout:       time.Hour,
		OnStateChange: func(_ string, from, to circuit.State) { changes = append(changes, from.String()+">"+to.String()) },
	})
	done, err := b.Allow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	done(errRefused)
	if b.State() != circuit.StateOpen {
		t.Fatalf("state after an outage: %v, want open", b.State())
	}
	b.Reset()
	if b.State() != circuit.StateClosed || b.Counts().Requests != 0 {
		t.Errorf("after Reset: %v with %+v, want closed with no counts", b.State(), b.Counts())
	}
	if _, err := b.Allow(context.Background()); err != nil {
		t.Errorf("Allow after Reset: %v", err)
	}
	if want := []string{"closed>open", "open>closed"}; !slices.Equal(changes, want) {
		t.Errorf("state changes: %q, want %q", changes, want)
	}
}
