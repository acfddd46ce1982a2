package providers_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/internal/emulators"
	"github.com/failoverblob/failoverblob/journal"
)

// Benchmarks of the journal on the buckets over the wire: an S3 emulator
// primary and a GCS emulator secondary, reached through the SDK clients.
//
//	go test -run '^$' -bench 'OutageWriteOverTheWire|JournalPutGetOverTheWire' -benchmem -count 6 ./providers
//	go test -run '^$' -bench FleetDrain -benchtime 3x ./providers
//	go test -run '^$' -bench VerifyOverTheWire -benchtime 3x ./providers
//
// -fleet.keys and -verify.keys set the number of keys.

var (
	fleetKeys  = flag.Int("fleet.keys", 1000, "BenchmarkFleetDrain: pending keys to reconcile")
	verifyKeys = flag.Int("verify.keys", 10000, "BenchmarkVerifyOverTheWire: objects on each side")
)

// tripAtOnce is a breaker that opens on the first outage and stays open for
// the whole benchmark.
func tripAtOnce() *circuit.Settings {
	return &circuit.Settings{
		ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 },
		Timeout:     time.Hour,
	}
}

// newJournal returns the journal named kind ("memory" or "bucket") for a
// failover bucket over primary and secondary.
func newJournal(tb testing.TB, kind string, primary, secondary *blob.Bucket) journal.Journal {
	tb.Helper()
	switch kind {
	case "memory":
		return journal.NewMemory()
	case "bucket":
		return journal.NewBucket(primary, secondary, nil)
	}
	tb.Fatalf("unknown journal %q", kind)
	return nil
}

// openInstance opens a failover bucket over its own clients of the two
// emulators, as one process of a fleet would. The bucket is closed by
// tb's Cleanup; opts may be nil.
func openInstance(tb testing.TB, pr, sec emulator, kind string, opts *failoverblob.Options) *failoverblob.Failover {
	f, _ := openInstanceSides(tb, pr, sec, kind, opts)
	return f
}

// openInstanceSides is openInstance, also returning the bucket of the
// secondary it opened.
func openInstanceSides(tb testing.TB, pr, sec emulator, kind string, opts *failoverblob.Options) (*failoverblob.Failover, *blob.Bucket) {
	tb.Helper()
	ctx := context.Background()
	var o failoverblob.Options
	if opts != nil {
		o = *opts
	}
	p, s := benchOpen(tb, ctx, pr.url), benchOpen(tb, ctx, sec.url)
	if kind != "" {
		o.Journal = newJournal(tb, kind, p, s)
	}
	f, err := failoverblob.New(ctx, p, s, &o)
	if err != nil {
		_ = p.Close()
		_ = s.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = f.Close() })
	return f, s
}

// interleaved runs fn b.N times, timed, in blocks, and between the blocks
// runs base as many times, clocked but not timed, so that both meet the same
// conditions. reset, if not nil, runs before each block, neither timed nor
// clocked. It reports fn's time over base's as the metric unit.
func interleaved(b *testing.B, unit string, reset func(), base, fn func(i int)) {
	b.Helper()
	const block = 16
	var baseTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(block, b.N-i)
		b.StopTimer()
		if reset != nil {
			reset()
		}
		start := time.Now()
		for j := range n {
			base(i + j)
		}
		baseTime += time.Since(start)
		b.StartTimer()
		for j := range n {
			fn(i + j)
		}
		i += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed())/float64(baseTime), unit)
}

// outageLinks are the links to the GCS secondary the outage benchmarks run
// over: loopback, and a TCP proxy that delays every chunk by 1 ms each way,
// so that a request waits on the network as one to a cloud does.
var outageLinks = []struct {
	name    string
	latency time.Duration
}{{"loopback", 0}, {"1ms-each-way", time.Millisecond}}

// overLink returns sec's emulator as reached over a link with latency
// (none: directly).
func overLink(b *testing.B, sec emulator, latency time.Duration) emulator {
	if latency == 0 {
		return sec
	}
	p := emulators.NewProxy(b, sec.srv.Addr())
	p.Latency(latency)
	p.Set(emulators.ProxySlow)
	return emulator{sec.name, sec.srv, "gs://" + testBucket + "?endpoint=" + url.QueryEscape(p.URL()) + benchTransportQuery}
}

