package failoverblob_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// The metrics and spans the README documents, as a failover bucket over
// fault-injected memblob sides reports them to the OpenTelemetry SDK.

// sdk is an SDK meter provider read by hand and an SDK tracer provider
// that keeps its spans in memory.
type sdk struct {
	mp     *sdkmetric.MeterProvider
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
	spans  *tracetest.InMemoryExporter
}

func newSDK(t *testing.T) sdk {
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewInMemoryExporter()
	p := sdk{
		mp: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), reader: reader,
		tp: sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans)), spans: spans,
	}
	t.Cleanup(func() {
		assert.NoError(t, p.mp.Shutdown(context.Background()))
		assert.NoError(t, p.tp.Shutdown(context.Background()))
	})
	return p
}

// telemetryRig is a rig whose bucket reports to an sdk.
type telemetryRig struct {
	*rig
	sdk
	caller trace.Tracer // the caller's own tracer, for the parents of the bucket's spans
}

func newTelemetryRig(t *testing.T, opts failoverblob.Options) *telemetryRig {
	t.Helper()
	p := newSDK(t)
	opts.MeterProvider, opts.TracerProvider = p.mp, p.tp
	return &telemetryRig{rig: newRig(t, opts), sdk: p, caller: p.tp.Tracer("caller")}
}

// metrics collects what the bucket reports now.
func (r *telemetryRig) metrics() metricSnapshot {
	r.t.Helper()
	return collect(r.t, r.reader)
}

type metricSnapshot struct {
	t  *testing.T
	rm metricdata.ResourceMetrics
}

func collect(t *testing.T, reader *sdkmetric.ManualReader) metricSnapshot {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	return metricSnapshot{t: t, rm: rm}
}

// value returns the value of the data point of metric name whose attributes
// are attrs, exactly: a sum's or a gauge's value, a histogram's count. A
// metric or point that was not reported is 0.
func (m metricSnapshot) value(name string, attrs ...attribute.KeyValue) float64 {
	want := attribute.NewSet(attrs...)
	for _, sm := range m.rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != name {
				continue
			}
			if v, ok := pointValue(mt.Data, want); ok {
				return v
			}
		}
	}
	return 0
}

func pointValue(data metricdata.Aggregation, want attribute.Set) (float64, bool) {
	switch d := data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if p.Attributes.Equals(&want) {
				return float64(p.Value), true
			}
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			if p.Attributes.Equals(&want) {
				return float64(p.Value), true
			}
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			if p.Attributes.Equals(&want) {
				return p.Value, true
			}
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			if p.Attributes.Equals(&want) {
				return float64(p.Count), true
			}
		}
	}
	return 0, false
}

// metricCase is one expected value of a metric.
type metricCase struct {
	name  string
	attrs []attribute.KeyValue
	want  float64
}

func (m metricSnapshot) check(when string, cases []metricCase) {
	m.t.Helper()
	for _, c := range cases {
		assert.InDelta(m.t, c.want, m.value(c.name, c.attrs...), 1e-9, "%s: %s %v", when, c.name, c.attrs)
	}
}

func calls(side, op, outcome string) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("side", side), attribute.String("op", op), attribute.String("outcome", outcome)}
}

func sideOp(side, op string) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("side", side), attribute.String("op", op)}
}

func failover(op, reason string) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("op", op), attribute.String("reason", reason)}
}

func sideAttr(side string) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("side", side)}
}

func action(a string) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("action", a)}
}

func where(w string) []attribute.KeyValue { return []attribute.KeyValue{attribute.String("where", w)} }

