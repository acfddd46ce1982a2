package failoverblob_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
)

// landing is two instances over the same memblob sides and the default
// journal: w, whose commits on the secondary wait at a gate while it is
// shut (journal entries pass), and whose primary can be taken down for it alone, and r, a
// reconciler that sees both sides up.
type landing struct {
	ctx  context.Context
	raw  [2]*blob.Bucket
	w, r *failoverblob.Failover
	down *failovertest.Injector // w's primary
	shut atomic.Bool
	// gate is what a commit on w's secondary waits for while the gate is
	// shut; the commit fails with the error it receives.
	gate chan error
}

func newLanding(t *testing.T, mode failoverblob.Mode) *landing {
	t.Helper()
	l := &landing{ctx: context.Background(), raw: [2]*blob.Bucket{memblob.OpenBucket(nil), memblob.OpenBucket(nil)}, gate: make(chan error, 1)}
	t.Cleanup(func() {
		_ = l.raw[0].Close()
		_ = l.raw[1].Close()
	})
	open := func(sides [2]*blob.Bucket) *failoverblob.Failover {
		f, err := failoverblob.New(l.ctx, sides[0], sides[1], &failoverblob.Options{Mode: mode, Breaker: neverTrips(), ProbeInterval: -1})
		require.NoError(t, err)
		t.Cleanup(func() { _ = f.Close() })
		return f
	}
	var sides [2]*blob.Bucket
	sides[0], l.down = failovertest.Wrap(l.raw[0], nil)
	d, _ := failovertest.NewDriver(l.raw[1], nil)
	sides[1] = blob.NewBucket(&commitGate{Bucket: d, commit: func(key string) error {
		if !l.shut.Load() || strings.HasPrefix(key, failoverblob.ReservedPrefix) {
			return nil
		}
		return <-l.gate
	}})
	l.w = open(sides)
	rp, _ := failovertest.Wrap(l.raw[0], nil)
	rs, _ := failovertest.Wrap(l.raw[1], nil)
	l.r = open([2]*blob.Bucket{rp, rs})
	return l
}

func (l *landing) content(t *testing.T, i int, key string) string {
	t.Helper()
	b, err := l.raw[i].ReadAll(l.ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return "<absent>"
	}
	require.NoError(t, err)
	return string(b)
}

// writeWaiting writes key = value through w with its primary down, and
// returns once the write's entry for the primary is recorded and its
// commit on the secondary waits at the gate.
func (l *landing) writeWaiting(key, value string) <-chan error {
	l.down.Outage(nil)
	l.shut.Store(true)
	written := make(chan error, 1)
	go func() { written <- l.w.Bucket().WriteAll(l.ctx, key, []byte(value), nil) }()
	synctest.Wait()
	return written
}

// A write records its entry for the side it misses before or while it
// commits on the other, so another instance's pass may find the entry
// while no side holds the write yet. Taking it then for a write that
// failed acknowledged the entry; the write, landing a moment later and
// acknowledged, had none, and the primary kept the older version for
// good: reads served it, and no pass repaired it (the several-writer
// Mirror configuration's seed 1572). Such an entry is now left while
// its write may still be committing, and goes once it cannot be.
func TestRepairLeavesTheEntryOfAWriteStillCommitting(t *testing.T) {
	for _, mode := range []failoverblob.Mode{failoverblob.Redirect, failoverblob.Mirror} {
		t.Run(mode.String()+"/the write lands", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLanding(t, mode)
				require.NoError(t, l.w.Bucket().WriteAll(l.ctx, "k", []byte("v1"), nil))
				time.Sleep(time.Second)
				written := l.writeWaiting("k", "v2")

				rep, err := l.r.Drain(l.ctx)
				require.NoError(t, err)
				assert.Equal(t, 1, rep.Remaining, "entries left by the pass while the write commits")
				l.gate <- nil
				require.NoError(t, <-written, "the write")
				require.Equal(t, "v2", l.content(t, 1, "k"), "the secondary after the write")

				rep, err = l.r.Drain(l.ctx)
				require.NoError(t, err)
				assert.Zero(t, rep.Remaining, "entries left by the pass after the write")
				assert.Equal(t, "v2", l.content(t, 0, "k"), "the primary after the pass")
				assert.Equal(t, "v2", string(mustRead(t, l.r.Bucket(), "k")), "a read by the reconciler")
			})
		})
		t.Run(mode.String()+"/the write fails", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLanding(t, mode)
				require.NoError(t, l.w.Bucket().WriteAll(l.ctx, "k", []byte("v1"), nil))
				time.Sleep(time.Second)
				written := l.writeWaiting("k", "v2")
				l.gate <- errors.New("the commit failed")
				require.Error(t, <-written, "the write")

				rep, err := l.r.Drain(l.ctx)
				require.NoError(t, err)
				assert.Equal(t, 1, rep.Remaining, "entries left by a pass soon after the write")
				time.Sleep(2 * time.Minute) // past the longest a write commits, by the default timeouts
				rep, err = l.r.Drain(l.ctx)
				require.NoError(t, err)
				assert.Zero(t, rep.Remaining, "entries left by a pass once the write cannot be committing")
				assert.Equal(t, "v1", l.content(t, 0, "k"), "the primary")
				assert.Equal(t, "v1", string(mustRead(t, l.r.Bucket(), "k")), "a read by the reconciler")
			})
		})
	}
}

