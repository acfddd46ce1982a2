package providers_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"google.golang.org/api/option"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/internal/cputime"
	"github.com/failoverblob/failoverblob/internal/emulators"
	"github.com/failoverblob/failoverblob/providers"
)

// Benchmarks over the in-process emulators.
//
// Every sub-benchmark starts its own emulators, closed by its Cleanup, and
// closes the buckets it opens, so nothing it started outlives it;
// benchRun checks that the goroutine count is back where it was after
// each one.
//
// Run them with -benchmem, for example
//
//	go test -run '^$' -bench 'WriteWhilePrimaryHangs|GCSSmallWrite' -benchmem -count 5 ./providers > emu.txt
//
// BenchmarkWriteWhilePrimaryHangs/breaker-open reports its own ratio
// against the secondary alone (x-secondary), measured in the same run. To
// compare the GCS clients side by side with ratios:
//
//	benchstat -filter '.name:GCSSmallWrite' -col /client emu.txt

const (
	// benchSize is the size of every object written.
	benchSize = 1 << 10
	// benchAttemptTimeout is the sides' per-attempt deadline, tried once:
	// a write to a hung primary is given up on after about this long.
	benchAttemptTimeout = 200 * time.Millisecond
	benchTransportQuery = "&attempt_timeout=200ms&max_attempts=1"
)

// benchWriteOpts avoids content sniffing, the same for every variant.
var benchWriteOpts = &blob.WriterOptions{ContentType: "application/octet-stream"}

// benchStartS3 and benchStartGCS are startS3 and startGCS for benchmarks,
// with the benchmarks' attempt deadline.
func benchStartS3(tb testing.TB) emulator {
	tb.Helper()
	srv := emulators.StartS3(tb, testBucket)
	return emulator{"s3", srv, s3URL(srv) + benchTransportQuery}
}

func benchStartGCS(tb testing.TB) emulator {
	tb.Helper()
	srv := emulators.StartGCS(tb, testBucket)
	return emulator{"gcs", srv, gcsURL(srv) + benchTransportQuery}
}

