package failoverblob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// Regression tests for bugs the chaos test (TestChaos) found, each named
// after what it caught. Each states the interleaving the chaos test
// produced, made deterministic.

// heal heals both sides and waits past the rig's breaker timeout.
func (r *rig) heal() {
	r.faults[primary].Heal()
	r.faults[secondary].Heal()
	time.Sleep(2 * time.Minute)
}

// attrsValue returns the "v" metadata the failover bucket serves for key,
// "<not found>", or "<unavailable>" for any other error.
func (r *rig) attrsValue(key string) string {
	a, err := r.b.Attributes(r.ctx, key)
	switch {
	case gcerrors.Code(err) == gcerrors.NotFound:
		return "<not found>"
	case err != nil:
		return "<unavailable>"
	}
	return a.Metadata["v"]
}

// listedSize returns the size a listing shows for key, or -1 if it is not
// listed.
func (r *rig) listedSize(key string) int64 {
	objs, _, err := r.b.ListPage(r.ctx, blob.FirstPageToken, 100, nil)
	if err != nil {
		r.t.Fatalf("listing: %v", err)
	}
	for _, o := range objs {
		if o.Key == key {
			return o.Size
		}
	}
	return -1
}

// Found by TestChaos: two writes to one key, the first committing to a hung
// primary while holding the key's lock. The second waited for the lock on a
// sync.Mutex, which testing/synctest does not count as durably blocked, so
// virtual time stopped and the first write's idle timeout never came: the
// test froze. A write waiting for its key's lock must let virtual time move.
func TestKeyLockWaitLetsVirtualTimeMove(t *testing.T) {
	// Without the fix the bubble freezes for good; fail loudly instead of
	// hanging until the test binary's timeout.
	guard := time.AfterFunc(time.Minute, func() {
		panic("TestKeyLockWaitLetsVirtualTimeMove: virtual time froze while a write waited for its key's lock")
	})
	defer guard.Stop()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{IdleTimeout: 30 * time.Second})
		first := "first value"
		// The first write's commit on the primary hangs until the idle
		// timeout, with the key locked.
		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: int64(len(first)), Hang: true, Times: 1})
		firstErr := make(chan error)
		go func() { firstErr <- r.write("k", first) }()
		synctest.Wait()

		start := time.Now()
		if err := r.write("k", "second value"); err != nil {
			t.Fatalf("second write: %v", err)
		}
		if waited := time.Since(start); waited < 30*time.Second {
			t.Errorf("second write returned after %v, before the first write's commit timed out (30s)", waited)
		}
		if err := <-firstErr; err != nil {
			t.Fatalf("first write (redirected after its commit hung): %v", err)
		}
		time.Sleep(2 * time.Minute) // past the primary's breaker timeout
		if got := r.read("k"); got != "second value" {
			t.Errorf("read: got %q, want %q", got, "second value")
		}
	})
}

// Found by TestChaos (seed 7, mirror): a slow write, stamped when it
// opened, committed after a delete stamped later had been recorded as a
// tombstone for the primary. The write was acknowledged, but reads already
// said "deleted", the reconciler then deleted the write's object from the
// primary, and the secondary kept it: the sides diverged for good. A write
// overtaken by a newer change now gives way to it and stores nothing.
func TestWriteOpenedBeforeATombstoneDoesNotCommitUnderIt(t *testing.T) {
	for _, opts := range []failoverblob.Options{{Mode: failoverblob.Mirror}, {}} {
		t.Run(opts.Mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, opts)
				if err := r.write("k", "v0"); err != nil {
					t.Fatal(err)
				}
				w, err := r.b.NewWriter(r.ctx, "k", &blob.WriterOptions{ContentType: "text/plain"})
				if err != nil {
					t.Fatal(err)
				}
				r.faults[primary].Outage(nil)
				if err := r.b.Delete(r.ctx, "k"); err != nil {
					t.Fatalf("delete while the primary is down: %v", err)
				}
				r.heal()
				if _, err := io.WriteString(w, "slow"); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatalf("the slow write: %v", err)
				}
				got := r.read("k")
				r.drain()
				if after := r.read("k"); after != got {
					t.Errorf("read changed across reconcile with no write: %q, then %q", got, after)
				}
				if p, s := r.content(primary, "k"), r.content(secondary, "k"); p != got && !(got == "<not found>" && p == "<absent>") {
					t.Errorf("primary after reconcile: %q; the bucket read %q", p, got)
				} else if opts.Mode == failoverblob.Mirror && s != p {
					t.Errorf("sides apart after reconcile: primary %q, secondary %q", p, s)
				}
			})
		})
	}
}