// spanAttrs returns a span's attributes by key, as strings.
func spanAttrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// A primary outage in Redirect mode, watched through the metrics: calls and
// their outcomes, failovers and their reasons, the breaker, the journal and
// its oldest age (in virtual time), then the reconciler's repairs once the
// primary is back.
func TestTelemetryRedirectOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newTelemetryRig(t, failoverblob.Options{})
		require.NoError(t, r.write("before", "b"))
		r.faults[primary].Outage(nil)
		require.NoError(t, r.write("k1", "12345")) // the primary fails, the write is redirected
		require.NoError(t, r.write("k2", "678"))   // the breaker is open: redirected at once
		_, err := r.b.ReadAll(r.ctx, "before")     // not on the secondary (a look at its attributes): unavailable
		require.ErrorIs(t, err, failoverblob.ErrUnavailable)

		r.metrics().check("during the outage", []metricCase{
			{"failoverblob.side.calls", calls("primary", "write", "ok"), 1},
			{"failoverblob.side.calls", calls("primary", "write", "outage"), 1},
			{"failoverblob.side.calls", calls("primary", "write", "rejected-by-breaker"), 1},
			{"failoverblob.side.calls", calls("secondary", "write", "ok"), 2},
			{"failoverblob.side.calls", calls("primary", "read", "rejected-by-breaker"), 1},
			{"failoverblob.side.calls", calls("secondary", "attributes", "answer"), 1},
			{"failoverblob.side.duration", sideOp("primary", "write"), 2}, // a refused call has no duration
			{"failoverblob.side.duration", sideOp("secondary", "write"), 2},
			{"failoverblob.failovers", failover("write", "outage"), 1},
			{"failoverblob.failovers", failover("write", "rejected-by-breaker"), 1},
			{"failoverblob.failovers", failover("read", "rejected-by-breaker"), 1},
			{"failoverblob.breaker.state", sideAttr("primary"), 2},
			{"failoverblob.breaker.state", sideAttr("secondary"), 0},
			{"failoverblob.journal.pending", nil, 2},
			{"failoverblob.journal.oldest_age", nil, 0},
			{"failoverblob.spool.bytes", where("memory"), 0},
		})
		time.Sleep(10 * time.Second)
		r.metrics().check("10s later", []metricCase{
			{"failoverblob.journal.oldest_age", nil, 10},
		})
		time.Sleep(time.Minute) // the breaker's timeout: half-open
		r.metrics().check("after the breaker's timeout", []metricCase{
			{"failoverblob.breaker.state", sideAttr("primary"), 1},
		})

		r.faults[primary].Heal()
		rep, err := r.f.Drain(r.ctx)
		require.NoError(t, err)
		require.Equal(t, 0, rep.Remaining)
		r.metrics().check("after the drain", []metricCase{
			{"failoverblob.reconcile.objects", action("copied"), 2},
			{"failoverblob.reconcile.objects", action("cleaned"), 2},
			{"failoverblob.reconcile.bytes", nil, 8},
			{"failoverblob.journal.pending", nil, 0},
			{"failoverblob.journal.oldest_age", nil, 0},
			{"failoverblob.breaker.state", sideAttr("primary"), 0},
		})
	})
}

// Each call to a side has a span, a child of the caller's, named by side
// and op, that says whether it was a failover (and why) and how it ended.
func TestTelemetrySpans(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newTelemetryRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		ctx, caller := r.caller.Start(r.ctx, "caller")
		require.NoError(t, r.b.WriteAll(ctx, "secret-key", []byte("v"), nil))
		require.NoError(t, r.b.WriteAll(ctx, "secret-key", []byte("w"), nil))
		caller.End()

		type want struct {
			name, outcome, failover, reason string
			code                            codes.Code
		}
		wants := []want{
			{"failoverblob.primary.write", "outage", "false", "", codes.Error},
			{"failoverblob.secondary.write", "ok", "true", "outage", codes.Unset},
			{"failoverblob.primary.write", "rejected-by-breaker", "false", "", codes.Error},
			{"failoverblob.secondary.write", "ok", "true", "rejected-by-breaker", codes.Unset},
		}
		var got []want
		for _, s := range r.spans.GetSpans().Snapshots() {
			if s.Name() == "caller" {
				continue
			}
			a := spanAttrs(s)
			got = append(got, want{s.Name(), a["outcome"], a["failover"], a["reason"], s.Status().Code})
			assert.Equal(t, caller.SpanContext().SpanID(), s.Parent().SpanID(), "%s: parent", s.Name())
			assert.Equal(t, caller.SpanContext().TraceID(), s.SpanContext().TraceID(), "%s: trace", s.Name())
			for _, kv := range s.Attributes() {
				assert.NotContains(t, kv.Value.Emit(), "secret-key", "%s: attribute %s names the key", s.Name(), kv.Key)
			}
			assert.NotContains(t, s.Status().Description, "secret-key", "%s: status names the key", s.Name())
		}
		assert.Equal(t, wants, got)
	})
}