// outageWriter opens a failover bucket in Redirect mode with the journal
// named kind over pr, which is down, and sec, trips the primary's breaker,
// and returns a function that writes 1 KiB under one of eight keys.
func outageWriter(b *testing.B, pr, sec emulator, kind string) func(i int) {
	f, secondary := openInstanceSides(b, pr, sec, kind, &failoverblob.Options{Breaker: tripAtOnce()})
	data, keys := benchPayload(), benchKeys("outage-"+kind)
	benchCheckedWrite(b, context.Background(), f.Bucket(), secondary, "bench/trip-"+kind, data)
	if st := f.Status().Primary.State; st != circuit.StateOpen {
		b.Fatalf("the primary's breaker is %s after a write to the closed primary; want open", st)
	}
	return func(i int) {
		if err := f.Bucket().WriteAll(context.Background(), keys[i%len(keys)], data, benchWriteOpts); err != nil {
			b.Fatal(err)
		}
	}
}

// purgeJournal removes every journal entry object from b.
func purgeJournal(b *testing.B, bkt *blob.Bucket) {
	ctx := context.Background()
	it := bkt.List(&blob.ListOptions{Prefix: journal.BucketPrefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := bkt.Delete(ctx, o.Key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOutageWriteOverTheWire writes 1 KiB objects through failover
// buckets in Redirect mode whose S3 primary's port is closed and whose
// breaker is open, so each write goes to the GCS secondary with a repair
// recorded in the journal, over loopback and over a link with 1 ms of
// latency each way:
//
//   - journal=bucket: the default journal, one entry object per write on the
//     secondary, written while the data commits. x-memory-journal is its
//     time over the same number of writes through a bucket with the
//     in-memory journal over the same emulators, interleaved in blocks.
//   - journal=memory: the in-memory journal alone, the baseline.
//
// Each bucket writes eight keys in turn. fake-gcs-server looks an object up
// by scanning every object in the bucket, so its cost per request grows with
// the objects it holds, as a cloud's does not: the entry objects are removed
// between blocks (neither timed nor clocked), so that the emulator holds
// about as many objects through the whole run.
func BenchmarkOutageWriteOverTheWire(b *testing.B) {
	for _, link := range outageLinks {
		benchRun(b, "link="+link.name+"/journal=bucket", func(b *testing.B) {
			pr, sec := benchStartS3(b), benchStartGCS(b)
			pr.srv.Set(emulators.Closed)
			slow := overLink(b, sec, link.latency)
			write, base := outageWriter(b, pr, slow, "bucket"), outageWriter(b, pr, slow, "memory")
			raw := benchOpen(b, context.Background(), sec.url)
			defer func() { _ = raw.Close() }()
			requests := sec.srv.Requests()
			var purges int64
			b.ReportAllocs()
			b.SetBytes(benchSize)
			interleaved(b, "x-memory-journal", func() {
				r := sec.srv.Requests()
				purgeJournal(b, raw)
				purges += sec.srv.Requests() - r
			}, base, write)
			// The data and the entry for each write, less the baseline's
			// data and the purges.
			b.ReportMetric(float64(sec.srv.Requests()-requests-purges-int64(b.N))/float64(b.N), "secondary-requests/op")
		})
		benchRun(b, "link="+link.name+"/journal=memory", func(b *testing.B) {
			pr, sec := benchStartS3(b), benchStartGCS(b)
			pr.srv.Set(emulators.Closed)
			write := outageWriter(b, pr, overLink(b, sec, link.latency), "memory")
			b.ReportAllocs()
			b.SetBytes(benchSize)
			i := 0
			for b.Loop() {
				write(i)
				i++
			}
		})
	}
}

// BenchmarkJournalPutGetOverTheWire writes a 1 KiB object and reads it back
// through a failover bucket over healthy emulators with the default journal
// (journal=bucket), and reports x-memory-journal, its time over the same
// round trips through a bucket with the in-memory journal over the same
// emulators, interleaved in blocks. primary-requests/op and
// secondary-requests/op count what each round trip sends each emulator
// (checked before timing: one PUT and one GET to the primary, and in
// Mirror mode one PUT to the secondary; no journal request).
func BenchmarkJournalPutGetOverTheWire(b *testing.B) {
	for _, mode := range []failoverblob.Mode{failoverblob.Redirect, failoverblob.Mirror} {
		benchRun(b, "mode="+mode.String(), func(b *testing.B) {
			ctx := context.Background()
			pr, sec := benchStartS3(b), benchStartGCS(b)
			opts := &failoverblob.Options{Mode: mode}
			f, base := openInstance(b, pr, sec, "bucket", opts), openInstance(b, pr, sec, "memory", opts)
			data := benchPayload()
			roundTrip := func(bkt *blob.Bucket, i int) {
				key := fmt.Sprintf("bench/put-get/%d", i%8)
				if err := bkt.WriteAll(ctx, key, data, benchWriteOpts); err != nil {
					b.Fatal(err)
				}
				if got, err := bkt.ReadAll(ctx, key); err != nil || len(got) != len(data) {
					b.Fatalf("read %d bytes, %v; want %d", len(got), err, len(data))
				}
			}
			// Warm both clients' connections, then count one round trip's
			// requests.
			roundTrip(f.Bucket(), 0)
			roundTrip(base.Bucket(), 0)
			const n = 8
			reqs := [2]int64{pr.srv.Requests(), sec.srv.Requests()}
			for i := range n {
				roundTrip(f.Bucket(), i)
			}
			got := [2]int64{pr.srv.Requests() - reqs[0], sec.srv.Requests() - reqs[1]}
			want := [2]int64{2 * n, 0}
			if mode == failoverblob.Mirror {
				want[1] = n
			}
			if got != want {
				b.Fatalf("%d round trips sent %v requests to (primary, secondary); want %v", n, got, want)
			}
			b.ReportAllocs()
			b.SetBytes(benchSize)
			interleaved(b, "x-memory-journal", nil,
				func(i int) { roundTrip(base.Bucket(), i) },
				func(i int) { roundTrip(f.Bucket(), i) })
			b.ReportMetric(float64(got[0])/n, "primary-requests/op")
			b.ReportMetric(float64(got[1])/n, "secondary-requests/op")
		})
	}
}

// startEmulators starts an S3 and a GCS emulator reached with the default
// transport (attempt deadlines of 10 s): fake-gcs-server scans every
// object in a bucket on each request, so with thousands of objects and
// concurrent requests it can take longer than the other benchmarks'
// 200 ms deadline.
func startEmulators(b *testing.B) (pr, sec emulator) {
	s3, gcs := emulators.StartS3(b, testBucket), emulators.StartGCS(b, testBucket)
	return emulator{"s3", s3, s3URL(s3)}, emulator{"gcs", gcs, gcsURL(gcs)}
}

// writePending writes n 1 KiB keys through a failover bucket with the
// default journal while the primary's port is closed, so that each is on
// the secondary only with its journal entry beside it, and then closes the
// bucket without reconciling: the state a dead instance leaves behind.
func writePending(b *testing.B, pr, sec emulator, n int) {
	b.Helper()
	ctx := context.Background()
	pr.srv.Set(emulators.Closed)
	defer pr.srv.Set(emulators.Healthy)
	f := openInstance(b, pr, sec, "", &failoverblob.Options{Breaker: tripAtOnce()})
	defer func() { _ = f.Close() }()
	data := benchPayload()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := f.Bucket().WriteAll(ctx, fmt.Sprintf("fleet/%06d", i), data, benchWriteOpts); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	if p := f.Status().Pending; p != n {
		b.Fatalf("%d entries pending after %d redirected writes; want %d", p, n, n)
	}
}

// fleetInterval is the fleet's ReconcileInterval: leases last three.
const fleetInterval = time.Second

// drainAll runs Drain on f until a pass finds nothing pending, waiting
// fleetInterval after a pass that settled nothing (every key it found was
// leased by another instance), as Run waits for its next pass. It returns
// the repairs that failed: where two instances repair a key at once (a
// lease taken over while its holder still works), the version checks and
// conditional writes refuse one of them, and a later pass settles the key.
func drainAll(b *testing.B, f *failoverblob.Failover) (failed int) {
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		rep, err := f.Drain(ctx)
		if err != nil {
			failed++
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				failed += len(j.Unwrap()) - 1
			}
		}
		if rep.Remaining == 0 && err == nil {
			return failed
		}
		if rep.Keys == 0 {
			time.Sleep(fleetInterval)
		}
	}
	b.Error("the journal was not drained in 10 minutes")
	return failed
}

// oneInstanceRate is BenchmarkFleetDrain/instances=1's rate in this run,
// the baseline of the fleets' x-one-instance.
var oneInstanceRate float64

// BenchmarkFleetDrain reconciles -fleet.keys pending keys (1 KiB each,
// redirected to the GCS secondary while the S3 primary was down, by an
// instance since gone) with a fleet of 1, 2 and 4 instances: separate
// failover buckets with the default journal, each over its own clients of
// the two emulators, each running passes (Drain) at the same time until
// the journal is empty, as Run does with a ReconcileInterval of
// fleetInterval. Only the drain is timed.
//
//   - keys/s: pending keys settled per second by the fleet.
//   - x-one-instance: keys/s over instances=1's, in the same run.
//   - duplicated-repairs: copies made (OnRepair with Action "copied",
//     summed over the instances) beyond one per key; leases keep it low.
//   - busiest-share: the largest share of the copies one instance made
//     (the most over the iterations).
//   - failed-repairs: repairs refused because another instance was
//     repairing the same key (see drainAll), summed over the instances.
func BenchmarkFleetDrain(b *testing.B) {
	for _, n := range []int{1, 2, 4} {
		benchRun(b, fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			keys := *fleetKeys
			var elapsed time.Duration
			var dup, failed int64
			var busiest float64 // the largest share of the copies one instance made
			for b.Loop() {
				b.StopTimer()
				pr, sec := startEmulators(b)
				writePending(b, pr, sec, keys)
				var copied atomic.Int64
				mine := make([]atomic.Int64, n) // copies by each instance
				fleet := make([]*failoverblob.Failover, n)
				for i := range fleet {
					fleet[i] = openInstance(b, pr, sec, "", &failoverblob.Options{
						ReconcileInterval: fleetInterval,
						OnRepair: func(r failoverblob.Repair) {
							if r.Action == failoverblob.ActionCopied {
								copied.Add(1)
								mine[i].Add(1)
							}
						},
					})
				}
				start := time.Now()
				b.StartTimer()
				var wg sync.WaitGroup
				var failedNow atomic.Int64
				for _, f := range fleet {
					wg.Go(func() { failedNow.Add(int64(drainAll(b, f))) })
				}
				wg.Wait()
				failed += failedNow.Load()
				b.StopTimer()
				elapsed += time.Since(start)
				if got := copied.Load(); got < int64(keys) {
					b.Fatalf("%d keys copied to the primary; want %d", got, keys)
				}
				dup += copied.Load() - int64(keys)
				for i := range mine {
					busiest = max(busiest, float64(mine[i].Load())/float64(copied.Load()))
				}
				for _, f := range fleet {
					_ = f.Close()
				}
				b.StartTimer()
			}
			rate := float64(keys) * float64(b.N) / elapsed.Seconds()
			b.ReportMetric(rate, "keys/s")
			b.ReportMetric(float64(dup)/float64(b.N), "duplicated-repairs")
			b.ReportMetric(busiest, "busiest-share")
			b.ReportMetric(float64(failed)/float64(b.N), "failed-repairs")
			if n == 1 {
				oneInstanceRate = rate
			} else if oneInstanceRate > 0 {
				b.ReportMetric(rate/oneInstanceRate, "x-one-instance")
			}
		})
	}
}

// BenchmarkVerifyOverTheWire runs Verify over -verify.keys objects of 1 KiB
// held alike by both sides (written through a failover bucket in Mirror
// mode, so stamped with versions), in Mirror mode, and reports keys/s. The
// scan lists both sides a page at a time and compares each key's listing
// (size and MD5); no key differs, so it makes no other call.
func BenchmarkVerifyOverTheWire(b *testing.B) {
	benchRun(b, "mode=mirror", func(b *testing.B) {
		ctx := context.Background()
		pr, sec := startEmulators(b)
		f := openInstance(b, pr, sec, "", &failoverblob.Options{Mode: failoverblob.Mirror})
		data := benchPayload()
		n := *verifyKeys
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range 16 {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					if err := f.Bucket().WriteAll(ctx, fmt.Sprintf("verify/%07d", i), data, benchWriteOpts); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
		for b.Loop() {
			rep, err := f.Verify(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			if rep.Scanned != n || rep.Differing != 0 {
				b.Fatalf("Verify scanned %d keys, %d differing; want %d, 0", rep.Scanned, rep.Differing, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}
