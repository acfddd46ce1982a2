package failoverblob_test

import (
	"context"
	"errors"
	"sync"
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
	"github.com/failoverblob/failoverblob/journal"
)

// Mirror-mode commits: a write goes to both sides at once, unless it
// carries a condition the primary must answer first.

// commitGate is a side whose writers' commits (Close) go through commit
// first: it may wait, and its error refuses the write, which is then not
// committed.
type commitGate struct {
	driver.Bucket
	commit func(key string) error
}

func (g *commitGate) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	wctx, cancel := context.WithCancel(ctx)
	w, err := g.Bucket.NewTypedWriter(wctx, key, contentType, opts)
	if err != nil {
		cancel()
		return nil, err
	}
	return &gatedWriter{Writer: w, key: key, gate: g, cancel: cancel}, nil
}

type gatedWriter struct {
	driver.Writer
	key    string
	gate   *commitGate
	cancel context.CancelFunc
}

func (w *gatedWriter) Close() error {
	defer w.cancel()
	if err := w.gate.commit(w.key); err != nil {
		w.cancel() // the inner writer does not commit
		_ = w.Writer.Close()
		return err
	}
	return w.Writer.Close()
}

// mirrorGates is a failover bucket in Mirror mode over two memblob buckets
// behind commit gates, with the raw buckets kept for inspection.
type mirrorGates struct {
	f   *failoverblob.Failover
	raw [2]*blob.Bucket
	// commit is each side's gate; nil lets the commit through.
	mu     sync.Mutex
	commit [2]func(key string) error
}

func newMirrorGates(t *testing.T, ack failoverblob.AckPolicy) *mirrorGates {
	t.Helper()
	m := &mirrorGates{}
	var sides [2]*blob.Bucket
	for i := range sides {
		m.raw[i] = memblob.OpenBucket(nil)
		d, _ := failovertest.NewDriver(m.raw[i], nil)
		sides[i] = blob.NewBucket(&commitGate{Bucket: d, commit: func(key string) error {
			m.mu.Lock()
			fn := m.commit[i]
			m.mu.Unlock()
			if fn == nil {
				return nil
			}
			return fn(key)
		}})
	}
	f, err := failoverblob.New(context.Background(), sides[0], sides[1], &failoverblob.Options{
		Mode: failoverblob.Mirror, Ack: ack, Journal: journal.NewMemory(), ProbeInterval: -1,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = f.Close()
		_ = m.raw[0].Close()
		_ = m.raw[1].Close()
	})
	m.f = f
	return m
}

func (m *mirrorGates) gate(side int, fn func(key string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.commit[side] = fn
}

func (m *mirrorGates) content(t *testing.T, side int, key string) string {
	t.Helper()
	b, err := m.raw[side].ReadAll(context.Background(), key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return "<absent>"
	}
	require.NoError(t, err)
	return string(b)
}

// A Mirror-mode write commits on both sides at once: each side's commit
// starts before the other's has ended.
func TestMirrorWriteCommitsBothSidesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMirrorGates(t, failoverblob.AckBoth)
		arrived := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
		var overlapped [2]bool
		for i := range 2 {
			m.gate(i, func(string) error {
				close(arrived[i])
				select {
				case <-arrived[1-i]:
					overlapped[i] = true
				case <-time.After(time.Minute):
				}
				return nil
			})
		}
		require.NoError(t, m.f.Bucket().WriteAll(context.Background(), "k", []byte("v"), nil))
		assert.Equal(t, [2]bool{true, true}, overlapped, "each side's commit waited for by the other's")
		assert.Equal(t, "v", m.content(t, primary, "k"), "primary")
		assert.Equal(t, "v", m.content(t, secondary, "k"), "secondary")
	})
}

// The primary's refusal of a write the secondary committed at the same
// time cannot be undone on the secondary without risking an older version
// over a newer one: the write fails as unavailable, whatever the ack
// policy, with a repair recorded so that the sides converge on it, and
// reads serve it meanwhile.
func TestMirrorWriteRefusedByThePrimaryAloneIsUnavailable(t *testing.T) {
	for _, ack := range []failoverblob.AckPolicy{failoverblob.AckEither, failoverblob.AckBoth} {
		t.Run(ack.String(), func(t *testing.T) {
			ctx := context.Background()
			m := newMirrorGates(t, ack)
			require.NoError(t, m.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil))
			refusal := errors.New("the primary refuses this write")
			m.gate(primary, func(string) error { return refusal })
			err := m.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil)
			assert.ErrorIs(t, err, failoverblob.ErrUnavailable, "write refused by the primary alone")
			assert.Equal(t, "v1", m.content(t, primary, "k"), "primary after the refusal")
			assert.Equal(t, "v2", m.content(t, secondary, "k"), "secondary after the refusal")
			assert.Equal(t, 1, m.f.Status().Pending, "entries pending")
			got, err := m.f.Bucket().ReadAll(ctx, "k")
			assert.NoError(t, err, "read after the refusal")
			assert.Equal(t, "v2", string(got), "read after the refusal")

			m.gate(primary, nil)
			_, err = m.f.Drain(ctx)
			require.NoError(t, err, "Drain once the primary takes the write")
			assert.Equal(t, "v2", m.content(t, primary, "k"), "primary after Drain")
		})
	}
}

// A write with a condition (here the caller's BeforeWrite) commits on the
// primary first, so that the primary's refusal refuses it before the
// secondary commits: nothing changes.
func TestMirrorConditionalWriteRefusedByThePrimaryChangesNothing(t *testing.T) {
	ctx := context.Background()
	m := newMirrorGates(t, failoverblob.AckEither)
	require.NoError(t, m.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil))
	refusal := errors.New("the primary refuses this write")
	m.gate(primary, func(string) error { return refusal })
	err := m.f.Bucket().WriteAll(ctx, "k", []byte("v2"), &blob.WriterOptions{
		BeforeWrite: func(func(any) bool) error { return nil },
	})
	assert.ErrorIs(t, err, refusal, "conditional write refused by the primary")
	assert.NotErrorIs(t, err, failoverblob.ErrUnavailable, "conditional write refused by the primary")
	assert.Equal(t, "v1", m.content(t, primary, "k"), "primary after the refusal")
	assert.Equal(t, "v1", m.content(t, secondary, "k"), "secondary after the refusal")
	assert.Equal(t, 0, m.f.Status().Pending, "entries pending")
}