// Each kind of call that moves to the other side while the primary is down
// counts one failover of its op, and its call to the secondary says so in
// its span.
func TestTelemetryFailoverByOp(t *testing.T) {
	cases := []struct {
		op   string
		mode failoverblob.Mode
		call func(r *rig) error
	}{
		{"read", failoverblob.Mirror, func(r *rig) error { _, err := r.b.ReadAll(r.ctx, "k"); return err }},
		{"attributes", failoverblob.Mirror, func(r *rig) error { _, err := r.b.Attributes(r.ctx, "k"); return err }},
		{"download", failoverblob.Mirror, func(r *rig) error { return r.b.Download(r.ctx, "k", &memWriterAt{}, parallel) }},
		{"list", failoverblob.Mirror, func(r *rig) error { _, _, err := r.b.ListPage(r.ctx, blob.FirstPageToken, 10, nil); return err }},
		{"write", failoverblob.Redirect, func(r *rig) error { return r.write("k", "new") }},
		{"delete", failoverblob.Redirect, func(r *rig) error { return r.b.Delete(r.ctx, "k") }},
	}
	for _, c := range cases {
		t.Run(c.op, func(t *testing.T) {
			r := newTelemetryRig(t, failoverblob.Options{Mode: c.mode})
			require.NoError(t, r.write("k", "v"))
			r.spans.Reset()
			r.faults[primary].Outage(nil)
			require.NoError(t, c.call(r.rig))
			r.metrics().check(c.op, []metricCase{
				{"failoverblob.failovers", failover(c.op, "outage"), 1},
				{"failoverblob.side.calls", calls("primary", c.op, "outage"), 1},
			})
			var failedOver int
			for _, s := range r.spans.GetSpans().Snapshots() {
				if a := spanAttrs(s); a["failover"] == "true" {
					failedOver++
					assert.Equal(t, "failoverblob.secondary."+c.op, s.Name())
					assert.Equal(t, "outage", a["reason"], "%s: reason", s.Name())
				}
			}
			assert.Equal(t, 1, failedOver, "spans marked as a failover")
		})
	}
}

// A Redirect-mode write keeps a replay spool while it streams to the
// primary: the spool.bytes gauge shows it in memory and on disk, and back
// to zero once the write is done.
func TestTelemetrySpoolBytes(t *testing.T) {
	r := newTelemetryRig(t, failoverblob.Options{SpoolMemory: 100, SpoolDir: t.TempDir()})
	w, err := r.b.NewWriter(r.ctx, "k", &blob.WriterOptions{ContentType: "text/plain"})
	require.NoError(t, err)
	_, err = w.Write([]byte(strings.Repeat("x", 150)))
	require.NoError(t, err)
	r.metrics().check("while writing", []metricCase{
		{"failoverblob.spool.bytes", where("memory"), 100},
		{"failoverblob.spool.bytes", where("disk"), 50},
	})
	require.NoError(t, w.Close())
	r.metrics().check("after Close", []metricCase{
		{"failoverblob.spool.bytes", where("memory"), 0},
		{"failoverblob.spool.bytes", where("disk"), 0},
	})
}

