package failoverblob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
	"github.com/failoverblob/failoverblob/journal"
)

// The reconciler's copy: what it checks of the object it reads, now that it
// reads the source's attributes and opens the object in the same round
// trip, and takes the attributes from that look.

// changingSource is a secondary whose object changes, once armed, between
// the reconciler's look at its attributes and its read of it, as when
// another instance writes the key meanwhile.
type changingSource struct {
	driver.Bucket
	raw *blob.Bucket

	mu     sync.Mutex
	armed  bool
	noMD5  bool          // Attributes reports no MD5, as some providers do for some objects
	looked chan struct{} // closed when Attributes has answered, once armed
	looks  int           // Attributes calls, once armed
	// changeAt is the Attributes call before which the object changes
	// (0: at the read instead).
	changeAt int
	changed  bool
}

func newChangingSource(t *testing.T) (*changingSource, *blob.Bucket) {
	raw := memblob.OpenBucket(nil)
	t.Cleanup(func() { _ = raw.Close() })
	d, _ := failovertest.NewDriver(raw, nil)
	s := &changingSource{Bucket: d, raw: raw, looked: make(chan struct{})}
	return s, blob.NewBucket(s)
}

// change writes key anew on the raw bucket: as many bytes, other ones, and
// a version newer than the one it holds.
func (s *changingSource) change(ctx context.Context, key string) error {
	if s.changed {
		return nil
	}
	s.changed = true
	a, err := s.raw.Attributes(ctx, key)
	if err != nil {
		return err
	}
	v, err := failoverblob.ParseVersion(a.Metadata[failoverblob.VersionMetadataKey])
	if err != nil {
		return err
	}
	v.Wall++
	v.Writer = "another-instance"
	return s.raw.WriteAll(ctx, key, bytes.Repeat([]byte("x"), int(a.Size)), &blob.WriterOptions{
		ContentType: a.ContentType,
		Metadata:    map[string]string{failoverblob.VersionMetadataKey: v.String()},
	})
}

func (s *changingSource) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	s.mu.Lock()
	armed := s.armed
	if armed {
		s.looks++
		if s.looks == s.changeAt {
			if err := s.change(ctx, key); err != nil {
				s.mu.Unlock()
				return nil, err
			}
		}
	}
	s.mu.Unlock()
	a, err := s.Bucket.Attributes(ctx, key)
	if err != nil || !armed {
		return a, err
	}
	if s.noMD5 {
		c := *a
		c.MD5 = nil
		a = &c
	}
	s.mu.Lock()
	if s.looks == 1 {
		close(s.looked)
	}
	s.mu.Unlock()
	return a, nil
}