// A Mirror-mode write of a key with pending work for the primary records
// an entry for the primary although it commits there too. A pass of
// another instance that listed that entry, and looked at the key between
// a third instance's delete's calls to the two sides (the primary's done,
// the secondary's not yet), found the write on the secondary alone and
// copied it back onto the primary, where the delete had removed it; the
// delete, which had found the key on both sides, did not look again (seeds
// 51 and 545 of the several-writer Mirror configuration). The entry now
// says the write was committing on the primary too, and a repair that
// finds the primary without it leaves it to whatever removed it.
func TestMirrorRepairLeavesAWriteMadeOnBothSidesThatALaterDeleteRemoved(t *testing.T) {
	for _, c := range []struct {
		name  string
		after time.Duration // from the write to the delete
	}{
		{"a delete soon after the write", time.Second},
		{"a delete long after the write", 10 * time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) { testAlongsideDelete(t, c.after) })
	}
}

func testAlongsideDelete(t *testing.T, after time.Duration) {
	synctest.Test(t, func(t *testing.T) {
		fl, w, d, r := missedPrimary(t)
		ctx := fl.ctx
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil), "a write of the pending key, on both sides")
		require.Equal(t, "v2", fl.content(0, "k"), "the primary after the write")
		require.Equal(t, "v2", fl.content(1, "k"), "the secondary after the write")
		time.Sleep(after)

		deleted := d.deleteWaitingOnSecondary(ctx, "k", failovertest.Fault{Latency: 5 * time.Second})
		require.Equal(t, "<absent>", fl.content(0, "k"), "the primary while the delete waits on the secondary")
		_, err := r.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the pass")
		require.NoError(t, <-deleted, "the delete")
		for _, in := range []*instance{r, w, d} {
			_, err := in.f.Drain(ctx)
			require.NoError(t, err)
		}
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the drains")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the drains")
		assert.Equal(t, "<not found>", r.read(ctx, "k"), "a read")
	})
}

// An alongside entry whose write then fails on the side it was for gets an
// ordinary entry beside it, and the repair copies the write there.
func TestMirrorWriteThatFailsOnASideItsEntryWasAlongsideIsRepaired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLanding(t, failoverblob.Mirror)
		l.shut.Store(true)
		l.gate <- failovertest.ErrOutage
		require.NoError(t, l.w.Bucket().WriteAll(l.ctx, "k", []byte("v1"), nil), "a write that fails on the secondary at its commit")
		l.gate <- failovertest.ErrOutage
		require.NoError(t, l.w.Bucket().WriteAll(l.ctx, "k", []byte("v2"), nil), "a write of the pending key that fails on the secondary at its commit")
		require.Equal(t, "v2", l.content(t, 0, "k"), "the primary after the writes")
		require.Equal(t, "<absent>", l.content(t, 1, "k"), "the secondary after the writes")
		l.shut.Store(false)
		time.Sleep(2 * time.Minute)

		rep, err := l.r.Drain(l.ctx)
		require.NoError(t, err)
		assert.Zero(t, rep.Remaining, "entries left")
		assert.Equal(t, "v2", l.content(t, 1, "k"), "the secondary after the pass")
	})
}

// slowWrites is a side whose writers take a while over each Write to a key
// outside the reserved prefix while slow is set.
type slowWrites struct {
	driver.Bucket
	slow *atomic.Bool
}

func (s *slowWrites) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	w, err := s.Bucket.NewTypedWriter(ctx, key, contentType, opts)
	if err != nil || strings.HasPrefix(key, failoverblob.ReservedPrefix) {
		return w, err
	}
	return &slowWriter{Writer: w, slow: s.slow}, nil
}

type slowWriter struct {
	driver.Writer
	slow *atomic.Bool
}

func (w *slowWriter) Write(p []byte) (int, error) {
	if w.slow.Load() {
		time.Sleep(20 * time.Second)
	}
	return w.Writer.Write(p)
}