// Nil providers mean the global ones.
func TestTelemetryGlobalProviders(t *testing.T) {
	p := newSDK(t)
	otel.SetMeterProvider(p.mp)
	otel.SetTracerProvider(p.tp)
	t.Cleanup(func() {
		// The globals cannot go back to their defaults; no-op providers
		// report nothing, as the defaults do.
		otel.SetMeterProvider(metricnoop.NewMeterProvider())
		otel.SetTracerProvider(tracenoop.NewTracerProvider())
	})

	// Buckets other tests left open report to the global provider too: an
	// outage of the primary marks this one's calls.
	r := newRig(t, failoverblob.Options{})
	r.faults[primary].Outage(nil)
	require.NoError(t, r.write("k", "v"))
	collect(t, p.reader).check("with global providers", []metricCase{
		{"failoverblob.side.calls", calls("primary", "write", "outage"), 1},
		{"failoverblob.failovers", failover("write", "outage"), 1},
	})
	var names []string
	for _, s := range p.spans.GetSpans().Snapshots() {
		names = append(names, s.Name())
	}
	assert.Contains(t, names, "failoverblob.secondary.write")
}

// Closing the bucket stops its gauges.
func TestTelemetryCloseStopsGauges(t *testing.T) {
	r := newTelemetryRig(t, failoverblob.Options{})
	r.faults[primary].Outage(nil)
	require.NoError(t, r.write("k", "v"))
	r.metrics().check("before Close", []metricCase{
		{"failoverblob.journal.pending", nil, 1},
		{"failoverblob.breaker.state", sideAttr("primary"), 2},
	})
	require.NoError(t, r.f.Close())
	for _, sm := range r.metrics().rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			switch mt.Name {
			case "failoverblob.journal.pending", "failoverblob.journal.oldest_age", "failoverblob.breaker.state", "failoverblob.spool.bytes":
				t.Errorf("%s reported after Close: %+v", mt.Name, mt.Data)
			}
		}
	}
}

// A caller's hook that refuses a write is an answer, counted as such.
func TestTelemetryHookIsAnAnswer(t *testing.T) {
	r := newTelemetryRig(t, failoverblob.Options{})
	errNo := errors.New("no")
	err := r.b.WriteAll(r.ctx, "k", []byte("v"), &blob.WriterOptions{BeforeWrite: func(func(any) bool) error { return errNo }})
	require.ErrorIs(t, err, errNo)
	r.metrics().check("after a refusing hook", []metricCase{
		{"failoverblob.side.calls", calls("primary", "write", "answer"), 1},
		{"failoverblob.failovers", failover("write", "outage"), 0},
		{"failoverblob.breaker.state", sideAttr("primary"), 0},
	})
}

// The verifier's repairs count as reconciled objects: a copy (and its
// bytes) in Mirror mode, a stale temporary copy removed in Redirect mode.
// One instance changes the bucket, so they are made at the first look
// (Settle < 0).
func TestTelemetryVerifyRepairs(t *testing.T) {
	t.Run("mirror", func(t *testing.T) {
		r := newTelemetryRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		require.NoError(t, r.write("a", "12345"))
		require.NoError(t, r.raw[secondary].Delete(r.ctx, "a"))
		rep, err := r.f.Verify(r.ctx, &failoverblob.VerifyOptions{Repair: true, Settle: -1})
		require.NoError(t, err)
		require.Equal(t, 1, rep.Repaired)
		r.metrics().check("after Verify", []metricCase{
			{"failoverblob.reconcile.objects", action("copied"), 1},
			{"failoverblob.reconcile.bytes", nil, 5},
		})
	})
	t.Run("redirect", func(t *testing.T) {
		r := newTelemetryRig(t, failoverblob.Options{})
		require.NoError(t, r.write("a", "12345"))
		require.NoError(t, r.raw[secondary].WriteAll(r.ctx, "a", []byte("12345"), &blob.WriterOptions{Metadata: attrsOf(t, r.rig, primary, "a")}))
		rep, err := r.f.Verify(r.ctx, &failoverblob.VerifyOptions{Repair: true, Settle: -1})
		require.NoError(t, err)
		require.Equal(t, 1, rep.Repaired)
		r.metrics().check("after Verify", []metricCase{
			{"failoverblob.reconcile.objects", action("cleaned"), 1},
			{"failoverblob.reconcile.objects", action("copied"), 0},
			{"failoverblob.reconcile.bytes", nil, 0},
		})
	})
}

