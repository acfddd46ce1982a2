package failoverblob_test

import (
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
)

// Deletes: tombstones, deletes that change nothing, and deletes whose
// outcome is not known.

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

// Items 9 and 14: deleting a key this bucket knows to be deleted is
// NotFound, as gocloud's contract and the bucket's reads say.
func TestDeletingADeletedKeyIsNotFound(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts failoverblob.Options
		down int
	}{
		{"redirect", failoverblob.Options{}, primary},
		{"mirror", failoverblob.Options{Mode: failoverblob.Mirror}, secondary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, tc.opts)
				if err := r.write("k", "v1"); err != nil {
					t.Fatal(err)
				}
				r.faults[tc.down].Outage(nil)
				if err := r.b.Delete(r.ctx, "k"); err != nil {
					t.Fatalf("delete with the %d side down: %v", tc.down, err)
				}
				r.heal()
				if got := r.read("k"); got != "<not found>" {
					t.Fatalf("read after heal: got %q, want <not found>", got)
				}
				if err := r.b.Delete(r.ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
					t.Errorf("second delete: got %v, want NotFound", err)
				}
				r.drain()
				if err := r.b.Delete(r.ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
					t.Errorf("delete after the drain: got %v, want NotFound", err)
				}
			})
		})
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

// Item 11: a delete refused by the caller's own BeforeDelete changes
// nothing, also when the primary is down and the delete would be recorded
// as a tombstone.
func TestDeleteRefusedByTheCallersHookChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Outage(nil)
		refused := errors.New("not this one")
		err := r.b.DeleteWithOptions(r.ctx, "k", &blob.DeleteOptions{BeforeDelete: func(func(any) bool) error { return refused }})
		if !errors.Is(err, refused) {
			t.Fatalf("delete refused by the hook: got %v, want the hook's error", err)
		}
		if n := r.f.Status().Pending; n != 0 {
			t.Errorf("pending entries after the refused delete: %d, want 0", n)
		}
		r.heal()
		r.drain()
		if got := r.read("k"); got != "v1" {
			t.Errorf("read after heal and drain: got %q, want v1", got)
		}
	})
}

// Found by TestChaos (seed 47, mirror, AckBoth): a delete applied on the
// primary lost its answer while the secondary was down; the bucket withdrew
// its tombstones as if nothing had happened. The primary no longer had the
// object and the secondary did, with nothing recorded: reads flickered
// between the two and the sides never converged.
func TestAmbiguousDeleteWithBothSidesDownStillConverges(t *testing.T) {
	for _, ack := range []failoverblob.AckPolicy{failoverblob.AckEither, failoverblob.AckBoth} {
		t.Run(ack.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, Ack: ack})
				if err := r.write("k", "v"); err != nil {
					t.Fatal(err)
				}
				r.faults[primary].Set(failovertest.OpDelete, failovertest.Fault{Applied: true, Times: 1})
				r.faults[secondary].Outage(nil)
				if err := r.b.Delete(r.ctx, "k"); !errors.Is(err, failoverblob.ErrUnavailable) {
					t.Fatalf("delete: got %v, want ErrUnavailable", err)
				}
				r.heal()
				r.drain()
				p, s := r.content(primary, "k"), r.content(secondary, "k")
				if p != s {
					t.Errorf("sides apart after reconcile: primary %q, secondary %q", p, s)
				}
				if got := r.read("k"); (got == "<not found>") != (p == "<absent>") {
					t.Errorf("read %q, primary holds %q", got, p)
				}
			})
		})
	}
}

// Found by TestChaos (seeds 25 and 359, mirror): a delete that found
// nothing and answered NotFound was committed as the key's newest change;
// a write in flight then gave way to it and was acknowledged without being
// stored, though the delete's own answer said it had come first.
func TestNotFoundDeleteDoesNotOverruleAWriteInFlight(t *testing.T) {
	for _, ack := range []failoverblob.AckPolicy{failoverblob.AckEither, failoverblob.AckBoth} {
		t.Run(ack.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, Ack: ack})
				// A pending tombstone for the secondary, so that the next
				// delete is not answered by the primary's miss alone.
				if err := r.write("k", "v0"); err != nil {
					t.Fatal(err)
				}
				r.faults[secondary].Outage(nil)
				_ = r.b.Delete(r.ctx, "k")
				r.heal()
				w, err := r.b.NewWriter(r.ctx, "k", &blob.WriterOptions{ContentType: "text/plain"})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.WriteString(w, "in flight"); err != nil {
					t.Fatal(err)
				}
				r.faults[secondary].Outage(nil)
				if err := r.b.Delete(r.ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
					t.Fatalf("delete of a deleted key: got %v, want NotFound", err)
				}
				r.faults[secondary].Heal()
				if err := w.Close(); err != nil {
					return // not acknowledged: nothing to check
				}
				if got := r.read("k"); got != "in flight" {
					t.Errorf("read after the acknowledged write: got %q, want %q", got, "in flight")
				}
			})
		})
	}
}
