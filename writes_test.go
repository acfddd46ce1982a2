package failoverblob_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		require.NoError(t, r.write("k", "second value"), "second write")
		assert.GreaterOrEqual(t, time.Since(start), 30*time.Second, "the second write waits for the first write's commit to time out")
		require.NoError(t, <-firstErr, "first write (redirected after its commit hung)")
		time.Sleep(2 * time.Minute) // past the primary's breaker timeout
		assert.Equal(t, "second value", r.read("k"), "read")
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
				require.NoError(t, r.write("k", "v0"))
				w, err := r.b.NewWriter(r.ctx, "k", &blob.WriterOptions{ContentType: "text/plain"})
				require.NoError(t, err)
				r.faults[primary].Outage(nil)
				require.NoError(t, r.b.Delete(r.ctx, "k"), "delete while the primary is down")
				r.heal()
				_, err = io.WriteString(w, "slow")
				require.NoError(t, err)
				require.NoError(t, w.Close(), "the slow write")
				got := r.read("k")
				r.drain()
				assert.Equal(t, got, r.read("k"), "read across reconcile with no write")
				p, s := r.content(primary, "k"), r.content(secondary, "k")
				if got == "<not found>" {
					got = "<absent>"
				}
				assert.Equal(t, got, p, "primary after reconcile, against what the bucket read")
				if opts.Mode == failoverblob.Mirror && p == got {
					assert.Equal(t, p, s, "secondary after reconcile, against the primary")
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
		require.NoError(t, err)
		_, err = io.WriteString(slow, "older")
		require.NoError(t, err)
		require.NoError(t, r.write("k", "newer"))
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
		require.NoError(t, slow.Close(), "the slow write")
		got := r.read("k")
		r.heal()
		r.drain()
		assert.Equal(t, got, r.content(primary, "k"), "primary after reconcile, against what the bucket read")
		assert.Equal(t, got, r.content(secondary, "k"), "secondary after reconcile, against what the bucket read")
	})
}

// Found by TestChaos (seed 360): a write overtaken by an IfNotExist write
// reported success, as if it had come just before it; but the IfNotExist
// write found the key absent, so nothing came just before it.
func TestWriteOvertakenByAnIfNotExistWriteFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		slow, err := r.b.NewWriter(r.ctx, "k", &blob.WriterOptions{ContentType: "text/plain"})
		require.NoError(t, err)
		require.NoError(t, r.b.WriteAll(r.ctx, "k", []byte("first"), &blob.WriterOptions{IfNotExist: true}), "IfNotExist write of an absent key")
		_, _ = io.WriteString(slow, "overtaken")
		err = slow.Close()
		if err == nil {
			assert.Equal(t, "overtaken", r.read("k"), "the overtaken write reported success")
		}
	})
}

// IfNotExist sees a key whose only copy is the redirected one.
func TestIfNotExistSeesRedirectedKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		require.NoError(t, r.write("k", "v1"))
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		err := r.b.WriteAll(r.ctx, "k", []byte("v2"), &blob.WriterOptions{IfNotExist: true})
		assert.Equal(t, gcerrors.FailedPrecondition, gcerrors.Code(err), "IfNotExist over a redirected key: %v", err)
		assert.Equal(t, "<absent>", r.content(primary, "k"), "primary")
		r.drain()
		assert.Equal(t, "v1", r.read("k"), "read after reconcile")
	})
}

// Found by TestChaos (seeds 12 and 24): after a delete recorded as a
// tombstone, the primary still held the deleted object, and an IfNotExist
// write was refused as if the key existed.
func TestIfNotExistWriteOfADeletedKeySucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		require.NoError(t, r.write("k", "v0"))
		r.faults[primary].Outage(nil)
		require.NoError(t, r.b.Delete(r.ctx, "k"))
		r.heal() // the primary's breaker is half-open: the write is its probe
		require.NoError(t, r.b.WriteAll(r.ctx, "k", []byte("v1"), &blob.WriterOptions{IfNotExist: true}), "IfNotExist write of a deleted key")
		assert.Equal(t, "v1", r.read("k"), "read")
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
		assert.ErrorIs(t, err, failoverblob.ErrUnavailable, "write")
		st := r.f.Status().Secondary
		assert.Equal(t, circuit.StateOpen, st.State, "the secondary's breaker after its failure (the rig trips on one outage)")
		assert.NotEmpty(t, st.LastError, "the secondary's last error")
	})
}

// Mid-stream failure of the primary with a seekable Upload source: the
// source is replayed from where it started, not spooled.
func TestSeekableUploadReplaysSource(t *testing.T) {
	r := newRig(t, failoverblob.Options{SpoolMemory: -1, SpoolDir: "/nonexistent-dir-for-spool"})
	r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 5000})
	src := bytes.NewReader([]byte(big))
	_, err := src.Seek(10, io.SeekStart)
	require.NoError(t, err)
	require.NoError(t, r.b.Upload(r.ctx, "k", src, &blob.WriterOptions{ContentType: "text/plain"}), "Upload")
	got := r.content(secondary, "k")
	assert.True(t, got == big[10:], "secondary: got %d bytes, want the %d from the source's start", len(got), len(big)-10)
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
		require.NoError(t, r.b.Upload(r.ctx, "k", bytes.NewReader(data), &blob.WriterOptions{ContentType: "text/plain"}))
		entries, err := r.journal.List(r.ctx)
		require.NoError(t, err)
		for _, e := range entries {
			if e.Key == "k" {
				assert.Equal(t, int64(1000), e.Size, "journal entry size")
			}
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		assert.Equal(t, int64(1000), r.listedSize("k"), "listed size")
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
		require.NoError(t, r.b.WriteAll(r.ctx, "k", big, nil), "write to a healthy primary with an unwritable spool")
		got := r.content(primary, "k")
		require.True(t, got == string(big), "primary holds %d bytes, want %d", len(got), len(big))

		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 100 << 10})
		err := r.b.WriteAll(r.ctx, "k2", big, nil)
		require.ErrorIs(t, err, failoverblob.ErrUnavailable, "write failing part-way with no spool")
		got = r.content(secondary, "k2")
		assert.True(t, got == "<absent>", "the secondary holds %d bytes of a write that could not be replayed", len(got))

	})
}