// benchPayload is a benchSize object with a non-zero pattern.
func benchPayload() []byte {
	p := make([]byte, benchSize)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

// benchKeys is a small rotating key set: objects are overwritten, so the
// emulator's contents stay the same size however long a benchmark runs.
func benchKeys(prefix string) []string {
	ks := make([]string, 8)
	for i := range ks {
		ks[i] = fmt.Sprintf("bench/%s/%d", prefix, i)
	}
	return ks
}

func benchOpen(tb testing.TB, ctx context.Context, u string) *blob.Bucket {
	tb.Helper()
	b, err := providers.OpenBucket(ctx, u)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// benchCheckedWrite writes one object outside the timed loop and reads it
// back from check, which may be the bucket written or the side it should
// have landed on.
func benchCheckedWrite(tb testing.TB, ctx context.Context, b, check *blob.Bucket, key string, data []byte) {
	tb.Helper()
	if err := b.WriteAll(ctx, key, data, benchWriteOpts); err != nil {
		tb.Fatal(err)
	}
	got, err := check.ReadAll(ctx, key)
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		tb.Fatalf("read back %d bytes that differ from the %d written", len(got), len(data))
	}
}

// benchRun runs a sub-benchmark and then checks that every goroutine it
// started has ended: its emulators are closed, which drops the clients'
// idle connections, and its buckets are closed.
func benchRun(b *testing.B, name string, fn func(b *testing.B)) {
	b.Helper()
	before := runtime.NumGoroutine()
	b.Run(name, fn)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			b.Errorf("%s: %d goroutines left running after it (%d before); the first of them:\n%s",
				name, runtime.NumGoroutine()-before, before, benchTrim(string(buf), 40))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func benchTrim(s string, lines int) string {
	ls := strings.SplitN(s, "\n", lines+1)
	if len(ls) > lines {
		ls = ls[:lines]
	}
	return strings.Join(ls, "\n")
}

// BenchmarkWriteWhilePrimaryHangs writes 1 KiB objects through a failover
// bucket in Redirect mode whose primary, an S3 emulator, accepts requests
// and never answers them; the secondary is a GCS emulator. Both sides try
// each call once with a 200ms attempt deadline.
//
//   - first: the write that finds the primary hanging, on a fresh bucket
//     whose breaker is closed. It waits out the primary's attempt deadline
//     and lands on the secondary; x-attempt-timeout is ns/op over that
//     deadline. Opening and closing the bucket are not timed.
//   - breaker-open: writes once the primary's breaker is open; they go
//     straight to the secondary. x-secondary is the ratio to the same
//     number of writes to the secondary alone, interleaved in blocks
//     through the same run.
//   - secondary-alone: the same writes to the GCS emulator bucket on its
//     own, the baseline.
func BenchmarkWriteWhilePrimaryHangs(b *testing.B) {
	benchRun(b, "first", benchHangFirst)
	benchRun(b, "breaker-open", benchHangBreakerOpen)
	benchRun(b, "secondary-alone", benchHangSecondaryAlone)
}

func benchHangFirst(b *testing.B) {
	ctx := context.Background()
	pr, sec := benchStartS3(b), benchStartGCS(b)
	pr.srv.Set(emulators.Hang)
	// The default breaker trips after 5 outages in a row: one write leaves
	// it closed.
	u := failoverURL(pr.url, sec.url, "mode=redirect", "reconcile=false")
	check := benchOpen(b, ctx, sec.url)
	defer func() { _ = check.Close() }()
	data := benchPayload()
	const key = "bench/first"

	b.ReportAllocs()
	b.SetBytes(benchSize)
	b.StopTimer()
	for range b.N {
		fb := benchOpen(b, ctx, u)
		var f *failoverblob.Failover
		if !fb.As(&f) {
			_ = fb.Close()
			b.Fatal("not a failover bucket")
		}
		requests := pr.srv.Requests()
		b.StartTimer()
		err := fb.WriteAll(ctx, key, data, benchWriteOpts)
		b.StopTimer()
		st := f.Status()
		_ = fb.Close()
		if err != nil {
			b.Fatal(err)
		}
		if pr.srv.Requests() == requests {
			b.Fatal("the write did not reach the hung primary")
		}
		if st.Primary.State != circuit.StateClosed {
			b.Fatalf("the primary's breaker is %s after one write; the benchmark wants it closed", st.Primary.State)
		}
	}
	got, err := check.ReadAll(ctx, key)
	if err != nil || !bytes.Equal(got, data) {
		b.Fatalf("the write did not land on the secondary: %d bytes, %v", len(got), err)
	}
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(benchAttemptTimeout), "x-attempt-timeout")
}

func benchHangBreakerOpen(b *testing.B) {
	ctx := context.Background()
	pr, sec := benchStartS3(b), benchStartGCS(b)
	pr.srv.Set(emulators.Hang)
	fb := benchOpen(b, ctx, failoverURL(pr.url, sec.url, "mode=redirect", "reconcile=false",
		"breaker_failures=1", "breaker_timeout=10m"))
	defer func() { _ = fb.Close() }()
	raw := benchOpen(b, ctx, sec.url)
	defer func() { _ = raw.Close() }()
	var f *failoverblob.Failover
	if !fb.As(&f) {
		b.Fatal("not a failover bucket")
	}
	data := benchPayload()

	// Trip the primary's breaker; the write lands on the secondary. Then
	// one write each way warms both clients' connections.
	benchCheckedWrite(b, ctx, fb, raw, "bench/trip", data)
	if st := f.Status().Primary.State; st != circuit.StateOpen {
		b.Fatalf("the primary's breaker is %s after a write to the hung primary; want open", st)
	}
	benchCheckedWrite(b, ctx, fb, raw, "bench/warm", data)
	benchCheckedWrite(b, ctx, raw, raw, "bench/warm-raw", data)
	requests := pr.srv.Requests()

	fkeys, rkeys := benchKeys("breaker-open"), benchKeys("secondary")
	// Blocks of writes to the secondary alone are interleaved with the
	// timed blocks, so that both see the same conditions.
	const block = 16
	var alone time.Duration
	b.ReportAllocs()
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(block, b.N-i)
		b.StopTimer()
		start := time.Now()
		for j := range n {
			if err := raw.WriteAll(ctx, rkeys[(i+j)%len(rkeys)], data, benchWriteOpts); err != nil {
				b.Fatal(err)
			}
		}
		alone += time.Since(start)
		b.StartTimer()
		for j := range n {
			if err := fb.WriteAll(ctx, fkeys[(i+j)%len(fkeys)], data, benchWriteOpts); err != nil {
				b.Fatal(err)
			}
		}
		i += n
	}
	b.StopTimer()
	if got := pr.srv.Requests() - requests; got != 0 {
		b.Fatalf("%d requests reached the primary while its breaker was open", got)
	}
	b.ReportMetric(float64(b.Elapsed())/float64(alone), "x-secondary")
}

func benchHangSecondaryAlone(b *testing.B) {
	ctx := context.Background()
	sec := benchStartGCS(b)
	raw := benchOpen(b, ctx, sec.url)
	defer func() { _ = raw.Close() }()
	benchWrites(b, ctx, raw, benchKeys("secondary"))
}

