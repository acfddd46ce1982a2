package failoverblob_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// How fast the reconciler moves what an outage redirected, against the
// plainest way to move it: a parallel copy loop that reads each object from
// the secondary, writes it to the primary and deletes it from the
// secondary, at the same concurrency.
//
//	go test -run '^$' -bench DrainVsCopyLoop -benchtime 5x .

const (
	// drainKeys objects of drainObjectSize bytes are redirected in each
	// round.
	drainKeys       = 500
	drainObjectSize = 16 << 10
)

// BenchmarkDrainVsCopyLoop redirects drainKeys objects of drainObjectSize
// bytes to the secondary during an outage (ForceSecondary, on memblob sides
// behind fault injectors), then, with sideLatency added to every call to
// either side, times one Drain with ReconcileConcurrency set to workers,
// and a copy loop of as many workers moving as many objects of the same
// size between two other memblob buckets behind the same latency. Each
// iteration runs both, taking turns to go first, so that they meet the same
// conditions; the benchmark's time is Drain's. It reports
//
//   - drain-keys/s and copy-keys/s: the keys each moved per second;
//   - drain/copy: Drain's throughput over the copy loop's;
//   - drain-cpu-µs/key and copy-cpu-µs/key: the process's CPU time per key
//     moved, which on a machine shared with other work is what its load
//     takes away from both.
//
// with the journal on the buckets (journal=bucket, the default, whose LIST
// and acknowledgements go through the same latency, and which takes reconcile
// leases) or in memory (journal=memory). Drain's checks are all made: each
// key's versions on both sides, a copy conditional on what the primary held,
// the MD5 of the bytes read, the entry acknowledged, the temporary copy
// removed.
func BenchmarkDrainVsCopyLoop(b *testing.B) {
	for _, kind := range []string{"bucket", "memory"} {
		for _, workers := range []int{4, 16} {
			b.Run(fmt.Sprintf("journal=%s/workers=%d", kind, workers), func(b *testing.B) {
				benchDrainVsCopyLoop(b, kind, workers)
			})
		}
	}
}

func benchDrainVsCopyLoop(b *testing.B, kind string, workers int) {
	ctx := context.Background()
	d := newDrainRig(b, kind, workers)
	c := newCopyRig(b)
	data := make([]byte, drainObjectSize)
	benchPattern(data)
	var drainTime, copyTime, drainCPU, copyCPU time.Duration
	b.SetBytes(drainKeys * drainObjectSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		keys := drainRoundKeys(i)
		d.redirect(b, keys, data)
		c.fill(b, keys, data)
		// The two take turns going first, and each starts after a
		// collection, so that neither pays for the garbage of the other
		// or of the set-up.
		copyFirst := i%2 == 0
		if copyFirst {
			t, cpu := c.move(b, keys, workers)
			copyTime, copyCPU = copyTime+t, copyCPU+cpu
		}
		runtime.GC()
		d.slow()
		b.StartTimer()
		start, cpu := time.Now(), processCPU()
		rep, err := d.f.Drain(ctx)
		drainTime += time.Since(start)
		drainCPU += processCPU() - cpu
		b.StopTimer()
		d.fast()
		if err != nil {
			b.Fatal(err)
		}
		if !copyFirst {
			t, cpu := c.move(b, keys, workers)
			copyTime, copyCPU = copyTime+t, copyCPU+cpu
		}
		d.check(b, rep, keys, data)
		c.check(b, keys)
		b.StartTimer()
	}
	n := float64(b.N * drainKeys)
	b.ReportMetric(n/drainTime.Seconds(), "drain-keys/s")
	b.ReportMetric(n/copyTime.Seconds(), "copy-keys/s")
	b.ReportMetric(copyTime.Seconds()/drainTime.Seconds(), "drain/copy")
	b.ReportMetric(float64(drainCPU.Microseconds())/n, "drain-cpu-µs/key")
	b.ReportMetric(float64(copyCPU.Microseconds())/n, "copy-cpu-µs/key")
}

// drainRoundKeys returns the keys of round i: fresh keys, as an outage's
// writes mostly are.
func drainRoundKeys(i int) []string {
	keys := make([]string, drainKeys)
	for k := range keys {
		keys[k] = fmt.Sprintf("drain/%03d/%04d", i, k)
	}
	return keys
}

// drainRig is a failover bucket in Redirect mode over two memblob buckets,
// each behind a fault injector.
type drainRig struct {
	f      *failoverblob.Failover
	raw    [2]*blob.Bucket
	faults [2]*failovertest.Injector
}

