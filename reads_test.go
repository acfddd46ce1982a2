package failoverblob_test

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
)

// Reads: which side serves a read, and what a read cut or refused by an
// outage reports.

// Item 13: in Mirror mode both sides may hold a pending key's newest
// version; a read is served by either.
func TestMirrorReadsThePendingKeyFromEitherSideHoldingTheNewestVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.heal()
		if err := r.write("k", "v2"); err != nil {
			t.Fatal(err)
		}
		if r.f.Status().Pending == 0 {
			t.Fatal("the test needs the key to be pending")
		}
		r.faults[primary].Outage(nil)
		if got := r.read("k"); got != "v2" {
			t.Errorf("read with the primary down: got %q, want v2", got)
		}
		if a, err := r.b.Attributes(r.ctx, "k"); err != nil || a.Size != int64(len("v2")) {
			t.Errorf("Attributes with the primary down: %v, %v; want v2's", a, err)
		}
	})
}

// A read that fails part-way reports the failure; it never passes off a
// truncated object as whole.
func TestReadFailingMidStream(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	if err := r.write("k", big); err != nil {
		t.Fatal(err)
	}
	r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{AfterBytes: 1000})
	got, err := r.b.ReadAll(r.ctx, "k")
	if err == nil || len(got) == len(big) {
		t.Errorf("read failing after 1000 bytes: got %d bytes and %v, want an error", len(got), err)
	}
}

// A hung primary costs a read its first-byte timeout, then the read falls
// back to the secondary.
func TestReadFromHungPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{FirstByteTimeout: 3 * time.Second, CallTimeout: 3 * time.Second})
		r.faults[primary].Outage(nil)
		if err := r.write("redirected", "v"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		if err := r.write("on-primary", "p"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Hang()
		start := time.Now()
		got := r.read("on-primary")
		if got != "<unavailable>" {
			t.Errorf("read of a key only the hung primary has: got %q, want <unavailable>", got)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("read took %v of virtual time, want the 3s first-byte timeout", d)
		}
		if got := r.read("redirected"); !strings.HasPrefix(got, "v") {
			t.Errorf("read of a key pending on the secondary: got %q, want %q", got, "v")
		}
	})
}

// A read that has begun must not end in NotFound: the object existed when
// it was opened. A client that reopens a cut stream can find the object
// gone (the reconciler moved it, or it was deleted); the caller is told to
// read again instead.
func TestReadThatBeganIsNotReportedNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", strings.Repeat("x", 4096)); err != nil {
			t.Fatal(err)
		}
		_, notFound := r.raw[primary].ReadAll(r.ctx, "missing")
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{Err: notFound, AfterBytes: 1000})
		_, err := r.b.ReadAll(r.ctx, "k")
		if gcerrors.Code(err) == gcerrors.NotFound || !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("read cut by a not-found part-way: got %v (code %v), want ErrUnavailable", err, gcerrors.Code(err))
		}
	})
}

// A read cut part-way by an outage of its side is reported as
// ErrUnavailable, as every other call the failover bucket could not serve
// is, so callers can tell "read again" from an answer.
func TestReadCutByAnOutageIsUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", strings.Repeat("x", 4096)); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{AfterBytes: 1000})
		_, err := r.b.ReadAll(r.ctx, "k")
		if !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("read cut by an outage part-way: got %v, want ErrUnavailable", err)
		}
	})
}

// An unavailable error's code is Unknown, whatever caused it: a watchdog's
// cancellation must not read as the caller's own.
func TestUnavailableIsNotReportedAsCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{FirstByteTimeout: 3 * time.Second, CallTimeout: 3 * time.Second})
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Hang()
		_, err := r.b.ReadAll(r.ctx, "k")
		if !errors.Is(err, failoverblob.ErrUnavailable) || gcerrors.Code(err) != gcerrors.Unknown {
			t.Errorf("read from a hung primary: got %v (code %v), want ErrUnavailable with code Unknown", err, gcerrors.Code(err))
		}
	})
}