// Found by TestChaos (seed 37, mirror): the same race on a key with no
// pending work. A slow write committed its older version on the primary
// after a newer write had committed on both sides, and failed on the
// secondary; the repair found the secondary "newer" and left it, so the
// primary served one value and the secondary held another, for good.
func TestSlowWriteDoesNotCommitUnderANewerOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		slow, err := r.b.NewWriter(r.ctx, "k", &blob.WriterOptions{ContentType: "text/plain"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(slow, "older"); err != nil {
			t.Fatal(err)
		}
		if err := r.write("k", "newer"); err != nil {
			t.Fatal(err)
		}
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
		if err := slow.Close(); err != nil {
			t.Fatalf("the slow write: %v", err)
		}
		got := r.read("k")
		r.heal()
		r.drain()
		p, s := r.content(primary, "k"), r.content(secondary, "k")
		if p != s || p != got {
			t.Errorf("after reconcile: primary %q, secondary %q; the bucket read %q", p, s, got)
		}
	})
}

// Found by TestChaos (seed 360): a write overtaken by an IfNotExist write
// reported success, as if it had come just before it; but the IfNotExist
// write found the key absent, so nothing came just before it.
func TestWriteOvertakenByAnIfNotExistWriteFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		slow, err := r.b.NewWriter(r.ctx, "k", &blob.WriterOptions{ContentType: "text/plain"})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.b.WriteAll(r.ctx, "k", []byte("first"), &blob.WriterOptions{IfNotExist: true}); err != nil {
			t.Fatalf("IfNotExist write of an absent key: %v", err)
		}
		_, _ = io.WriteString(slow, "overtaken")
		err = slow.Close()
		if got := r.read("k"); err == nil && got != "overtaken" {
			t.Errorf("overtaken write reported success, but the key reads %q", got)
		}
	})
}

// Found by TestChaos (seed 24): a listing showed a key with pending work
// with the size of the stale object on the listed side, not of the newest
// version the bucket serves.
func TestListingShowsTheSizeOfTheNewestVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", "the old value, long"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Outage(nil)
		if err := r.write("k", "new"); err != nil {
			t.Fatal(err)
		}
		r.heal()
		if got := r.listedSize("k"); got != 3 {
			t.Errorf("listed size: got %d, want 3 (the redirected write's)", got)
		}
	})
}

// Found by TestChaos (seed 24): an Upload from a seekable source while the
// primary was down was replayed to the secondary at once, and the copy
// loop that followed, finding nothing left to read, recorded the size as
// 0: in the journal, and in listings.
func TestRedirectedSeekableUploadRecordsItsSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		_ = r.write("trip", "x")
		data := bytes.Repeat([]byte("x"), 1000)
		if err := r.b.Upload(r.ctx, "k", bytes.NewReader(data), &blob.WriterOptions{ContentType: "text/plain"}); err != nil {
			t.Fatal(err)
		}
		entries, err := r.journal.List(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Key == "k" && e.Size != 1000 {
				t.Errorf("journal entry size: got %d, want 1000", e.Size)
			}
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		if got := r.listedSize("k"); got != 1000 {
			t.Errorf("listed size: got %d, want 1000", got)
		}
	})
}

// steppingJournal runs step once, right after the first List that follows
// arm: what happens between a reconcile pass reading the journal and
// repairing a key.
type steppingJournal struct {
	*journal.Memory
	step func()
}

func (j *steppingJournal) List(ctx context.Context) ([]journal.Entry, error) {
	entries, err := j.Memory.List(ctx)
	if step := j.step; step != nil {
		j.step = nil
		step()
	}
	return entries, err
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

// Found by TestChaos (seeds 12 and 24): after a delete recorded as a
// tombstone, the primary still held the deleted object, and an IfNotExist
// write was refused as if the key existed.
func TestIfNotExistWriteOfADeletedKeySucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", "v0"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Outage(nil)
		if err := r.b.Delete(r.ctx, "k"); err != nil {
			t.Fatal(err)
		}
		r.heal() // the primary's breaker is half-open: the write is its probe
		if err := r.b.WriteAll(r.ctx, "k", []byte("v1"), &blob.WriterOptions{IfNotExist: true}); err != nil {
			t.Fatalf("IfNotExist write of a deleted key: %v", err)
		}
		if got := r.read("k"); got != "v1" {
			t.Errorf("read: got %q, want v1", got)
		}
	})
}