func newDrainRig(b *testing.B, kind string, workers int) *drainRig {
	b.Helper()
	d := &drainRig{}
	var sides [2]*blob.Bucket
	for i := range sides {
		d.raw[i] = memblob.OpenBucket(nil)
		sides[i], d.faults[i] = failovertest.Wrap(d.raw[i], nil)
	}
	b.Cleanup(func() { _ = d.raw[0].Close(); _ = d.raw[1].Close() })
	opts := &failoverblob.Options{ReconcileConcurrency: workers, ProbeInterval: -1}
	if kind == "memory" {
		opts.Journal = journal.NewMemory()
	}
	f, err := failoverblob.New(context.Background(), sides[0], sides[1], opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	d.f = f
	// A first pass, untimed, checks once that the sides are distinct
	// storage, as a running instance has long done before an outage.
	data := make([]byte, drainObjectSize)
	d.redirect(b, []string{"drain/warm-up"}, data)
	rep, err := f.Drain(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	d.check(b, rep, []string{"drain/warm-up"}, data)
	return d
}

// redirect writes keys through the failover bucket while traffic is forced
// off the primary, as during an outage: each lands on the secondary with an
// entry in the journal saying the primary misses it. The sides take no
// latency meanwhile.
func (d *drainRig) redirect(b *testing.B, keys []string, data []byte) {
	b.Helper()
	d.f.Force(failoverblob.ForceSecondary)
	defer d.f.Force(failoverblob.ForceNone)
	if err := onWorkers(len(keys), 16, func(i int) error {
		return d.f.Bucket().WriteAll(context.Background(), keys[i], data, benchWriteOpts)
	}); err != nil {
		b.Fatal(err)
	}
	if p := d.f.Status().Pending; p != len(keys) {
		b.Fatalf("%d entries pending after %d redirected writes", p, len(keys))
	}
}

func (d *drainRig) slow() {
	for _, in := range d.faults {
		slowDown(in, sideLatency)
	}
}

func (d *drainRig) fast() {
	for _, in := range d.faults {
		in.Heal()
		for _, op := range failovertest.AllOps {
			in.Clear(op)
		}
	}
}

// check fails b unless the pass moved every key to the primary, removed
// every temporary copy and left nothing pending.
func (d *drainRig) check(b *testing.B, rep failoverblob.Report, keys []string, data []byte) {
	b.Helper()
	if rep.Copied != len(keys) || rep.Cleaned != len(keys) || rep.Remaining != 0 {
		b.Fatalf("Drain copied %d, cleaned %d, left %d pending; want %d, %d, 0", rep.Copied, rep.Cleaned, rep.Remaining, len(keys), len(keys))
	}
	checkMoved(b, d.raw, keys, len(data))
}

// checkMoved fails b unless the primary holds each key with size bytes and
// the secondary none of them.
func checkMoved(b *testing.B, raw [2]*blob.Bucket, keys []string, size int) {
	b.Helper()
	ctx := context.Background()
	for _, k := range keys {
		a, err := raw[primary].Attributes(ctx, k)
		if err != nil || a.Size != int64(size) {
			b.Fatalf("the primary's %q after the move: %v, %v", k, a, err)
		}
		if _, err := raw[secondary].Attributes(ctx, k); gcerrors.Code(err) != gcerrors.NotFound {
			b.Fatalf("the secondary still holds %q after the move (%v)", k, err)
		}
	}
}

// copyRig is two memblob buckets behind fault injectors, for the copy loop.
type copyRig struct {
	raw    [2]*blob.Bucket
	sides  [2]*blob.Bucket
	faults [2]*failovertest.Injector
}

func newCopyRig(b *testing.B) *copyRig {
	c := &copyRig{}
	for i := range c.raw {
		c.raw[i] = memblob.OpenBucket(nil)
		c.sides[i], c.faults[i] = failovertest.Wrap(c.raw[i], nil)
	}
	b.Cleanup(func() { _ = c.raw[0].Close(); _ = c.raw[1].Close() })
	return c
}

// fill writes keys to the secondary, with a version in their metadata as
// the failover bucket would have stamped.
func (c *copyRig) fill(b *testing.B, keys []string, data []byte) {
	b.Helper()
	v := failoverblob.Version{Wall: time.Now().UnixNano(), Writer: "copy-loop"}
	opts := &blob.WriterOptions{ContentType: "application/octet-stream", Metadata: map[string]string{failoverblob.VersionMetadataKey: v.String()}}
	for _, k := range keys {
		if err := c.raw[secondary].WriteAll(context.Background(), k, data, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// move runs the copy loop over keys with sideLatency on every call, after a
// collection, and returns the time and the process's CPU time it took.
func (c *copyRig) move(b *testing.B, keys []string, workers int) (took, cpu time.Duration) {
	b.Helper()
	runtime.GC()
	c.slow()
	defer c.fast()
	start, cpu0 := time.Now(), processCPU()
	if err := copyLoop(context.Background(), c.sides[secondary], c.sides[primary], keys, workers); err != nil {
		b.Fatal(err)
	}
	return time.Since(start), processCPU() - cpu0
}

func (c *copyRig) slow() {
	for _, in := range c.faults {
		slowDown(in, sideLatency)
	}
}

func (c *copyRig) fast() {
	for _, in := range c.faults {
		for _, op := range failovertest.AllOps {
			in.Clear(op)
		}
	}
}

func (c *copyRig) check(b *testing.B, keys []string) {
	b.Helper()
	checkMoved(b, c.raw, keys, drainObjectSize)
}

// copyLoop moves keys from src to dst with workers goroutines: for each
// key, read it from src, write it to dst with its content type, delete it
// from src. The bytes are read into a buffer of the object's size (io.Copy
// between gocloud's reader and writer would allocate 1 MiB a copy).
func copyLoop(ctx context.Context, src, dst *blob.Bucket, keys []string, workers int) error {
	return onWorkers(len(keys), workers, func(i int) error {
		r, err := src.NewReader(ctx, keys[i], nil)
		if err != nil {
			return err
		}
		data := make([]byte, r.Size())
		_, err = io.ReadFull(r, data)
		_ = r.Close()
		if err != nil {
			return err
		}
		if err := dst.WriteAll(ctx, keys[i], data, &blob.WriterOptions{ContentType: r.ContentType()}); err != nil {
			return err
		}
		return src.Delete(ctx, keys[i])
	})
}

// onWorkers runs fn(0) to fn(n-1) on workers goroutines and returns the
// first error.
func onWorkers(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
