package failoverblob_test

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// The scale of a long outage: an instance facing -scale.keys pending keys.
//
//	go test -run '^$' -bench LongOutage -benchtime 1x -timeout 1h . -scale.keys=1000000
//
// The default, 10,000 keys, runs in seconds.

var (
	scaleKeys  = flag.Int("scale.keys", 10000, "BenchmarkLongOutage: pending keys (the README's figures: 1000000)")
	scaleDrain = flag.Duration("scale.drain", 10*time.Second, "BenchmarkLongOutage: how long each drain is watched")
)

// scaleObjectSize is the size of each object written during the outage:
// small, since what is measured is the cost per key.
const scaleObjectSize = 64

// outageState is what a long outage leaves on two buckets: keys on the
// secondary only, each with a journal entry saying the primary misses it.
type outageState struct {
	sides    [2]*blob.Bucket // the raw buckets, ordered memblob
	keys     []string
	keyBytes int    // summed over keys
	file     string // the journal file, for journal=file
}

// buildOutage makes the state that n redirected writes by four instances
// (writers) leave, directly, as fast as the machine allows: for each key,
// the object on the secondary stamped with its version in
// VersionMetadataKey, as a write through the failover bucket stamps it, and
// the journal entry the write records (Put, Missing the primary, the
// object's size, recorded a millisecond after the version's time),
// appended with the journal's own Append: on the secondary by
// journal.NewBucket (one journal, so one writer id, per writer), or to one
// journal.OpenFile file.
func buildOutage(b *testing.B, kind string, n int) *outageState {
	b.Helper()
	ctx := context.Background()
	st := &outageState{sides: [2]*blob.Bucket{openOrderedMem(), openOrderedMem()}, keys: make([]string, n)}
	b.Cleanup(func() { _ = st.sides[0].Close(); _ = st.sides[1].Close() })
	const writers = 4
	var appenders [writers]journal.Journal
	var file *journal.File
	switch kind {
	case "bucket":
		for i := range appenders {
			appenders[i] = journal.NewBucket(st.sides[0], st.sides[1], nil)
		}
	case "file":
		st.file = filepath.Join(b.TempDir(), "journal")
		var err error
		if file, err = journal.OpenFile(st.file); err != nil {
			b.Fatal(err)
		}
		for i := range appenders {
			appenders[i] = file
		}
	}
	data := make([]byte, scaleObjectSize)
	benchPattern(data)
	start := time.Now().Add(-time.Hour).UnixNano()
	for i := range st.keys {
		st.keys[i] = fmt.Sprintf("outage/%08d", i)
		st.keyBytes += len(st.keys[i])
	}
	// The file journal makes each append durable with an fsync shared by
	// the appends waiting at the time: many appenders fill each batch.
	workers := 4
	if kind == "file" {
		workers = 256
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				w := i % writers
				v := failoverblob.Version{Wall: start + int64(i)*1000, Writer: fmt.Sprintf("writer-%d", w)}
				_, err := appenders[w].Append(ctx, journal.Entry{
					Key: st.keys[i], Op: journal.Put, Version: v.String(), Missing: journal.Primary,
					Size: scaleObjectSize, Recorded: time.Unix(0, v.Wall).Add(time.Millisecond),
				})
				if err == nil {
					err = st.sides[1].WriteAll(ctx, st.keys[i], data, &blob.WriterOptions{
						ContentType: "application/octet-stream",
						Metadata:    map[string]string{failoverblob.VersionMetadataKey: v.String()},
					})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	if file != nil {
		if err := file.Close(); err != nil {
			b.Fatal(err)
		}
	}
	// A first listing of each side, so that the ordered listing's index
	// is built before an instance's memory is measured.
	for _, s := range st.sides {
		if _, _, err := s.ListPage(ctx, blob.FirstPageToken, 1, nil); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// scaleInstance is a failover bucket over the outage's buckets, each behind
// its own fault injector adding sideLatency to every call, as an instance
// in a process of its own would see them.
type scaleInstance struct {
	f      *failoverblob.Failover
	faults [2]*failovertest.Injector
	file   *journal.File // journal=file: the journal, which f does not close
}

func (in *scaleInstance) close() {
	_ = in.f.Close()
	if in.file != nil {
		_ = in.file.Close()
	}
}

// lists returns the LIST calls the instance has made to both sides.
func (in *scaleInstance) lists() int64 {
	return in.faults[0].Calls(failovertest.OpList) + in.faults[1].Calls(failovertest.OpList)
}

// repairClock counts the keys a fleet copies, by instance.
type repairClock struct {
	mu     sync.Mutex
	n      int
	first  time.Time // of the first copy since reset
	by     map[*failoverblob.Failover]int
	first1 chan struct{} // closed at the first copy
	all    chan struct{} // closed once every instance of want has copied
	want   int
}

// reset starts counting afresh, for a fleet of want instances.
func (c *repairClock) reset(want int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n, c.first, c.by, c.want = 0, time.Time{}, map[*failoverblob.Failover]int{}, want
	c.first1, c.all = make(chan struct{}), make(chan struct{})
}

// firstCopy returns a channel closed at the first copy since reset.
func (c *repairClock) firstCopy() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first1
}

// copying returns a channel closed once every instance has made a copy
// since reset.
func (c *repairClock) copying() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all
}

func (c *repairClock) onRepair(f **failoverblob.Failover) func(failoverblob.Repair) {
	return func(r failoverblob.Repair) {
		if r.Action != failoverblob.ActionCopied {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.n == 0 {
			c.first = time.Now()
			close(c.first1)
		}
		c.n++
		c.by[*f]++
		if c.by[*f] == 1 && len(c.by) == c.want {
			close(c.all)
		}
	}
}

// copies returns the copies counted since reset, the largest share of them
// one instance made, and how many instances made some.
func (c *repairClock) copies() (n int, busiest float64, instances int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.by {
		busiest = max(busiest, float64(k)/float64(max(c.n, 1)))
	}
	return c.n, busiest, len(c.by)
}

// openScaleInstance opens a new instance over st with the journal named
// kind. ReconcileInterval is 1 s, so that leases last 3 s.
func openScaleInstance(b *testing.B, st *outageState, kind string, clock *repairClock) *scaleInstance {
	b.Helper()
	in := &scaleInstance{}
	var sides [2]*blob.Bucket
	for i := range sides {
		sides[i], in.faults[i] = failovertest.Wrap(st.sides[i], nil)
		slowDown(in.faults[i], sideLatency)
	}
	opts := &failoverblob.Options{ReconcileInterval: time.Second, OnRepair: clock.onRepair(&in.f)}
	if kind == "file" {
		j, err := journal.OpenFile(st.file)
		if err != nil {
			b.Fatal(err)
		}
		in.file, opts.Journal = j, j
	}
	f, err := failoverblob.New(context.Background(), sides[0], sides[1], opts)
	if err != nil {
		if in.file != nil {
			_ = in.file.Close()
		}
		b.Fatal(err)
	}
	in.f = f
	b.Cleanup(in.close)
	return in
}

// heapInUse returns the bytes of live heap objects, collecting until the
// figure settles: gocloud's readers and writers carry finalizers, which run
// after a collection has found them, so what they hold is freed only by a
// later one.
func heapInUse() uint64 {
	var ms runtime.MemStats
	last := uint64(0)
	for range 20 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if d := int64(ms.HeapAlloc) - int64(last); d > -(1<<16) && d < 1<<16 {
			break
		}
		last = ms.HeapAlloc
		time.Sleep(50 * time.Millisecond)
	}
	return ms.HeapAlloc
}

// drainFor runs a pass on every instance of fleet at once and, once every
// one of them is copying (or a minute after the first copy, since an
// instance that holds no lease copies nothing), counts the copies they
// make in d. It returns their rate, the largest share of them one
// instance made, and how many instances made some.
func drainFor(b *testing.B, fleet []*scaleInstance, clock *repairClock, d time.Duration) (perSecond, busiest float64, copying int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock.reset(len(fleet))
	var wg sync.WaitGroup
	for _, in := range fleet {
		wg.Go(func() { _, _ = in.f.Drain(ctx) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case <-clock.firstCopy():
	case <-done:
		b.Fatal("the passes ended before any copy")
	}
	select {
	case <-clock.copying():
	case <-time.After(time.Minute):
	case <-done:
		b.Fatal("the passes ended before the drain was timed")
	}
	n0, _, _ := clock.copies()
	start := time.Now()
	select {
	case <-time.After(d):
	case <-done:
		b.Fatal("the passes ended before the drain was timed")
	}
	n1, busiest, copying := clock.copies()
	return float64(n1-n0) / time.Since(start).Seconds(), busiest, copying
}

// BenchmarkLongOutage measures a new instance facing -scale.keys pending
// keys left by a long outage (see buildOutage), each of its sides memblob
// (with an ordered listing: see openOrderedMem) behind a fault injector
// that adds sideLatency to every call, with the journal on the buckets
// (journal=bucket) or in a local file (journal=file). Run it with
// -benchtime 1x: one iteration builds the state and measures, reporting
//
//   - learn-s: the time for a new instance (failoverblob.New, and for the
//     file journal OpenFile) to learn the pending set, and learn-cpu-s the
//     CPU time the process spent meanwhile (the machine's other work
//     inflates the first, not the second); lists/learn: the LIST calls it
//     made.
//   - B/key: the instance's heap (live objects after a collection, less
//     what was live before it was opened) per pending key, and
//     B/key-less-key-bytes without the bytes of the keys themselves;
//     journal-B/key: the part the journal holds (the file journal keeps
//     its entries in memory).
//   - refresh-s, refresh-cpu-s and lists/refresh: one Refresh of the
//     pending set.
//   - drain-1-keys/s: the keys one instance's pass copies per second,
//     counted over -scale.drain once it copies; first-copy-s: how long the
//     pass took to start copying (reading the journal, taking leases).
//   - drain-4-keys/s (journal=bucket): the same for four instances running
//     a pass at once, counted once all four copy, or a minute after the
//     first copy (three more instances are opened, and the first one's
//     leases left to expire); drain-4-busiest-share: the largest share of
//     those copies one of them made; drain-4-copying: how many of them
//     made any.
func BenchmarkLongOutage(b *testing.B) {
	for _, kind := range []string{"bucket", "file"} {
		b.Run("journal="+kind, func(b *testing.B) {
			n := *scaleKeys
			for b.Loop() {
				measureLongOutage(b, kind, n)
			}
		})
	}
}

func measureLongOutage(b *testing.B, kind string, n int) {
	ctx := context.Background()
	b.StopTimer()
	st := buildOutage(b, kind, n)
	clock := &repairClock{}
	clock.reset(1)
	b.StartTimer()

	// A new instance learns the pending set.
	before := heapInUse()
	start, cpu := time.Now(), processCPU()
	in := openScaleInstance(b, st, kind, clock)
	learn, learnCPU := time.Since(start), processCPU()-cpu
	learnLists := in.lists()
	after := heapInUse()
	if p := in.f.Status().Pending; p != n {
		b.Fatalf("a new instance knows of %d pending entries; want %d", p, n)
	}
	perKey := float64(after-before) / float64(n)
	b.ReportMetric(learn.Seconds(), "learn-s")
	b.ReportMetric(learnCPU.Seconds(), "learn-cpu-s")
	b.ReportMetric(float64(learnLists), "lists/learn")
	b.ReportMetric(perKey, "B/key")
	b.ReportMetric(perKey-float64(st.keyBytes)/float64(n), "B/key-less-key-bytes")
	if kind == "file" {
		// What the journal holds: the file opened again, alone.
		in.close()
		base := heapInUse()
		j, err := journal.OpenFile(st.file)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(heapInUse()-base)/float64(n), "journal-B/key")
		runtime.KeepAlive(j)
		if err := j.Close(); err != nil {
			b.Fatal(err)
		}
		in = openScaleInstance(b, st, kind, clock)
	}

	// One refresh of the pending set.
	lists := in.lists()
	start, cpu = time.Now(), processCPU()
	if err := in.f.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(time.Since(start).Seconds(), "refresh-s")
	b.ReportMetric((processCPU() - cpu).Seconds(), "refresh-cpu-s")
	b.ReportMetric(float64(in.lists()-lists), "lists/refresh")

	// One instance drains.
	start = time.Now()
	rate, _, _ := drainFor(b, []*scaleInstance{in}, clock, *scaleDrain)
	b.ReportMetric(rate, "drain-1-keys/s")
	b.ReportMetric(clock.first.Sub(start).Seconds(), "first-copy-s")
	if kind != "bucket" {
		return
	}

	// Four instances drain, once the first one's leases have expired (3
	// ReconcileIntervals, and MaxClockSkew's 5 s of grace).
	expired := time.Now().Add(3*time.Second + 5*time.Second + 500*time.Millisecond)
	fleet := []*scaleInstance{in}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 3 {
		wg.Go(func() {
			o := openScaleInstance(b, st, kind, clock)
			mu.Lock()
			fleet = append(fleet, o)
			mu.Unlock()
		})
	}
	wg.Wait()
	time.Sleep(time.Until(expired))
	rate, busiest, copying := drainFor(b, fleet, clock, *scaleDrain)
	b.ReportMetric(rate, "drain-4-keys/s")
	b.ReportMetric(busiest, "drain-4-busiest-share")
	b.ReportMetric(float64(copying), "drain-4-copying")
}
