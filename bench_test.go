package failoverblob_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/internal/cputime"
)

// Benchmarks.
//
// Sub-benchmark names are key=value pairs so that benchstat can put the
// variants side by side and print the ratios directly, for example:
//
//	go test -run '^$' -bench BenchmarkPutGet -benchmem -count 5 . > putget.txt
//	benchstat -col /mode putget.txt
//
// gives one row per size with the raw bucket as the base column and the
// redirect and mirror columns as ratios against it. BenchmarkPutGet also
// reports the process's CPU time per operation (cpu-ns/op), which moves
// less than the wall time when other processes share the machine.

// benchPattern fills p with a repeating, non-zero pattern.
func benchPattern(p []byte) {
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
}

// openBenchBucket returns the bucket a benchmark writes to: a bare memblob
// bucket for mode "raw", or a failover bucket in the given mode over two
// healthy memblob buckets.
func openBenchBucket(b *testing.B, mode string) *blob.Bucket {
	b.Helper()
	if mode == "raw" {
		bkt := memblob.OpenBucket(nil)
		b.Cleanup(func() { _ = bkt.Close() })
		return bkt
	}
	opts := &failoverblob.Options{Mode: failoverblob.Redirect, SpoolDir: b.TempDir()}
	if mode == "mirror" {
		opts.Mode = failoverblob.Mirror
	}
	f, err := failoverblob.New(context.Background(), memblob.OpenBucket(nil), memblob.OpenBucket(nil), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	return f.Bucket()
}

// BenchmarkPutGet writes an object with WriteAll and reads it back with
// ReadAll, on a bare memblob bucket (mode=raw) and on a failover bucket over
// two healthy memblob buckets in each mode. Compare the modes within a size.
func BenchmarkPutGet(b *testing.B) {
	sizes := []struct {
		name string
		n    int
	}{
		{"1KiB", 1 << 10},
		{"1MiB", 1 << 20},
	}
	for _, sz := range sizes {
		for _, mode := range []string{"raw", "redirect", "mirror"} {
			b.Run(fmt.Sprintf("size=%s/mode=%s", sz.name, mode), func(b *testing.B) {
				benchPutGet(b, openBenchBucket(b, mode), sz.n)
			})
		}
	}
}

func benchPutGet(b *testing.B, bkt *blob.Bucket, size int) {
	ctx := context.Background()
	data := make([]byte, size)
	benchPattern(data)
	// A small rotating key set: objects are overwritten, so the buckets'
	// size stays constant however long the benchmark runs.
	var keys [8]string
	for i := range keys {
		keys[i] = fmt.Sprintf("bench/put-get/%d", i)
	}

	// One checked round trip, outside the timed loop.
	if err := bkt.WriteAll(ctx, keys[0], data, nil); err != nil {
		b.Fatal(err)
	}
	got, err := bkt.ReadAll(ctx, keys[0])
	if err != nil {
		b.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		b.Fatalf("read back %d bytes that differ from the %d written", len(got), len(data))
	}

	b.ReportAllocs()
	b.SetBytes(int64(size))
	cputime.Report(b, func() {
		i := 0
		for b.Loop() {
			key := keys[i%len(keys)]
			i++
			if err := bkt.WriteAll(ctx, key, data, nil); err != nil {
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

const (
	streamSize  = 256 << 20
	streamChunk = 32 << 10
	mib         = 1 << 20
)

// streamMD5 is the MD5 of the stream the streamed-write benchmarks write:
// streamSize/streamChunk copies of one chunk.
var streamMD5 = sync.OnceValue(func() []byte {
	chunk := make([]byte, streamChunk)
	benchPattern(chunk)
	h := md5.New()
	for range streamSize / streamChunk {
		h.Write(chunk)
	}
	return h.Sum(nil)
})

// heapSampler polls the bytes in heap objects (live, or dead and not yet
// swept) every millisecond and keeps the peak.
type heapSampler struct {
	stop    chan struct{}
	done    chan struct{}
	samples []metrics.Sample
	base    uint64 // bytes in heap objects when sampling started
	peak    uint64 // the most seen since; owned by the sampling goroutine until Stop
}

const heapObjectsMetric = "/memory/classes/heap/objects:bytes"

func readHeapObjects(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		samples: []metrics.Sample{{Name: heapObjectsMetric}},
	}
	h.base = readHeapObjects(h.samples)
	h.peak = h.base
	go func() {
		defer close(h.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := readHeapObjects(h.samples); v > h.peak {
				h.peak = v
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// Stop stops the sampler, waits for it, and returns the peak in bytes.
func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	<-h.done
	if v := readHeapObjects(h.samples); v > h.peak {
		h.peak = v
	}
	return h.peak
}

// BenchmarkStreamedWrite256MiB streams 256 MiB, 32 KiB per Write, into a
// bucket backed by files, and reports the peak heap during the write: the
// write must not hold the object in memory. spool=raw is a bare fileblob
// bucket; the others are a failover bucket in Redirect mode over two fileblob
// buckets with that much SpoolMemory. With fault=primary-at-100MiB the
// primary fails once 100 MiB have reached it, so the spool (memory, then its
// temporary file) is replayed to the secondary and the rest of the stream
// goes there.
//
// Run it with -benchtime 1x: one iteration writes 256 MiB.
func BenchmarkStreamedWrite256MiB(b *testing.B) {
	type variant struct {
		spool string
		mem   int64 // SpoolMemory; 0 for raw
		fault bool
	}
	variants := []variant{{spool: "raw"}}
	for _, m := range []int64{1 * mib, 4 * mib, 16 * mib} {
		variants = append(variants, variant{spool: fmt.Sprintf("%dMiB", m/mib), mem: m})
	}
	for _, m := range []int64{1 * mib, 4 * mib, 16 * mib} {
		variants = append(variants, variant{spool: fmt.Sprintf("%dMiB", m/mib), mem: m, fault: true})
	}
	// The first 256 MiB written to a fresh directory is markedly slower
	// (the file system and page cache warming up); pay that here, untimed,
	// so it does not land on whichever variant runs first.
	warmStreamedWrite(b)
	for _, v := range variants {
		fault := "none"
		if v.fault {
			fault = "primary-at-100MiB"
		}
		b.Run(fmt.Sprintf("spool=%s/fault=%s", v.spool, fault), func(b *testing.B) {
			benchStreamedWrite(b, v.spool == "raw", v.mem, v.fault)
		})
	}
}

// warmStreamedWrite writes the benchmark's stream once to a bare fileblob
// bucket and removes it.
func warmStreamedWrite(b *testing.B) {
	ctx := context.Background()
	bkt := openFileBucket(b)
	defer func() { _ = bkt.Close() }()
	chunk := make([]byte, streamChunk)
	benchPattern(chunk)
	w, err := bkt.NewWriter(ctx, "warm-up", &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		b.Fatal(err)
	}
	for range streamSize / streamChunk {
		if _, err := w.Write(chunk); err != nil {
			_ = w.Close()
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	if err := bkt.Delete(ctx, "warm-up"); err != nil {
		b.Fatal(err)
	}
	_ = streamMD5()
}

// streamRig is what one iteration of the streamed write needs.
type streamRig struct {
	bucket    *blob.Bucket // what the benchmark writes to
	f         *failoverblob.Failover
	primary   *blob.Bucket // the primary's fileblob bucket, under any fault
	secondary *blob.Bucket
	close     func()
}

func openFileBucket(b *testing.B) *blob.Bucket {
	b.Helper()
	bkt, err := fileblob.OpenBucket(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	return bkt
}

func newStreamRig(b *testing.B, raw bool, spoolMem int64, fault bool) *streamRig {
	b.Helper()
	if raw {
		bkt := openFileBucket(b)
		return &streamRig{bucket: bkt, primary: bkt, close: func() { _ = bkt.Close() }}
	}
	pr, sec := openFileBucket(b), openFileBucket(b)
	side := pr
	if fault {
		var in *failovertest.Injector
		side, in = failovertest.Wrap(pr, nil)
		in.Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 100 * mib})
	}
	f, err := failoverblob.New(context.Background(), side, sec, &failoverblob.Options{
		Mode:        failoverblob.Redirect,
		SpoolMemory: spoolMem,
		SpoolDir:    b.TempDir(),
	})
	if err != nil {
		b.Fatal(err)
	}
	return &streamRig{bucket: f.Bucket(), f: f, primary: pr, secondary: sec, close: func() {
		_ = f.Close()
		_ = pr.Close() // a no-op unless the fault wrapper kept it open
	}}
}

func benchStreamedWrite(b *testing.B, raw bool, spoolMem int64, fault bool) {
	ctx := context.Background()
	chunk := make([]byte, streamChunk)
	benchPattern(chunk)
	wantMD5 := streamMD5()
	const key = "bench/streamed"

	b.ReportAllocs()
	b.SetBytes(streamSize)
	var peak, base, peakOverBase float64
	b.StopTimer()
	for range b.N {
		rig := newStreamRig(b, raw, spoolMem, fault)

		runtime.GC()
		h := startHeapSampler()
		baseline := h.base
		b.StartTimer()
		w, err := rig.bucket.NewWriter(ctx, key, &blob.WriterOptions{ContentType: "application/octet-stream"})
		if err != nil {
			b.Fatal(err)
		}
		for range streamSize / streamChunk {
			if _, err := w.Write(chunk); err != nil {
				_ = w.Close()
				b.Fatal(err)
			}
		}
		err = w.Close()
		b.StopTimer()
		top := h.Stop()
		if err != nil {
			b.Fatal(err)
		}

		// The object is whole, and where it should be.
		attrs, err := rig.bucket.Attributes(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		if attrs.Size != streamSize || !bytes.Equal(attrs.MD5, wantMD5) {
			b.Fatalf("wrote %d bytes with MD5 %x, want %d with MD5 %x", attrs.Size, attrs.MD5, streamSize, wantMD5)
		}
		if !raw {
			holder, other := rig.primary, rig.secondary
			if fault {
				holder, other = other, holder
			}
			if ok, err := holder.Exists(ctx, key); err != nil || !ok {
				b.Fatalf("object not on the side that should hold it: exists=%v, err=%v", ok, err)
			}
			if ok, err := other.Exists(ctx, key); err != nil || ok {
				b.Fatalf("object on the side that should not hold it: exists=%v, err=%v", ok, err)
			}
		}
		rig.close()

		peak = max(peak, float64(top)/mib)
		base = max(base, float64(baseline)/mib)
		peakOverBase = max(peakOverBase, float64(top-baseline)/mib)
	}
	b.ReportMetric(peak, "peak-heap-MiB")
	b.ReportMetric(peakOverBase, "peak-heap-over-baseline-MiB")
	b.ReportMetric(base, "baseline-heap-MiB")
}
