package providers_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob/internal/emulators"
)

// BenchmarkMirrorWrite writes objects through a failover bucket in Mirror
// mode over an S3 emulator (primary) and a GCS emulator (secondary), both
// healthy, and the same writes to each side's bucket alone, in the same
// run: blocks of writes to the S3 bucket and to the GCS bucket (clocked,
// not timed) alternate with the timed blocks of Mirror-mode writes. A
// Mirror-mode write has to reach both sides, so the slower of the two
// written alone is its floor when it writes them at once. It reports
//
//   - x-slower-raw: the Mirror-mode writes' time over the slower side's;
//   - s3-ns/write and gcs-ns/write: each side's time alone per write.
//
// Over loopback (link=loopback) the in-process emulators are bound by CPU,
// not by latency; over link=1ms-each-way each side is reached through a TCP
// proxy that delays every chunk by 1 ms each way, as a request to a cloud
// waits on the network.
//
//	go test -run '^$' -bench MirrorWrite -benchmem -count 6 ./providers
func BenchmarkMirrorWrite(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1KiB", 1 << 10}, {"1MiB", 1 << 20}} {
		for _, link := range outageLinks {
			benchRun(b, fmt.Sprintf("size=%s/link=%s", size.name, link.name), func(b *testing.B) {
				benchMirrorWrite(b, size.n, link.latency)
			})
		}
	}
}

func benchMirrorWrite(b *testing.B, size int, latency time.Duration) {
	ctx := context.Background()
	pr := linkTo(b, benchStartS3(b), latency)
	sec := linkTo(b, benchStartGCS(b), latency)
	s3, gcs := benchOpen(b, ctx, pr), benchOpen(b, ctx, sec)
	defer func() { _ = s3.Close(); _ = gcs.Close() }()
	mirror := benchOpen(b, ctx, failoverURL(pr, sec, "mode=mirror", "reconcile=false"))
	defer func() { _ = mirror.Close() }()
	data := bytes.Repeat(benchPayload(), size/benchSize)
	keys := benchKeys("mirror")
	// One checked write each way warms the clients' connections.
	benchCheckedWrite(b, ctx, s3, s3, keys[0], data)
	benchCheckedWrite(b, ctx, gcs, gcs, keys[0], data)
	benchCheckedWrite(b, ctx, mirror, s3, keys[0], data)
	benchCheckedWrite(b, ctx, mirror, gcs, keys[0], data)
	write := func(bkt *blob.Bucket, i int) {
		if err := bkt.WriteAll(ctx, keys[i%len(keys)], data, benchWriteOpts); err != nil {
			b.Fatal(err)
		}
	}
	const block = 16
	var alone [2]time.Duration
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(block, b.N-i)
		b.StopTimer()
		for s, bkt := range []*blob.Bucket{s3, gcs} {
			start := time.Now()
			for j := range n {
				write(bkt, i+j)
			}
			alone[s] += time.Since(start)
		}
		b.StartTimer()
		for j := range n {
			write(mirror, i+j)
		}
		i += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed())/float64(max(alone[0], alone[1])), "x-slower-raw")
	b.ReportMetric(float64(alone[0].Nanoseconds())/float64(b.N), "s3-ns/write")
	b.ReportMetric(float64(alone[1].Nanoseconds())/float64(b.N), "gcs-ns/write")
}

// linkTo returns the URL of e's bucket as reached over a link with latency
// (none: directly), with the benchmarks' attempt deadline.
func linkTo(b *testing.B, e emulator, latency time.Duration) string {
	if latency == 0 {
		return e.url
	}
	p := emulators.NewProxy(b, e.srv.Addr())
	p.Latency(latency)
	p.Set(emulators.ProxySlow)
	u, err := url.Parse(e.url)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("endpoint", p.URL())
	u.RawQuery = q.Encode()
	return u.String()
}
