package failoverblob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
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

// Writes: how a key's writes are ordered against each other and against
// deletes, IfNotExist, and writes redirected or replayed to the secondary.

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

// Item 8: a redirected write that the secondary then fails part-way is
// ErrUnavailable, and counts against the secondary's breaker.
func TestRedirectedWriteFailingOnTheSecondaryIsUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 150, Times: 1})
		err := r.streamed("k", string(make([]byte, 400)))
		if !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("write: got %v, want ErrUnavailable", err)
		}
		st := r.f.Status().Secondary
		if st.State != circuit.StateOpen || st.LastError == "" {
			t.Errorf("secondary after its failure: state %s, last error %q; want open with the error (the rig trips on one outage)", st.State, st.LastError)
		}
	})
}

// Mid-stream failure of the primary with a seekable Upload source: the
// source is replayed from where it started, not spooled.
func TestSeekableUploadReplaysSource(t *testing.T) {
	r := newRig(t, failoverblob.Options{SpoolMemory: -1, SpoolDir: "/nonexistent-dir-for-spool"})
	r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 5000})
	src := bytes.NewReader([]byte(big))
	if _, err := src.Seek(10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := r.b.Upload(r.ctx, "k", src, &blob.WriterOptions{ContentType: "text/plain"}); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if got := r.content(secondary, "k"); got != big[10:] {
		t.Errorf("secondary: got %d bytes, want the %d from the source's start", len(got), len(big)-10)
	}
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

// A spool that cannot be written (its directory is gone) costs only the
// replay: the write still goes to a healthy primary. If the primary then
// fails part-way, the write fails, and nothing partial reaches the
// secondary.
func TestUnwritableSpoolDoesNotFailWritesToAHealthyPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{SpoolMemory: -1, SpoolDir: filepath.Join(t.TempDir(), "missing")}
		r := newRig(t, opts)
		big := bytes.Repeat([]byte("x"), 256<<10)
		if err := r.b.WriteAll(r.ctx, "k", big, nil); err != nil {
			t.Fatalf("write to a healthy primary with an unwritable spool: %v", err)
		}
		if got := r.content(primary, "k"); got != string(big) {
			t.Fatalf("primary holds %d bytes, want %d", len(got), len(big))
		}

		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 100 << 10})
		err := r.b.WriteAll(r.ctx, "k2", big, nil)
		if !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("write failing part-way with no spool: got %v, want ErrUnavailable", err)
		}
		if got := r.content(secondary, "k2"); got != "<absent>" {
			t.Errorf("the secondary holds %d bytes of a write that could not be replayed", len(got))
		}
	})
}