func (s *changingSource) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	s.mu.Lock()
	armed, atRead := s.armed, s.changeAt == 0
	s.mu.Unlock()
	if armed && atRead {
		// The read reaches the source just after the look at its
		// attributes, and the object changes in between.
		select {
		case <-s.looked:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
		err := s.change(ctx, key)
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	return s.Bucket.NewRangeReader(ctx, key, offset, length, opts)
}

// redirectOne opens a failover bucket in Redirect mode over a memblob
// primary and src, and writes key while traffic is forced off the primary,
// so that it lands on src with an entry saying the primary misses it.
func redirectOne(t *testing.T, src *blob.Bucket, key, value string) (*failoverblob.Failover, *blob.Bucket) {
	t.Helper()
	pr := memblob.OpenBucket(nil)
	t.Cleanup(func() { _ = pr.Close() })
	return redirectOnto(t, pr, src, key, value), pr
}

// redirectOnto is redirectOne with the primary pr.
func redirectOnto(t *testing.T, pr, src *blob.Bucket, key, value string) *failoverblob.Failover {
	t.Helper()
	ctx := context.Background()
	f, err := failoverblob.New(ctx, pr, src, &failoverblob.Options{Journal: journal.NewMemory(), ProbeInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	f.Force(failoverblob.ForceSecondary)
	require.NoError(t, f.Bucket().WriteAll(ctx, key, []byte(value), nil), "redirected write")
	f.Force(failoverblob.ForceNone)
	return f
}

func readRaw(t *testing.T, b *blob.Bucket, key string) string {
	t.Helper()
	got, err := b.ReadAll(context.Background(), key)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(got)
}

// abandonedThenCopied checks that a pass over src (whose key "k" changes
// during the pass, as what says) abandons its copy, leaving the key pending
// and the primary pr without it, and that the next pass copies the new
// object.
func abandonedThenCopied(t *testing.T, f *failoverblob.Failover, pr *blob.Bucket, what string) {
	t.Helper()
	ctx := context.Background()
	_, err := f.Drain(ctx)
	require.Error(t, err, "Drain over %s", what)
	_, err = pr.Attributes(ctx, "k")
	assert.Error(t, err, "the primary holds the key after the abandoned copy")
	assert.Equal(t, 1, f.Status().Pending, "entries pending after the abandoned copy")

	rep, err := f.Drain(ctx)
	require.NoError(t, err, "the next pass")
	assert.Equal(t, 1, rep.Copied, "copies of the next pass")
	assert.Equal(t, "xxxxxxxxxx", readRaw(t, pr, "k"), "the primary after the next pass")
}

// A source that changes between the look at its attributes and the read
// (which now go out together) is caught by the MD5 of the bytes read: the
// copy is abandoned before it commits, the entry stays, and the next pass
// copies the new object.
func TestRepairAbandonsACopyWhoseSourceChangedBeforeTheRead(t *testing.T) {
	s, src := newChangingSource(t)
	f, pr := redirectOne(t, src, "k", "redirected")
	s.mu.Lock()
	s.armed = true
	s.mu.Unlock()

	abandonedThenCopied(t, f, pr, "a source that changed before the read")
}

// The same onto a primary whose provider takes no MD5 (as S3's does,
// through providers): the copy still hands the source's MD5 to the
// primary's portable layer, which is what checks the bytes read.
func TestRepairAbandonsACopyWhoseSourceChangedOntoASideThatTakesNoMD5(t *testing.T) {
	s, src := newChangingSource(t)
	raw := memblob.OpenBucket(nil)
	t.Cleanup(func() { _ = raw.Close() })
	pr := blob.NewBucket(&md5Side{Bucket: bucketconv.Bucket(raw), offers: true, takes: false})
	f := redirectOnto(t, pr, src, "k", "redirected")
	s.mu.Lock()
	s.armed = true
	s.mu.Unlock()

	abandonedThenCopied(t, f, raw, "a source that changed before the read, onto a side that takes no MD5")
}

// A source that reports no MD5 cannot have the bytes read tied to the
// attributes seen: its version is read again before the object is opened,
// and a change is caught there.
func TestRepairReadsAgainTheVersionOfASourceWithoutMD5(t *testing.T) {
	s, src := newChangingSource(t)
	f, pr := redirectOne(t, src, "k", "redirected")
	s.mu.Lock()
	s.armed, s.noMD5, s.changeAt = true, true, 2
	s.mu.Unlock()

	abandonedThenCopied(t, f, pr, "a source without MD5 that changed after the first look")
}

// With the side that misses a change down (here, traffic forced off it),
// a repair fails on its first call, without calls to the other side: the
// look at both sides at once, and the read that goes with it, are only
// made while both take calls.
func TestRepairDoesNotAskTheSourceWhileTheMissingSideIsDown(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	r.f.Force(failoverblob.ForceSecondary)
	for _, k := range []string{"a", "b", "c"} {
		require.NoError(t, r.write(k, "v"), "redirected write")
	}
	before := r.faults[secondary].Calls(failovertest.OpAttributes) + r.faults[secondary].Calls(failovertest.OpRead)
	_, err := r.f.Drain(r.ctx)
	require.Error(t, err, "Drain with traffic forced off the primary")
	after := r.faults[secondary].Calls(failovertest.OpAttributes) + r.faults[secondary].Calls(failovertest.OpRead)
	assert.Equal(t, before, after, "attribute and read calls to the secondary during the pass")
	assert.Equal(t, 3, r.f.Status().Pending, "entries pending")
}

// A lease whose release fails is left to a later pass's sweep: the sweep
// that goes on beside a pass's releases leaves the pass's own leases to
// them, and must not take a failed release for a lease swept.
func TestLeaseWhoseReleaseFailedIsSweptByALaterPass(t *testing.T) {
	fl := newFleet(t, 1, failoverblob.Options{ReconcileConcurrency: 8})
	in := fl.in[0]
	in.f.Force(failoverblob.ForceSecondary) // no breaker opens, so no probe
	for i := range 40 {
		require.NoError(t, in.f.Bucket().WriteAll(fl.ctx, fmt.Sprintf("k%02d", i), []byte("v"), nil))
	}
	in.f.Force(failoverblob.ForceNone)
	// The primary, the side repaired, holds the leases; its deletes are
	// refused (an answer, not an outage), and a Redirect-mode repair
	// deletes nothing there.
	in.faults[0].Set(failovertest.OpDelete, failovertest.Fault{Err: errors.New("delete refused")})
	rep, err := in.f.Drain(fl.ctx)
	require.NoError(t, err)
	require.Equal(t, 40, rep.Copied, "copies")
	require.NotZero(t, countUnder(t, fl.raw[0], failoverblob.ReservedPrefix+"leases/"), "leases on the primary after releases that failed")

	in.faults[0].Clear(failovertest.OpDelete)
	_, err = in.f.Drain(fl.ctx)
	require.NoError(t, err, "a pass with nothing pending")
	assert.Zero(t, countUnder(t, fl.raw[0], failoverblob.ReservedPrefix+"leases/"), "leases on the primary after a pass with nothing pending")
}

// A pass claims the lease of its first shard beside its reading of the
// journal when its index knows of work; if the reading shows the work done
// (another instance drained it), the lease is released all the same.
func TestLeaseClaimedBesideTheReadingIsReleasedWhenThereIsNoWork(t *testing.T) {
	fl := newFleet(t, 2, failoverblob.Options{ReconcileConcurrency: 8})
	a, b := fl.in[0], fl.in[1]
	// A first pass with nothing to do finds no lease left behind, so the
	// writer's later pass with no work sweeps none.
	_, err := a.f.Drain(fl.ctx)
	require.NoError(t, err)
	a.f.Force(failoverblob.ForceSecondary)
	for i := range 40 {
		require.NoError(t, a.f.Bucket().WriteAll(fl.ctx, fmt.Sprintf("k%02d", i), []byte("v"), nil))
	}
	a.f.Force(failoverblob.ForceNone)
	rep, err := b.f.Drain(fl.ctx)
	require.NoError(t, err)
	require.Equal(t, 40, rep.Copied, "copies by the other instance")
	require.Equal(t, 40, a.f.Status().Pending, "entries the writer's index still counts")

	before := a.faults[0].Calls(failovertest.OpWrite)
	rep, err = a.f.Drain(fl.ctx)
	require.NoError(t, err)
	assert.Zero(t, rep.Copied, "copies by the writer's pass")
	require.Greater(t, a.faults[0].Calls(failovertest.OpWrite), before, "lease writes to the primary by the writer's pass (the claim beside the reading)")
	for i, raw := range fl.raw {
		assert.Zero(t, countUnder(t, raw, failoverblob.ReservedPrefix+"leases/"), "objects under the lease prefix on side %d", i)
	}
}

// countUnder returns the number of objects b holds under prefix.
func countUnder(t *testing.T, b *blob.Bucket, prefix string) int {
	t.Helper()
	n := 0
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		_, err := it.Next(context.Background())
		if err == io.EOF {
			return n
		}
		require.NoError(t, err)
		n++
	}
}

// A pass releases the reconcile leases it took once its shards are settled:
// a converged bucket holds none.
func TestDrainLeavesNoLeaseBehind(t *testing.T) {
	fl := newFleet(t, 1, failoverblob.Options{ReconcileConcurrency: 8})
	in := fl.in[0]
	fl.down(0)
	for i := range 40 {
		require.NoError(t, in.f.Bucket().WriteAll(fl.ctx, fmt.Sprintf("k%02d", i), []byte("v"), nil))
	}
	in.faults[0].Heal()
	in.faults[1].Heal()
	// The breaker the outage opened closes at the pass's probe.
	rep, err := in.f.Drain(fl.ctx)
	require.NoError(t, err)
	assert.Equal(t, 40, rep.Copied, "copies")
	for i, raw := range fl.raw {
		it := raw.List(&blob.ListOptions{Prefix: failoverblob.ReservedPrefix + "leases/"})
		o, err := it.Next(fl.ctx)
		if err != io.EOF {
			t.Errorf("side %d holds %v (%v) under the lease prefix after the pass; want nothing", i, o, err)
		}
	}
}