// A signed URL for a key whose primary is down is signed by the secondary
// in Mirror mode: a failover of op signed_url. (memblob signs no URLs; the
// sides are fileblob buckets with a signer.)
func TestTelemetrySignedURLFailover(t *testing.T) {
	var sides [2]*blob.Bucket
	var faults [2]*failovertest.Injector
	for i := range sides {
		base, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{
			URLSigner: fileblob.NewURLSignerHMAC(&url.URL{Scheme: "https", Host: "example.com", Path: "/blob"}, []byte("secret")),
		})
		require.NoError(t, err)
		sides[i], faults[i] = failovertest.Wrap(base, nil)
	}
	p := newSDK(t)
	f, err := failoverblob.New(context.Background(), sides[0], sides[1], &failoverblob.Options{
		Mode: failoverblob.Mirror, Journal: journal.NewMemory(), MeterProvider: p.mp, TracerProvider: p.tp,
	})
	require.NoError(t, err)
	defer func() { assert.NoError(t, f.Close()) }()
	ctx := context.Background()
	require.NoError(t, f.Bucket().WriteAll(ctx, "k", []byte("v"), nil))
	faults[primary].Outage(nil)
	u, err := f.Bucket().SignedURL(ctx, "k", nil)
	require.NoError(t, err)
	collect(t, p.reader).check("after signing", []metricCase{
		{"failoverblob.failovers", failover("signed_url", "outage"), 1},
		{"failoverblob.side.calls", calls("secondary", "signed_url", "ok"), 1},
	})
	for _, s := range p.spans.GetSpans().Snapshots() {
		a := spanAttrs(s)
		for _, kv := range s.Attributes() {
			assert.NotContains(t, kv.Value.Emit(), "example.com", "%s: attribute %s carries the URL", s.Name(), kv.Key)
		}
		if s.Name() == "failoverblob.secondary.signed_url" {
			assert.Equal(t, "true", a["failover"])
		}
	}
	assert.Contains(t, u, "example.com")
}

// BenchmarkPutGetTelemetry is BenchmarkPutGet's Redirect mode with the
// bucket's telemetry going to the global providers as a program that sets
// none has them (telemetry=global), to no-op providers (telemetry=noop),
// and to the SDK recording every span and metric, with no exporter
// (telemetry=sdk). Compare with benchstat -col /telemetry.
func BenchmarkPutGetTelemetry(b *testing.B) {
	providers := []struct {
		name string
		set  func(o *failoverblob.Options)
	}{
		{"global", func(*failoverblob.Options) {}},
		{"noop", func(o *failoverblob.Options) {
			o.MeterProvider, o.TracerProvider = metricnoop.NewMeterProvider(), tracenoop.NewTracerProvider()
		}},
		{"sdk", func(o *failoverblob.Options) {
			o.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			o.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
		}},
	}
	for _, size := range []int{1 << 10, 1 << 20} {
		for _, p := range providers {
			b.Run(fmt.Sprintf("size=%dKiB/telemetry=%s", size>>10, p.name), func(b *testing.B) {
				opts := &failoverblob.Options{SpoolDir: b.TempDir()}
				p.set(opts)
				f, err := failoverblob.New(context.Background(), memblob.OpenBucket(nil), memblob.OpenBucket(nil), opts)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = f.Close() })
				benchPutGet(b, f.Bucket(), size)
			})
		}
	}
}

