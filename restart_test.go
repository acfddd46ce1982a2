package failoverblob_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
)

// A restarted bucket knows pending keys only from journal entries, which
// are hints: nothing may be served, listed, copied or refused on their
// strength without the versions the sides actually hold.

// restart opens a second failover bucket over the rig's sides and journal,
// as a process restarted with the same durable journal would.
func (r *rig) restart(opts failoverblob.Options) *failoverblob.Failover {
	r.t.Helper()
	opts.Journal = r.journal
	if opts.Breaker == nil {
		opts.Breaker = r.f.Options().Breaker
	}
	f, err := failoverblob.New(r.ctx, r.sides[0], r.sides[1], &opts)
	if err != nil {
		r.t.Fatal(err)
	}
	return f
}

// failCommit makes the next write to side i fail at its commit, after every
// byte of value was sent: nothing is stored.
func (r *rig) failCommit(i int, value string) {
	r.faults[i].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: int64(len(value)), Times: 1})
}

func listed(f *failoverblob.Failover, r *rig, key string) bool {
	objs, _, err := f.Bucket().ListPage(r.ctx, blob.FirstPageToken, 100, nil)
	if err != nil {
		r.t.Fatalf("listing: %v", err)
	}
	for _, o := range objs {
		if o.Key == key {
			return true
		}
	}
	return false
}

// Item 1 of the restart defects: after an acknowledged delete, a write of
// the key failed on both sides, leaving an entry newer than the tombstone.
// The restarted bucket took that entry as the key's state and served,
// listed and copied the deleted v1; the drain then made it permanent.
func TestRestartDoesNotBringBackADeleteBehindAFailedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Outage(nil)
		if err := r.b.Delete(r.ctx, "k"); err != nil {
			t.Fatalf("delete while the primary is down: %v", err)
		}
		r.failCommit(secondary, "v2")
		if err := r.write("k", "v2"); err == nil {
			t.Fatal("write with both sides failing: got nil error")
		}
		r.heal()

		f2 := r.restart(failoverblob.Options{})
		if got := readOf(f2, r, "k"); got != "<not found>" {
			t.Errorf("read after restart: got %q, want <not found>", got)
		}
		if listed(f2, r, "k") {
			t.Error("the deleted key is listed after restart")
		}
		if err := f2.Bucket().Copy(r.ctx, "copy", "k", nil); gcerrors.Code(err) != gcerrors.NotFound {
			t.Errorf("Copy from the deleted key after restart: got %v, want NotFound", err)
		}
		if _, err := f2.Drain(r.ctx); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		if got := readOf(f2, r, "k"); got != "<not found>" {
			t.Errorf("read after the drain: got %q, want <not found>", got)
		}
		if got := r.content(primary, "k"); got != "<absent>" {
			t.Errorf("primary after the drain holds %q, want <absent>", got)
		}
	})
}

// Item 1, second form: the newest version is on the secondary, which is
// down after the restart. Serving the primary's v1 would lose the
// acknowledged, read-back v2.
func TestRestartDoesNotServeAnOlderVersionWhenTheNewestSideIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v2"); err != nil {
			t.Fatal(err)
		}
		if got := r.read("k"); got != "v2" {
			t.Fatalf("read back: got %q, want v2", got)
		}
		r.heal()
		f2 := r.restart(failoverblob.Options{})
		r.faults[secondary].Outage(nil)
		if got := readOf(f2, r, "k"); got != "<unavailable>" {
			t.Errorf("read after restart, secondary down: got %q, want <unavailable>", got)
		}
		if _, err := f2.Bucket().Attributes(r.ctx, "k"); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("Attributes after restart, secondary down: got %v, want ErrUnavailable", err)
		}
		if err := f2.Bucket().Copy(r.ctx, "copy", "k", nil); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("Copy after restart, secondary down: got %v, want ErrUnavailable", err)
		}
	})
}

