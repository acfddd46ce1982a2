package failoverblob_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
)

// The verifier finds, and repairs, what the sides hold differently with no
// journal entry to say so: in Mirror mode, a write whose entry for the side
// it missed was never recorded (the crash window between the primary's
// commit and that entry); in Redirect mode, a temporary copy no entry
// accounts for, and a stale leftover.
func TestVerifyRepairsWhatNoEntryAccountsFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		for _, k := range []string{"a", "b", "c"} {
			if err := r.write(k, k+"1"); err != nil {
				t.Fatal(err)
			}
		}
		// b's v2 reaches only the primary and its entry is lost; c is on
		// the secondary only.
		if err := r.write("b", "b2"); err != nil {
			t.Fatal(err)
		}
		if err := r.raw[secondary].WriteAll(r.ctx, "b", []byte("b1"), &blob.WriterOptions{Metadata: attrsOf(t, r, secondary, "a")}); err != nil {
			t.Fatal(err)
		}
		if err := r.raw[primary].Delete(r.ctx, "c"); err != nil {
			t.Fatal(err)
		}
		rep, err := r.f.Verify(r.ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Scanned != 3 || rep.Differing != 2 || rep.Repaired != 0 {
			t.Errorf("report-only pass: %+v, want 3 scanned, 2 differing, none repaired", rep)
		}
		rep, err = r.f.Verify(r.ctx, &failoverblob.VerifyOptions{Repair: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Differing != 2 || rep.Repaired != 2 {
			t.Errorf("repairing pass: %+v, want 2 differing, 2 repaired", rep)
		}
		for k, want := range map[string]string{"a": "a1", "b": "b2", "c": "c1"} {
			if p, s := r.content(primary, k), r.content(secondary, k); p != want || s != want {
				t.Errorf("%s after Verify: primary %q, secondary %q; want %q on both", k, p, s, want)
			}
		}
		if rep, err := r.f.Verify(r.ctx, nil); err != nil || rep.Differing != 0 {
			t.Errorf("pass after the repair: %+v, %v; want nothing differing", rep, err)
		}
	})
}

// attrsOf returns the metadata side i stores for key, version included.
func attrsOf(t *testing.T, r *rig, i int, key string) map[string]string {
	t.Helper()
	a, err := r.raw[i].Attributes(r.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	return a.Metadata
}

// Keys with pending work are the reconciler's; the verifier leaves them,
// and a scan can be resumed from its cursor.
func TestVerifySkipsPendingKeysAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		for _, k := range []string{"a", "b", "c", "d"} {
			if err := r.write(k, "v"); err != nil {
				t.Fatal(err)
			}
		}
		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
		if err := r.write("b", "redirected"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Minute) // past the primary's breaker timeout
		// A leftover: the secondary holds a copy of d that nothing accounts for.
		if err := r.raw[secondary].WriteAll(r.ctx, "d", []byte("old"), nil); err != nil {
			t.Fatal(err)
		}
		rep, err := r.f.Verify(r.ctx, &failoverblob.VerifyOptions{Repair: true, MaxKeys: 2})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Scanned != 2 || rep.Pending != 1 || rep.Cursor != "b" {
			t.Errorf("first part: %+v, want 2 scanned (a, b), b pending, cursor b", rep)
		}
		rep, err = r.f.Verify(r.ctx, &failoverblob.VerifyOptions{Repair: true, After: rep.Cursor})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Scanned != 2 || rep.Repaired != 1 || rep.Cursor != "" {
			t.Errorf("second part: %+v, want 2 scanned (c, d), d repaired, done", rep)
		}
		if got := r.content(secondary, "d"); got != "<absent>" {
			t.Errorf("d's leftover on the secondary: %q, want removed", got)
		}
		if got := r.content(secondary, "b"); got != "redirected" {
			t.Errorf("b's pending copy on the secondary: %q, want left to the reconciler", got)
		}
	})
}

// With Repair, a difference is repaired only if it lasts Settle: one that
// ends meanwhile (another instance's change in flight between the sides)
// is left alone and not counted; one that changes but still differs is
// counted, unrepaired, for a later Verify; and a Verify stopped while it
// waits resumes before the keys it held.
func TestVerifyRepairsOnlyADifferenceThatLasts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		for _, k := range []string{"a", "b", "c", "d"} {
			if err := r.write(k, k+"1"); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"b", "c", "d"} {
			if err := r.raw[secondary].Delete(r.ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(r.ctx)
		stopped := make(chan failoverblob.VerifyReport, 1)
		go func() {
			rep, _ := r.f.Verify(ctx, &failoverblob.VerifyOptions{Repair: true})
			stopped <- rep
		}()
		synctest.Wait()
		cancel()
		if rep := <-stopped; rep.Repaired != 0 || rep.Cursor != "a" {
			t.Errorf("Verify stopped while it waited: %+v, want nothing repaired, cursor a (before b, the first held)", rep)
		}

		settle := 30 * time.Second
		done := make(chan failoverblob.VerifyReport, 1)
		go func() {
			rep, err := r.f.Verify(r.ctx, &failoverblob.VerifyOptions{Repair: true, Settle: settle})
			if err != nil {
				t.Error(err)
			}
			done <- rep
		}()
		synctest.Wait()
		time.Sleep(settle / 2)
		// Meanwhile b's difference ends, and c's changes.
		if err := r.raw[primary].Delete(r.ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if err := r.raw[secondary].WriteAll(r.ctx, "c", []byte("other"), nil); err != nil {
			t.Fatal(err)
		}
		rep := <-done
		if rep.Scanned != 4 || rep.Differing != 2 || rep.Repaired != 1 {
			t.Errorf("report: %+v, want 4 scanned, 2 differing (c, d), 1 repaired (d)", rep)
		}
		for k, want := range map[string][2]string{"b": {"<absent>", "<absent>"}, "c": {"c1", "other"}, "d": {"d1", "d1"}} {
			if p, s := r.content(primary, k), r.content(secondary, k); p != want[0] || s != want[1] {
				t.Errorf("%s after Verify: primary %q, secondary %q; want %q, %q", k, p, s, want[0], want[1])
			}
		}
	})
}