// Found by TestChaos (seeds 56 and 60): a Copy through the bucket read the
// source's attributes, then opened it; a write to the source committed in
// between, and the copy paired the old version's metadata with the new
// version's bytes.
func TestCopyDoesNotPairOneVersionsMetadataWithAnothersBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		put := func(v string) error {
			return r.b.WriteAll(r.ctx, "src", []byte(v), &blob.WriterOptions{Metadata: map[string]string{"v": v}})
		}
		if err := put("old"); err != nil {
			t.Fatal(err)
		}
		// The copy's read of the source waits 5s after its attributes.
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{Latency: 5 * time.Second, Times: 1})
		copied := make(chan error)
		go func() { copied <- r.b.Copy(r.ctx, "dst", "src", nil) }()
		synctest.Wait()
		if err := put("new, and longer"); err != nil {
			t.Fatal(err)
		}
		if err := <-copied; err != nil {
			t.Fatal(err)
		}
		if bytes, md := r.read("dst"), r.attrsValue("dst"); bytes != md {
			t.Errorf("copy holds the bytes %q with the metadata of %q", bytes, md)
		}
	})
}

// Found by TestChaos (seed 81): a Copy handed the bucket's own reader of the
// source to Upload, which replays a seekable source by seeking it back.
// When the destination's primary failed part-way, the replay read the
// source again, which had changed meanwhile: the copy committed another
// version's bytes under the first version's metadata.
func TestCopyReplayCopiesTheBytesItFirstRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The default breaker, which one failed write does not trip.
		r := newRig(t, failoverblob.Options{Breaker: &circuit.Settings{}})
		put := func(v string) error {
			return r.b.WriteAll(r.ctx, "src", []byte(v), &blob.WriterOptions{Metadata: map[string]string{"v": v}})
		}
		if err := put("old"); err != nil {
			t.Fatal(err)
		}
		// A pending destination takes the copy through the bucket; its
		// write to the primary then hangs part-way until the idle timeout.
		r.faults[primary].Outage(nil)
		if err := r.write("dst", "x"); err != nil {
			t.Fatal(err)
		}
		r.heal()
		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 1, Hang: true, Times: 1})
		copied := make(chan error)
		go func() { copied <- r.b.Copy(r.ctx, "dst", "src", nil) }()
		synctest.Wait()
		if err := put("new, and longer"); err != nil {
			t.Fatal(err)
		}
		if err := <-copied; err != nil {
			t.Fatal(err)
		}
		if bytes, md := r.read("dst"), r.attrsValue("dst"); bytes != md {
			t.Errorf("copy holds the bytes %q with the metadata of %q", bytes, md)
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

// Found by TestChaos (seeds 265 and 537): a write failed, but one side had
// applied it; a read showed it, then a listing served by the other side,
// with the primary down, did not.
func TestListingDoesNotHideAFailedWriteAReadHasSeen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The default breaker, which one failed write does not trip.
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, Breaker: &circuit.Settings{}})
		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
		r.faults[secondary].Outage(nil)
		if err := r.write("k", "v"); err == nil {
			t.Fatal("write with both sides failing: got nil error")
		}
		r.faults[secondary].Heal()
		if got := r.read("k"); got != "v" {
			t.Fatalf("read of the failed write the primary applied: got %q, want v", got)
		}
		r.faults[primary].Outage(nil)
		objs, _, err := r.b.ListPage(r.ctx, blob.FirstPageToken, 100, nil)
		if err != nil {
			return // unavailable is an honest answer
		}
		for _, o := range objs {
			if o.Key == "k" {
				return
			}
		}
		t.Errorf("listing with the primary down omits %q, which a read has shown", "k")
	})
}

// Found by TestChaos (seed 127, mirror): a delete applied on the primary
// hung on the secondary. Reads of the key, which has pending work held by
// the primary, said NotFound, but a listing merged in what the index still
// said, that the key was there.
func TestListingDuringAMirrorDeleteAgreesWithReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		r.faults[secondary].Outage(nil)
		if err := r.write("k", "v"); err != nil { // pending: the secondary misses it
			t.Fatal(err)
		}
		r.heal()
		r.faults[secondary].Set(failovertest.OpDelete, failovertest.Fault{Hang: true, Times: 1})
		deleted := make(chan error)
		go func() { deleted <- r.b.Delete(r.ctx, "k") }()
		synctest.Wait()
		if got := r.read("k"); got != "<not found>" {
			t.Fatalf("read during the delete, applied on the primary: got %q, want <not found>", got)
		}
		if got := r.listedSize("k"); got != -1 {
			t.Errorf("listing during the delete shows %q (%d bytes); reads say it is not found", "k", got)
		}
		<-deleted
	})
}
