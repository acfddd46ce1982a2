package failoverblob_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// Benchmarks of the journal on the buckets, on memblob: what a write costs
// during an outage and on the healthy path, against the in-memory journal in
// the same run. The same over the emulators is in providers/fleet_bench_test.go;
// the scale of a long outage in scale_bench_test.go.
//
//	go test -run '^$' -bench 'OutageWrite|JournalPutGet' -benchmem -count 6 .

// sideLatency is the latency injected on every call to a slowed side: the
// order of a request to a cloud provider in the same region.
const sideLatency = 2 * time.Millisecond

// tripAtOnce is a breaker that opens on the first outage and stays open for
// the whole benchmark, so every write after the first goes straight to the
// secondary.
func tripAtOnce() *circuit.Settings {
	return &circuit.Settings{
		ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 },
		Timeout:     time.Hour,
	}
}

// slowDown makes every call through in take d longer.
func slowDown(in *failovertest.Injector, d time.Duration) {
	for _, op := range failovertest.AllOps {
		in.Set(op, failovertest.Fault{Latency: d})
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

// interleaved runs fn b.N times, timed, in blocks, and between the blocks
// runs base as many times, clocked but not timed, so that both meet the same
// conditions (the machine's load, the buckets' growth). It reports fn's
// time over base's as the metric unit.
func interleaved(b *testing.B, unit string, base, fn func(i int)) {
	b.Helper()
	const block = 16
	var baseTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(block, b.N-i)
		b.StopTimer()
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

// outageRig is a failover bucket in Redirect mode whose primary is down
// (every call refused) with its breaker open, over a secondary that takes
// sideLatency per call. sec is the secondary's injector.
type outageRig struct {
	f   *failoverblob.Failover
	sec *failovertest.Injector
}

// newOutageRig opens an outageRig with the journal named kind. With
// atCommit, the secondary's writes take their latency when they commit
// instead of when they open.
func newOutageRig(b *testing.B, kind string, atCommit bool) *outageRig {
	b.Helper()
	ctx := context.Background()
	rawP, rawS := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	if atCommit {
		o := newOrderedMem()
		o.commitDelay = sideLatency
		rawS = blob.NewBucket(o)
	}
	b.Cleanup(func() { _ = rawP.Close(); _ = rawS.Close() })
	pr, pin := failovertest.Wrap(rawP, nil)
	sec, sin := failovertest.Wrap(rawS, nil)
	f, err := failoverblob.New(ctx, pr, sec, &failoverblob.Options{
		Journal: newJournal(b, kind, pr, sec),
		Breaker: tripAtOnce(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	pin.Outage(nil)
	slowDown(sin, sideLatency)
	if atCommit {
		sin.Clear(failovertest.OpWrite)
	}
	// The first write finds the primary down and trips its breaker.
	if err := f.Bucket().WriteAll(ctx, "bench/trip", benchData1KiB(), benchWriteOpts); err != nil {
		b.Fatal(err)
	}
	if st := f.Status().Primary.State; st != circuit.StateOpen {
		b.Fatalf("the primary's breaker is %s after a write to the downed primary; want open", st)
	}
	return &outageRig{f: f, sec: sin}
}

// benchWriteOpts sets the content type, so that no variant sniffs it.
var benchWriteOpts = &blob.WriterOptions{ContentType: "application/octet-stream"}

func benchData1KiB() []byte {
	p := make([]byte, 1<<10)
	benchPattern(p)
	return p
}

// write writes a fresh key through r's failover bucket.
func (r *outageRig) write(b *testing.B, prefix string, i int, data []byte) {
	if err := r.f.Bucket().WriteAll(context.Background(), fmt.Sprintf("bench/%s/%d", prefix, i), data, benchWriteOpts); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOutageWrite writes 1 KiB objects, each under a new key, through a
// failover bucket in Redirect mode while its primary is down and its
// breaker open, so each write goes to the secondary (memblob with
// sideLatency per call) with a repair recorded in the journal:
//
//   - journal=bucket: the default journal, one entry object per write on the
//     secondary. x-memory-journal is its time over the same number of
//     writes through a bucket with journal=memory, interleaved in blocks
//     through the same run.
//   - journal=memory: the in-memory journal alone, the baseline.
//
// with the secondary's latency where failovertest puts it, when a call is
// made (latency=at-open: a write pays it when its stream opens), or, for
// writes, when they commit (latency=at-commit), where a cloud's round trip
// falls for a small object, which is sent when it is closed. A redirected
// write records its entry while its data commits: at-open, the data's
// latency is paid before the commit, and the entry's during it, so they
// add up; at-commit, they overlap.
func BenchmarkOutageWrite(b *testing.B) {
	for _, at := range []string{"at-open", "at-commit"} {
		atCommit := at == "at-commit"
		b.Run("latency="+at+"/journal=bucket", func(b *testing.B) {
			data := benchData1KiB()
			r, base := newOutageRig(b, "bucket", atCommit), newOutageRig(b, "memory", atCommit)
			writes := r.sec.Calls(failovertest.OpWrite)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			interleaved(b, "x-memory-journal",
				func(i int) { base.write(b, "memory", i, data) },
				func(i int) { r.write(b, "bucket", i, data) })
			// One data object and one entry object per write.
			b.ReportMetric(float64(r.sec.Calls(failovertest.OpWrite)-writes)/float64(b.N), "secondary-writes/op")
		})
		b.Run("latency="+at+"/journal=memory", func(b *testing.B) {
			data := benchData1KiB()
			r := newOutageRig(b, "memory", atCommit)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			i := 0
			for b.Loop() {
				r.write(b, "memory", i, data)
				i++
			}
		})
	}
}

// openHealthy returns a failover bucket in mode over two healthy memblob
// buckets with the journal named kind.
func openHealthy(b *testing.B, mode failoverblob.Mode, kind string) *blob.Bucket {
	b.Helper()
	pr, sec := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	f, err := failoverblob.New(context.Background(), pr, sec, &failoverblob.Options{
		Mode: mode, Journal: newJournal(b, kind, pr, sec), SpoolDir: b.TempDir(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	return f.Bucket()
}

// BenchmarkJournalPutGet writes a 1 KiB object and reads it back through a
// failover bucket over two healthy memblob buckets with the default journal
// (journal=bucket), and reports x-memory-journal, its time over the same
// round trips through a bucket with the in-memory journal, interleaved in
// blocks through the same run. Nothing is pending, so neither journal is
// called (TestHealthyCallsMakeNoJournalCall counts the calls).
func BenchmarkJournalPutGet(b *testing.B) {
	for _, mode := range []failoverblob.Mode{failoverblob.Redirect, failoverblob.Mirror} {
		b.Run("mode="+mode.String(), func(b *testing.B) {
			ctx := context.Background()
			data := benchData1KiB()
			bkt, base := openHealthy(b, mode, "bucket"), openHealthy(b, mode, "memory")
			roundTrip := func(bkt *blob.Bucket, i int) {
				key := fmt.Sprintf("bench/put-get/%d", i%8)
				if err := bkt.WriteAll(ctx, key, data, benchWriteOpts); err != nil {
					b.Fatal(err)
				}
				if got, err := bkt.ReadAll(ctx, key); err != nil || len(got) != len(data) {
					b.Fatalf("read %d bytes, %v; want %d", len(got), err, len(data))
				}
			}
			roundTrip(bkt, 0)
			roundTrip(base, 0)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			interleaved(b, "x-memory-journal",
				func(i int) { roundTrip(base, i) },
				func(i int) { roundTrip(bkt, i) })
		})
	}
}

// With the default journal and nothing pending, a write, a read, a
// listing, an attributes call and a delete reach the sides they would
// reach without a journal, and nothing else: no journal object is written, listed or
// deleted. (New reads the journal once, before the calls counted.)
func TestHealthyCallsMakeNoJournalCall(t *testing.T) {
	for _, mode := range []failoverblob.Mode{failoverblob.Redirect, failoverblob.Mirror} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			rawP, rawS := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
			defer func() { _ = rawP.Close(); _ = rawS.Close() }()
			pr, pin := failovertest.Wrap(rawP, nil)
			sec, sin := failovertest.Wrap(rawS, nil)
			f, err := failoverblob.New(ctx, pr, sec, &failoverblob.Options{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = f.Close() }()
			before := [2][]int64{callCounts(pin), callCounts(sin)}

			bkt := f.Bucket()
			const n = 10
			for i := range n {
				key := fmt.Sprintf("k%d", i)
				if err := bkt.WriteAll(ctx, key, []byte("v"), benchWriteOpts); err != nil {
					t.Fatal(err)
				}
				if _, err := bkt.ReadAll(ctx, key); err != nil {
					t.Fatal(err)
				}
				if _, err := bkt.Attributes(ctx, key); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := bkt.ListPage(ctx, blob.FirstPageToken, 100, nil); err != nil {
				t.Fatal(err)
			}
			// A Mirror-mode delete of a key the sides hold alike looks at
			// nothing more: it looks again only at a side that did not
			// have the key the other had.
			for i := range n {
				if err := bkt.Delete(ctx, fmt.Sprintf("k%d", i)); err != nil {
					t.Fatal(err)
				}
			}

			// Per side: what each call makes without a journal.
			want := map[failovertest.Op]int64{
				failovertest.OpWrite: n, failovertest.OpRead: n, failovertest.OpAttributes: n, failovertest.OpList: 1, failovertest.OpDelete: n,
			}
			// A Redirect-mode delete looks beside its delete on the
			// primary at whether the secondary holds a redirected copy
			// (another instance's, whose entry it may not know of yet).
			wantSec := map[failovertest.Op]int64{failovertest.OpAttributes: n}
			if mode == failoverblob.Mirror {
				wantSec = map[failovertest.Op]int64{failovertest.OpWrite: n, failovertest.OpDelete: n}
			}
			for s, w := range [2]map[failovertest.Op]int64{want, wantSec} {
				in := [2]*failovertest.Injector{pin, sin}[s]
				for _, op := range failovertest.AllOps {
					if got := in.Calls(op) - before[s][op]; got != w[op] {
						t.Errorf("%s calls to the %s: %d, want %d", op, []string{"primary", "secondary"}[s], got, w[op])
					}
				}
			}
			for s, raw := range []*blob.Bucket{rawP, rawS} {
				objs, _, err := raw.ListPage(ctx, blob.FirstPageToken, 10, &blob.ListOptions{Prefix: failoverblob.ReservedPrefix})
				if err != nil {
					t.Fatal(err)
				}
				if len(objs) != 0 {
					t.Errorf("side %d holds %q under the reserved prefix after healthy calls; want nothing", s, objs[0].Key)
				}
			}
		})
	}
}

// callCounts returns in's call count for each op.
func callCounts(in *failovertest.Injector) []int64 {
	c := make([]int64, len(failovertest.AllOps))
	for _, op := range failovertest.AllOps {
		c[op] = in.Calls(op)
	}
	return c
}

// verifyObjects is how many objects BenchmarkVerify scans.
var verifyObjects = flag.Int("verify.keys", 100000, "BenchmarkVerify: objects on each side")

// BenchmarkVerify runs Verify over -verify.keys objects of 1 KiB that both
// sides hold alike, each stamped with a version as a Mirror-mode write
// stamps it, written to the sides directly, and reports keys/s:
//
//   - side=memblob: memblob sides. memblob sorts every key it holds for
//     each page it lists, so the scan's cost grows with the square of the
//     keys.
//   - side=ordered-memblob: memblob with a listing served from a sorted
//     index (see openOrderedMem), so what is measured is Verify's own cost.
//
// Verify lists both sides a page at a time and compares each key's listing
// (size and MD5); nothing differs, so it makes no other call.
func BenchmarkVerify(b *testing.B) {
	for _, side := range []struct {
		name string
		open func() *blob.Bucket
	}{
		{"memblob", func() *blob.Bucket { return memblob.OpenBucket(nil) }},
		{"ordered-memblob", openOrderedMem},
	} {
		b.Run("side="+side.name, func(b *testing.B) {
			ctx := context.Background()
			n := *verifyObjects
			pr, sec := side.open(), side.open()
			data := benchData1KiB()
			for i := range n {
				key := fmt.Sprintf("verify/%07d", i)
				v := failoverblob.Version{Wall: int64(i + 1), Writer: "w"}
				opts := &blob.WriterOptions{
					ContentType: "application/octet-stream",
					Metadata:    map[string]string{failoverblob.VersionMetadataKey: v.String()},
				}
				for _, s := range []*blob.Bucket{pr, sec} {
					if err := s.WriteAll(ctx, key, data, opts); err != nil {
						b.Fatal(err)
					}
				}
			}
			f, err := failoverblob.New(ctx, pr, sec, &failoverblob.Options{Mode: failoverblob.Mirror})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = f.Close() }()
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
}