// benchWrites times 1 KiB writes to bkt, after one checked write.
func benchWrites(b *testing.B, ctx context.Context, bkt *blob.Bucket, keys []string) {
	data := benchPayload()
	benchCheckedWrite(b, ctx, bkt, bkt, keys[0], data)
	b.ReportAllocs()
	b.SetBytes(benchSize)
	i := 0
	for b.Loop() {
		if err := bkt.WriteAll(ctx, keys[i%len(keys)], data, benchWriteOpts); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGCSSmallWrite writes 1 KiB objects to the GCS emulator:
//
//   - client=providers: a bucket opened by providers, with the small-write
//     path (an upload buffer sized to the object).
//   - client=providers-no-small-write: the same with Transport.SmallWrite
//     = -1, so the client's 16 MiB chunk buffer is used.
//   - client=gcsblob: gocloud's gcsblob on a stock storage client, which
//     uses the 16 MiB chunk buffer too.
//
// B/op shows the buffer each write allocates.
func BenchmarkGCSSmallWrite(b *testing.B) {
	ctx := context.Background()
	clients := []struct {
		name string
		open func(b *testing.B, srv *emulators.Server) *blob.Bucket
	}{
		{"providers", func(b *testing.B, srv *emulators.Server) *blob.Bucket {
			return benchOpen(b, ctx, gcsURL(srv))
		}},
		{"providers-no-small-write", func(b *testing.B, srv *emulators.Server) *blob.Bucket {
			bkt, err := providers.NewMux(providers.Transport{SmallWrite: -1}).OpenBucket(ctx, gcsURL(srv))
			if err != nil {
				b.Fatal(err)
			}
			return bkt
		}},
		{"gcsblob", func(b *testing.B, srv *emulators.Server) *blob.Bucket {
			c, err := storage.NewClient(ctx, option.WithEndpoint(srv.URL()+"/storage/v1/"), option.WithoutAuthentication())
			if err != nil {
				b.Fatal(err)
			}
			// The bucket does not own a client it is given.
			b.Cleanup(func() { _ = c.Close() })
			bkt, err := gcsblob.OpenBucket(ctx, nil, testBucket, &gcsblob.Options{Client: c})
			if err != nil {
				b.Fatal(err)
			}
			return bkt
		}},
	}
	for _, c := range clients {
		benchRun(b, "client="+c.name, func(b *testing.B) {
			srv := emulators.StartGCS(b, testBucket)
			bkt := c.open(b, srv)
			defer func() { _ = bkt.Close() }()
			benchWrites(b, ctx, bkt, benchKeys("small-write"))
		})
	}
}

// BenchmarkEmulatorPutGet writes an object with WriteAll and reads it back
// with ReadAll over the emulators: on the S3 emulator's bucket alone
// (mode=raw), and on a failover bucket with that bucket as primary and a
// GCS emulator's as secondary, in each mode, both healthy, with the default
// Transport. It is the root package's BenchmarkPutGet over the wire, and
// like it reports the process's CPU time per operation (cpu-ns/op; the
// emulators' work included); compare the modes within a size:
//
//	go test -run '^$' -bench EmulatorPutGet -benchmem -count 6 ./providers > putget.txt
//	benchstat -col /mode putget.txt
func BenchmarkEmulatorPutGet(b *testing.B) {
	ctx := context.Background()
	sizes := []struct {
		name string
		n    int
	}{
		{"1KiB", 1 << 10},
		{"1MiB", 1 << 20},
	}
	for _, sz := range sizes {
		for _, mode := range []string{"raw", "redirect", "mirror"} {
			benchRun(b, fmt.Sprintf("size=%s/mode=%s", sz.name, mode), func(b *testing.B) {
				pr := s3URL(emulators.StartS3(b, testBucket))
				sec := gcsURL(emulators.StartGCS(b, testBucket))
				u := pr
				if mode != "raw" {
					u = failoverURL(pr, sec, "mode="+mode, "reconcile=false")
				}
				bkt := benchOpen(b, ctx, u)
				defer func() { _ = bkt.Close() }()
				benchPutGet(b, ctx, bkt, sz.n)
			})
		}
	}
}

// benchPutGet times WriteAll and ReadAll of size bytes on bkt, after one
// checked round trip.
func benchPutGet(b *testing.B, ctx context.Context, bkt *blob.Bucket, size int) {
	data := bytes.Repeat(benchPayload(), size/benchSize)
	keys := benchKeys("put-get")
	benchCheckedWrite(b, ctx, bkt, bkt, keys[0], data)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	cputime.Report(b, func() {
		i := 0
		for b.Loop() {
			key := keys[i%len(keys)]
			i++
			if err := bkt.WriteAll(ctx, key, data, benchWriteOpts); err != nil {
				b.Fatal(err)
			}
			got, err := bkt.ReadAll(ctx, key)
			if err != nil {
				b.Fatal(err)
			}
			if len(got) != size {
				b.Fatalf("read %d bytes, want %d", len(got), size)
			}
		}
	})
}