// Item 1, third form: v1 was redirected, v2 then written to the recovered
// primary (and journaled, the key being pending). After a restart with the
// primary down, the secondary's v1 is not the newest version.
func TestRestartDoesNotServeARedirectedCopyOlderThanThePrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.heal()
		if err := r.write("k", "v2"); err != nil {
			t.Fatal(err)
		}
		f2 := r.restart(failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if got := readOf(f2, r, "k"); got != "<unavailable>" {
			t.Errorf("read after restart, primary down: got %q, want <unavailable>", got)
		}
	})
}

// Item 1, Mirror form: v2 reached only the primary; after a restart with
// the primary down, the secondary's v1 is not the newest version.
func TestRestartInMirrorModeDoesNotServeTheSideThatMissedAWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{Mode: failoverblob.Mirror}
		r := newRig(t, opts)
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.faults[secondary].Outage(nil)
		if err := r.write("k", "v2"); err != nil {
			t.Fatal(err)
		}
		r.heal()
		f2 := r.restart(opts)
		r.faults[primary].Outage(nil)
		if got := readOf(f2, r, "k"); got != "<unavailable>" {
			t.Errorf("read after restart, primary down: got %q, want <unavailable>", got)
		}
	})
}

// Item 1, fourth form: a write that failed on both sides left only its
// entry. After a restart the key is neither listed nor taken to exist.
func TestRestartDoesNotListOrRefuseAWriteThatFailedEverywhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		r.failCommit(secondary, "v1")
		if err := r.write("k", "v1"); err == nil {
			t.Fatal("write with both sides failing: got nil error")
		}
		r.heal()
		f2 := r.restart(failoverblob.Options{})
		if listed(f2, r, "k") {
			t.Error("a write that failed everywhere is listed after restart")
		}
		if got := readOf(f2, r, "k"); got != "<not found>" {
			t.Errorf("read after restart: got %q, want <not found>", got)
		}
		err := f2.Bucket().WriteAll(r.ctx, "k", []byte("v2"), &blob.WriterOptions{IfNotExist: true})
		if err != nil {
			t.Errorf("IfNotExist write after restart: %v, want it to succeed", err)
		}
	})
}

// After a restart, a key whose journal names a side that is down is
// unavailable, not NotFound on the other side's miss.
func TestRestartedBucketDoesNotTakeAMissForAbsence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		f2, err := failoverblob.New(r.ctx, r.sides[0], r.sides[1], &failoverblob.Options{Journal: r.journal})
		if err != nil {
			t.Fatal(err)
		}
		r.faults[secondary].Outage(nil)
		_, err = f2.Bucket().ReadAll(r.ctx, "k")
		if !errors.Is(err, failoverblob.ErrUnavailable) || gcerrors.Code(err) == gcerrors.NotFound {
			t.Errorf("read after restart with the holder down: got %v (code %v), want ErrUnavailable, not NotFound", err, gcerrors.Code(err))
		}
	})
}

// After a restart the index knows pending keys only from the journal. A
// write that superseded a redirected copy and committed on the primary was
// journaled as missing from the primary (every change to a pending key is
// recorded), so the journal alone points reads at the secondary's older
// copy: the restarted bucket must find the side holding the newest version.
func TestRestartedBucketReadsTheNewestVersionNotTheJournalsGuess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1 redirected"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute) // the primary's breaker half-opens
		if err := r.write("k", "v2 on the primary"); err != nil {
			t.Fatal(err)
		}
		if got := r.content(primary, "k"); got != "v2 on the primary" {
			t.Fatalf("primary holds %q", got)
		}
		f2, err := failoverblob.New(r.ctx, r.sides[0], r.sides[1], &failoverblob.Options{Journal: r.journal})
		if err != nil {
			t.Fatal(err)
		}
		got, err := f2.Bucket().ReadAll(r.ctx, "k")
		if err != nil || string(got) != "v2 on the primary" {
			t.Errorf("read after restart: got %q, %v; want the newest version, %q", got, err, "v2 on the primary")
		}
		a, err := f2.Bucket().Attributes(r.ctx, "k")
		if err != nil {
			t.Fatalf("attributes after restart: %v", err)
		}
		if a.Size != int64(len("v2 on the primary")) {
			t.Errorf("attributes after restart: size %d; want the newest version's, %d", a.Size, len("v2 on the primary"))
		}
	})
}