// Traffic forced off the primary: its calls are counted as forced, not as
// outages or breaker refusals, the writes fail over with reason forced,
// and the breaker stays closed. A write streaming to the primary when the
// force comes commits on the secondary, counted the same way.
func TestTelemetryForced(t *testing.T) {
	r := newTelemetryRig(t, failoverblob.Options{})
	w, err := r.b.NewWriter(r.ctx, "streaming", &blob.WriterOptions{ContentType: "text/plain"})
	require.NoError(t, err)
	_, err = w.Write([]byte("v"))
	require.NoError(t, err)
	r.f.Force(failoverblob.ForceSecondary)
	require.NoError(t, w.Close())
	require.NoError(t, r.write("k", "v"))
	r.metrics().check("forced to the secondary", []metricCase{
		{"failoverblob.side.calls", calls("primary", "write", "forced"), 2},
		{"failoverblob.side.calls", calls("primary", "write", "outage"), 0},
		{"failoverblob.side.calls", calls("secondary", "write", "ok"), 2},
		{"failoverblob.failovers", failover("write", "forced"), 2},
		{"failoverblob.side.duration", sideOp("primary", "write"), 0},
		{"failoverblob.breaker.state", sideAttr("primary"), 0},
		{"failoverblob.journal.pending", nil, 2},
	})
}

// Forced onto the primary while it is down, nothing fails over: the read
// the secondary would have served is refused there, no failover is
// counted, and the refused call's span does not say it was one.
func TestTelemetryForcedPrimaryDoesNotFailOver(t *testing.T) {
	r := newTelemetryRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
	require.NoError(t, r.write("k", "v"))
	r.f.Force(failoverblob.ForcePrimary)
	r.faults[primary].Outage(nil)
	r.spans.Reset()
	_, err := r.b.ReadAll(r.ctx, "k")
	require.Error(t, err)
	r.metrics().check("forced to the primary, which is down", []metricCase{
		{"failoverblob.side.calls", calls("primary", "read", "outage"), 1},
		{"failoverblob.side.calls", calls("secondary", "read", "forced"), 1},
		{"failoverblob.failovers", failover("read", "outage"), 0},
	})
	var secondaryReads int
	for _, s := range r.spans.GetSpans().Snapshots() {
		if s.Name() != "failoverblob.secondary.read" {
			continue
		}
		secondaryReads++
		a := spanAttrs(s)
		assert.Equal(t, "false", a["failover"], "the refused read's span: failover")
		assert.Equal(t, "forced", a["outcome"], "the refused read's span: outcome")
		assert.NotContains(t, a, "reason", "the refused read's span")
	}
	assert.Equal(t, 1, secondaryReads, "spans of reads of the secondary")
}

// A hedged read (Options.HedgeAfter) makes a call to each side, both
// counted: the one that loses is cancelled and ends as an answer, as a
// call the caller cancelled does. A hedge that answers first is no
// failover; one whose answer is taken because the first side failed is.
func TestTelemetryHedgedReads(t *testing.T) {
	for _, tc := range []struct {
		name         string
		primaryFault failovertest.Fault
		primary      string // the outcome of the primary's read
		failovers    float64
	}{
		{"the hedge answers first", failovertest.Fault{Latency: time.Second}, "answer", 0},
		{"the first side fails after the hedge was made", failovertest.Fault{Latency: 30 * time.Millisecond, Err: failovertest.ErrOutage}, "outage", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newTelemetryRig(t, failoverblob.Options{Mode: failoverblob.Mirror, HedgeAfter: hedgeAfter})
				require.NoError(t, r.writeV("k", "v"))
				r.faults[primary].Set(failovertest.OpRead, tc.primaryFault)
				r.faults[secondary].Set(failovertest.OpRead, failovertest.Fault{Latency: 50 * time.Millisecond})
				assert.Equal(t, "v", r.read("k"))
				synctest.Wait() // for the cancelled call to end
				r.metrics().check(tc.name, []metricCase{
					{"failoverblob.side.calls", calls("primary", "read", tc.primary), 1},
					{"failoverblob.side.calls", calls("secondary", "read", "ok"), 1},
					{"failoverblob.failovers", failover("read", "outage"), tc.failovers},
				})
				assert.Equal(t, uint64(1), r.f.Status().Hedges.Won, "hedges won")
			})
		})
	}
}
