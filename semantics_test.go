package failoverblob_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

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

// A delete made after recovery of a key written during the outage must not
// be undone by reconcile copying the redirected copy back.
func TestDeleteAfterRecoveryIsNotResurrected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1"); err != nil {
			t.Fatalf("redirected write: %v", err)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		if err := r.b.Delete(r.ctx, "k"); err != nil {
			t.Fatalf("delete after recovery: %v", err)
		}
		r.drain()
		for i := range 2 {
			if got := r.content(i, "k"); got != "<absent>" {
				t.Errorf("side %d after reconcile: got %q, want <absent>", i, got)
			}
		}
		if got := r.read("k"); got != "<not found>" {
			t.Errorf("read after reconcile: got %q, want <not found>", got)
		}
	})
}

func TestListingMergesPendingWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{BestEffortList: true})
		for _, k := range []string{"a", "b", "c"} {
			if err := r.write(k, k); err != nil {
				t.Fatal(err)
			}
		}
		r.faults[primary].Outage(nil)
		if err := r.write("d", "d"); err != nil {
			t.Fatal(err)
		}
		if err := r.b.Delete(r.ctx, "b"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		if got, want := r.keys(), []string{"a", "c", "d"}; !slices.Equal(got, want) {
			t.Errorf("list with pending work: got %q, want %q", got, want)
		}
		r.drain()
		if got, want := r.keys(), []string{"a", "c", "d"}; !slices.Equal(got, want) {
			t.Errorf("list after reconcile: got %q, want %q", got, want)
		}
	})
}

func TestListingWhilePrimaryDown(t *testing.T) {
	cases := []struct {
		name string
		opts failoverblob.Options
		want string
	}{
		{"redirect", failoverblob.Options{}, "<list error"},
		{"redirect, best effort", failoverblob.Options{BestEffortList: true}, "d"},
		{"mirror", failoverblob.Options{Mode: failoverblob.Mirror}, "a,d"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.opts)
			if err := r.write("a", "a"); err != nil {
				t.Fatal(err)
			}
			r.faults[primary].Outage(nil)
			if err := r.write("d", "d"); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(r.keys(), ","); !strings.HasPrefix(got, tc.want) {
				t.Errorf("list: got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestListingHidesReservedPrefix(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	if err := r.raw[primary].WriteAll(r.ctx, failoverblob.ReservedPrefix+"canary", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.write("a", "a"); err != nil {
		t.Fatal(err)
	}
	if got, want := r.keys(), []string{"a"}; !slices.Equal(got, want) {
		t.Errorf("list: got %q, want %q", got, want)
	}
}

func TestReservedKeysAreRefused(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	key := failoverblob.ReservedPrefix + "journal/x"
	_, readErr := r.b.ReadAll(r.ctx, key)
	_, attrErr := r.b.Attributes(r.ctx, key)
	calls := []struct {
		name string
		err  error
	}{
		{"write", r.write(key, "x")},
		{"read", readErr},
		{"attributes", attrErr},
		{"delete", r.b.Delete(r.ctx, key)},
		{"copy to", r.b.Copy(r.ctx, key, "a", nil)},
		{"version metadata", r.b.WriteAll(r.ctx, "a", nil, &blob.WriterOptions{Metadata: map[string]string{failoverblob.VersionMetadataKey: "x"}})},
	}
	for _, c := range calls {
		if !errors.Is(c.err, failoverblob.ErrReservedKey) || gcerrors.Code(c.err) != gcerrors.InvalidArgument {
			t.Errorf("%s: got %v (code %v), want ErrReservedKey with code InvalidArgument", c.name, c.err, gcerrors.Code(c.err))
		}
	}
	for i := range 2 {
		if got := r.content(i, key); got != "<absent>" {
			t.Errorf("side %d holds %q: got %q", i, key, got)
		}
	}
}

func TestVersionIsHiddenFromAttributes(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	if err := r.b.WriteAll(r.ctx, "k", []byte("v"), &blob.WriterOptions{Metadata: map[string]string{"owner": "me"}}); err != nil {
		t.Fatal(err)
	}
	a, err := r.b.Attributes(r.ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"owner": "me"}; len(a.Metadata) != 1 || a.Metadata["owner"] != "me" {
		t.Errorf("Attributes metadata: got %v, want %v", a.Metadata, want)
	}
	raw, err := r.raw[primary].Attributes(r.ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := failoverblob.ParseVersion(raw.Metadata[failoverblob.VersionMetadataKey]); err != nil || raw.Metadata[failoverblob.VersionMetadataKey] == "" {
		t.Errorf("stored version %q: want a parseable version (%v)", raw.Metadata[failoverblob.VersionMetadataKey], err)
	}
}

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

// IfNotExist sees a key whose only copy is the redirected one.
func TestIfNotExistSeesRedirectedKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		err := r.b.WriteAll(r.ctx, "k", []byte("v2"), &blob.WriterOptions{IfNotExist: true})
		if gcerrors.Code(err) != gcerrors.FailedPrecondition {
			t.Errorf("IfNotExist over a redirected key: got %v, want FailedPrecondition", err)
		}
		if got := r.content(primary, "k"); got != "<absent>" {
			t.Errorf("primary: got %q, want <absent>", got)
		}
		r.drain()
		if got := r.read("k"); got != "v1" {
			t.Errorf("read after reconcile: got %q, want %q", got, "v1")
		}
	})
}

// As reaches the control surface, and the sides' own types (the primary's
// first).
func TestAsReachesFailoverAndSides(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	var f *failoverblob.Failover
	if !r.b.As(&f) || f != r.f {
		t.Errorf("As(**Failover): got %p, want %p", f, r.f)
	}
	var in *failovertest.Injector
	if !r.b.As(&in) || in != r.faults[primary] {
		t.Errorf("As(**failovertest.Injector): got %p, want the primary's %p", in, r.faults[primary])
	}
	var s *string
	if r.b.As(&s) {
		t.Error("As(**string): got true, want false")
	}
}

// A delete the primary refuses (here the caller's own hook) must not take
// effect later through the journal.
func TestRefusedDeleteIsNotAppliedLater(t *testing.T) {
	errRefused := errors.New("refused")
	for _, mode := range []failoverblob.Mode{failoverblob.Redirect, failoverblob.Mirror} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, failoverblob.Options{Mode: mode})
				r.faults[primary].Outage(nil)
				if err := r.write("k", "acked"); err != nil {
					t.Fatal(err)
				}
				r.faults[primary].Heal()
				time.Sleep(2 * time.Minute)
				err := r.b.DeleteWithOptions(r.ctx, "k", &blob.DeleteOptions{
					BeforeDelete: func(func(any) bool) error { return errRefused },
				})
				if !errors.Is(err, errRefused) {
					t.Fatalf("refused delete: got %v, want %v", err, errRefused)
				}
				r.drain()
				if got := r.read("k"); got != "acked" {
					t.Errorf("read after reconcile: got %q, want %q", got, "acked")
				}
				if got := r.content(primary, "k"); got != "acked" {
					t.Errorf("primary after reconcile: got %q, want %q", got, "acked")
				}
			})
		})
	}
}
