package failoverblob_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/cache"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
)

// Reads under a slow or down primary: hedged reads and stale copies.

// slowReads is a bucket whose reads (opening a reader) take base, except
// a fraction tailP of them that take tail: a side that is slow before it
// fails. The wait ends early if the call's context is done.
type slowReads struct {
	driver.Bucket
	base, tail time.Duration
	tailP      float64

	mu  sync.Mutex
	rng *rand.Rand
}

func newSlowReads(base, tail time.Duration, tailP float64, seed uint64) *blob.Bucket {
	return blob.NewBucket(&slowReads{
		Bucket: bucketconv.Bucket(memblob.OpenBucket(nil)),
		base:   base, tail: tail, tailP: tailP,
		rng: rand.New(rand.NewPCG(seed, seed)),
	})
}

func (s *slowReads) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	s.mu.Lock()
	d := s.base
	if s.rng.Float64() < s.tailP {
		d = s.tail
	}
	s.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Bucket.NewRangeReader(ctx, key, offset, length, opts)
}

// BenchmarkHedgedReads reads 1 KiB objects from 16 readers at once, in
// Mirror mode, in real time, from a primary whose reads take 1 ms except
// 5% that take 200 ms (tail=5%; tail=none, the baseline: every read
// 1 ms) and a secondary whose reads take 1 ms, with hedging off or after
// 5 ms (and, with the tail, 2 ms). It reports the read latency's p50, p99 and p99.9, and the hedges
// made and refused per read. Every iteration is one read; run a fixed
// count, as in:
//
//	go test -run '^$' -bench BenchmarkHedgedReads -benchtime 20000x .
func BenchmarkHedgedReads(b *testing.B) {
	for _, tc := range []struct {
		tail  string
		tailP float64
		hedge time.Duration
	}{
		{"none", 0, 0},
		{"none", 0, 5 * time.Millisecond},
		{"5%", 0.05, 0},
		{"5%", 0.05, 5 * time.Millisecond},
		{"5%", 0.05, 2 * time.Millisecond},
	} {
		hedge := "off"
		if tc.hedge > 0 {
			hedge = tc.hedge.String()
		}
		b.Run(fmt.Sprintf("tail=%s/hedge=%s", tc.tail, hedge), func(b *testing.B) {
			benchHedgedReads(b, tc.tailP, tc.hedge)
		})
	}
}

func benchHedgedReads(b *testing.B, tailP float64, hedgeAfter time.Duration) {
	ctx := context.Background()
	const keys, readers = 256, 16
	f, err := failoverblob.New(ctx,
		newSlowReads(time.Millisecond, 200*time.Millisecond, tailP, 1),
		newSlowReads(time.Millisecond, 0, 0, 2),
		&failoverblob.Options{Mode: failoverblob.Mirror, HedgeAfter: hedgeAfter, SpoolDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	bkt := f.Bucket()
	data := make([]byte, 1<<10)
	benchPattern(data)
	for i := range keys {
		if err := bkt.WriteAll(ctx, fmt.Sprint("k", i), data, nil); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, b.N)
	var next sync.Mutex
	n := 0
	b.ResetTimer()
	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			for i := r; ; i += readers {
				next.Lock()
				if n == b.N {
					next.Unlock()
					return
				}
				at := n
				n++
				next.Unlock()
				start := time.Now()
				got, err := bkt.ReadAll(ctx, fmt.Sprint("k", i%keys))
				lat[at] = time.Since(start)
				if err != nil || len(got) != len(data) {
					b.Errorf("read %d: %d bytes, %v", at, len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	h := f.Status().Hedges
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(0.999), "p99.9-ms")
	b.ReportMetric(float64(h.Hedged)/float64(b.N), "hedges/read")
	b.ReportMetric(float64(h.Refused)/float64(b.N), "refused/read")
	b.ReportMetric(float64(h.Won)/float64(max(h.Hedged, 1)), "won/hedge")
}

// BenchmarkReadsWhilePrimaryDown measures read availability under a down
// primary in Redirect mode, with and without a cache of stale copies.
// 2,000 objects of 1 KiB are written and read (keys drawn from a Zipf
// distribution, s=1.1) 20,000 times while both sides are up; then the
// primary goes down, and each iteration is one operation: a read, or
// (writes=10%) an overwrite one time in ten, of a key drawn the same way.
// It reports the fraction of reads served (served-frac), and of those
// served from the cache (stale-frac); every read served is checked against
// the key's last acknowledged value. A cache of 512 KiB holds about a
// fifth of the objects, one of 4 MiB all of them. Run a fixed count:
//
//	go test -run '^$' -bench BenchmarkReadsWhilePrimaryDown -benchtime 20000x .
func BenchmarkReadsWhilePrimaryDown(b *testing.B) {
	for _, writes := range []int{0, 10} {
		for _, size := range []int64{0, 512 << 10, 4 << 20} {
			name := "cache=off"
			if size > 0 {
				name = fmt.Sprintf("cache=%dKiB", size>>10)
			}
			b.Run(fmt.Sprintf("writes=%d%%/%s", writes, name), func(b *testing.B) {
				benchReadsWhilePrimaryDown(b, writes, size)
			})
		}
	}
}

func benchReadsWhilePrimaryDown(b *testing.B, writesPercent int, cacheBytes int64) {
	ctx := context.Background()
	const keys, warmReads = 2000, 20000
	opts := &failoverblob.Options{SpoolDir: b.TempDir()}
	if cacheBytes > 0 {
		opts.Cache, opts.ServeStale = cache.NewMemory(cacheBytes), time.Hour
	}
	base := memblob.OpenBucket(nil)
	b.Cleanup(func() { _ = base.Close() })
	primary, faults := failovertest.Wrap(base, nil)
	f, err := failoverblob.New(ctx, primary, memblob.OpenBucket(nil), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	bkt := f.Bucket()
	rng := rand.New(rand.NewPCG(3, 3))
	zipf := rand.NewZipf(rng, 1.1, 1, keys-1)
	want := map[string]string{} // each key's last acknowledged value
	write := func(key string, gen int) error {
		v := fmt.Sprintf("%s@%d:%1000d", key, gen, gen)
		err := bkt.WriteAll(ctx, key, []byte(v), nil)
		if err == nil {
			want[key] = v
		}
		return err
	}
	for i := range keys {
		if err := write(fmt.Sprint("k", i), 0); err != nil {
			b.Fatal(err)
		}
	}
	for range warmReads {
		if _, err := bkt.ReadAll(ctx, fmt.Sprint("k", zipf.Uint64())); err != nil {
			b.Fatal(err)
		}
	}
	faults.Outage(nil)
	var reads, served int
	b.ResetTimer()
	for i := range b.N {
		key := fmt.Sprint("k", zipf.Uint64())
		if rng.IntN(100) < writesPercent {
			if err := write(key, i+1); err != nil {
				b.Fatalf("overwrite during the outage: %v", err)
			}
			continue
		}
		reads++
		got, err := bkt.ReadAll(ctx, key)
		if err != nil {
			continue
		}
		if string(got) != want[key] {
			b.Fatalf("%s: served %.20q..., want %.20q...", key, got, want[key])
		}
		served++
	}
	b.StopTimer()
	st := f.Status().Stale
	b.ReportMetric(float64(served)/float64(max(reads, 1)), "served-frac")
	b.ReportMetric(float64(st.Served)/float64(max(reads, 1)), "stale-frac")
}