// A Redirect-mode write of a key with pending work records its entry for
// the primary before the primary's commit; when that commit fails, the
// bytes are replayed to the secondary, which takes as long as the write
// has bytes. A pass long after the entry found neither side holding the
// write and took it for one that failed: it moved the older redirected
// version to the primary and acknowledged the entry, and the write, once
// replayed and acknowledged, had none. A new entry is now recorded beside
// the secondary's commit.
func TestRedirectedReplayLongAfterItsEntryIsRecordedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		raw := [2]*blob.Bucket{memblob.OpenBucket(nil), memblob.OpenBucket(nil)}
		defer raw[0].Close()
		defer raw[1].Close()
		var failCommits, slow atomic.Bool
		p, _ := failovertest.NewDriver(raw[0], nil)
		s, _ := failovertest.NewDriver(raw[1], nil)
		wsides := [2]*blob.Bucket{
			blob.NewBucket(&commitGate{Bucket: p, commit: func(key string) error {
				if failCommits.Load() && !strings.HasPrefix(key, failoverblob.ReservedPrefix) {
					return failovertest.ErrOutage
				}
				return nil
			}}),
			blob.NewBucket(&slowWrites{Bucket: s, slow: &slow}),
		}
		open := func(sides [2]*blob.Bucket) *failoverblob.Failover {
			f, err := failoverblob.New(ctx, sides[0], sides[1], &failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1})
			require.NoError(t, err)
			t.Cleanup(func() { _ = f.Close() })
			return f
		}
		w := open(wsides)
		rp, _ := failovertest.Wrap(raw[0], nil)
		rs, _ := failovertest.Wrap(raw[1], nil)
		r := open([2]*blob.Bucket{rp, rs})

		failCommits.Store(true)
		require.NoError(t, w.Bucket().WriteAll(ctx, "k", []byte("v1"), nil), "a write redirected at its commit")
		require.Equal(t, "v1", string(mustRead(t, raw[1], "k")), "the secondary after the first write")
		slow.Store(true)
		big := bytes.Repeat([]byte("2"), 640<<10)
		written := make(chan error, 1)
		go func() { written <- w.Bucket().WriteAll(ctx, "k", big, nil) }()
		time.Sleep(2 * time.Minute) // longer than a write may commit after its entry, by the timeouts
		_, err := r.Drain(ctx)
		require.NoError(t, err)
		require.NoError(t, <-written, "the write replayed to the secondary")
		slow.Store(false)
		failCommits.Store(false)
		_, err = r.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, len(big), len(mustRead(t, raw[0], "k")), "bytes on the primary after the passes")
		got, err := r.Bucket().ReadAll(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, len(big), len(got), "bytes read")
	})
}

func mustRead(t *testing.T, b *blob.Bucket, key string) []byte {
	t.Helper()
	data, err := b.ReadAll(context.Background(), key)
	require.NoError(t, err)
	return data
}

// A side that lacks a write whose entry for it is an alongside one, the
// other side holding it, with no tombstone recorded by the time a write
// may take to commit, lost it to a delete a crash cut between the sides,
// or to a failed commit whose record a crash cut: neither was
// acknowledged, and the repair copies the write, so that the sides agree,
// rather than leaving them apart until Verify.
func TestMirrorRepairCopiesAnAlongsideWriteOnceItCannotBeCommitting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl, w, _, r := missedPrimary(t)
		ctx := fl.ctx
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil), "a write of the pending key, on both sides")
		require.NoError(t, fl.raw[0].Delete(ctx, "k"), "the primary's copy, gone with nothing recorded")

		_, err := r.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after a pass soon after the write")
		time.Sleep(2 * time.Minute)
		_, err = r.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "v2", fl.content(0, "k"), "the primary after a pass once the write cannot be committing")
		assert.Zero(t, r.f.Status().Pending, "entries left")
	})
}

// An IfNotExist write of a key whose unseen tombstone (a Mirror-mode
// delete that found nothing) waits for its repair was unavailable until
// the repair, however long the sides had been up: where neither side
// holds the key, the tombstone has nothing to remove, and the write goes
// ahead on its own condition (seeds 238 of the fleet tier and 901 of
// mirror-either-flapping, where the repair waited on a crashed instance).
func TestIfNotExistWriteOverAnUnseenTombstoneOfAKeyNoSideHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := mirrorFleet(t, 1)
		d := fl.in[0]
		ctx := fl.ctx
		d.faults[0].Outage(nil)
		require.Equal(t, gcerrors.NotFound, gcerrors.Code(d.f.Bucket().Delete(ctx, "k")), "a delete of a key no side holds, the primary down")
		d.faults[0].Heal()
		time.Sleep(2 * time.Minute)
		require.NoError(t, d.f.Bucket().WriteAll(ctx, "k", []byte("v1"), &blob.WriterOptions{IfNotExist: true}), "an IfNotExist write before the tombstone's repair")
		err := d.f.Bucket().WriteAll(ctx, "k", []byte("v2"), &blob.WriterOptions{IfNotExist: true})
		assert.Equal(t, gcerrors.FailedPrecondition, gcerrors.Code(err), "a second IfNotExist write: %v", err)
		_, err = d.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "v1", fl.content(0, "k"), "the primary after the drain")
		assert.Equal(t, "v1", fl.content(1, "k"), "the secondary after the drain")
		assert.Equal(t, "v1", d.read(ctx, "k"), "a read")
	})
}
