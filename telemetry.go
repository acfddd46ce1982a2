package failoverblob

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/journal"
)

// InstrumentationName is the name this package gives its meter and tracer
// (the OpenTelemetry instrumentation scope). The metrics and spans it
// reports, with their units and attributes, are listed in the README under
// "Metrics and traces"; their names are a stable contract.
const InstrumentationName = "github.com/failoverblob/failoverblob"

// sideOp is the kind of a call to a side, as telemetry names it.
type sideOp uint8

const (
	opAttributes sideOp = iota
	opRead              // opening a reader, up to its first byte
	opDownload
	opWrite // opening a writer, up to its commit
	opDelete
	opList
	opSignedURL
	numSideOps
)

var sideOpNames = [numSideOps]string{"attributes", "read", "download", "write", "delete", "list", "signed_url"}

// outcome is how a call to a side ended, as its breaker judges it; a
// failover's reason is one of the three outcomes that move calls.
type outcome uint8

const (
	outcomeOK       outcome = iota // the call succeeded; as a failover's reason: no failover
	outcomeAnswer                  // the side answered with an error (NotFound, a refused precondition, the caller's own hook or cancellation)
	outcomeOutage                  // the call failed with an outage
	outcomeRejected                // the side's breaker refused the call
	outcomeForced                  // traffic is forced off the side (Failover.Force): the call was not made, or its write not committed
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "answer", "outage", "rejected-by-breaker", "forced"}

// reasonOf is the reason for a failover caused by cause, an error from the
// side that was failed over from.
func reasonOf(cause error) outcome {
	switch {
	case errors.Is(cause, errForced):
		return outcomeForced
	case errors.Is(cause, circuit.ErrOpen):
		return outcomeRejected
	}
	return outcomeOutage
}

// The attribute keys of the metrics and spans.
const (
	attrSide     = attribute.Key("side")
	attrOp       = attribute.Key("op")
	attrOutcome  = attribute.Key("outcome")
	attrFailover = attribute.Key("failover")
	attrReason   = attribute.Key("reason")
	attrAction   = attribute.Key("action")
	attrWhere    = attribute.Key("where")
)

// Breaker states as the failoverblob.breaker.state gauge reports them.
var breakerStateValues = map[circuit.State]int64{circuit.StateClosed: 0, circuit.StateHalfOpen: 1, circuit.StateOpen: 2}

// durationBounds are the side.duration histogram's buckets, in seconds: from
// an in-memory call to the longest default timeout.
var durationBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// telemetry is a failover bucket's instruments and tracer. Its attribute
// sets and options are built once, so a call to a side allocates nothing
// for its measurements.
type telemetry struct {
	tracer         trace.Tracer
	calls          metric.Int64Counter
	duration       metric.Float64Histogram
	failovers      metric.Int64Counter
	reconciled     metric.Int64Counter
	reconciledSize metric.Int64Counter
	gauges         metric.Registration // the observable gauges' callback; nil if it could not be registered

	spooled spoolTally // bytes held by the replay spools of writes in flight

	spanNames  [2][numSideOps]string
	spanStart  [2][numSideOps][numOutcomes][]trace.SpanStartOption // by failover reason; outcomeOK: not a failover
	callOpts   [2][numSideOps][numOutcomes][]metric.AddOption
	timeOpts   [2][numSideOps][]metric.RecordOption
	reasonOpts [numSideOps][numOutcomes][]metric.AddOption
	sideSets   [2]attribute.Set
}

// instrument sets up the bucket's telemetry on the providers the options
// name, or the global ones. An instrument the provider refuses is reported
// to OpenTelemetry's error handler and left a no-op: telemetry never keeps a
// bucket from opening.
func (f *Failover) instrument() {
	mp, tp := f.opts.MeterProvider, f.opts.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	t := &telemetry{tracer: tp.Tracer(InstrumentationName)}
	t.buildOptions()
	m := &meter{m: mp.Meter(InstrumentationName)}
	t.calls = m.counter("failoverblob.side.calls", "{call}",
		"Calls to a side, by side, op and outcome (ok, answer, outage, rejected-by-breaker, forced).")
	t.duration = m.histogram("failoverblob.side.duration", "s",
		"Duration of the calls to a side its breaker let through, by side and op.", durationBounds)
	t.failovers = m.counter("failoverblob.failovers", "{failover}",
		"Operations moved to the other side because the side that serves them failed or traffic was forced off it, by op and reason (outage, rejected-by-breaker, forced).")
	t.reconciled = m.counter("failoverblob.reconcile.objects", "{object}",
		"Objects settled by the reconciler and the verifier, by action (copied, deleted, cleaned, none).")
	t.reconciledSize = m.counter("failoverblob.reconcile.bytes", "By",
		"Bytes copied across sides by the reconciler and the verifier.")
	f.observeGauges(m, t)
	if err := errors.Join(m.errs...); err != nil {
		otel.Handle(err)
	}
	f.tel = t
	for _, s := range f.sides {
		s.tel = t
	}
}

// meter creates instruments, keeping the errors and standing a no-op in for
// an instrument a provider did not return.
type meter struct {
	m    metric.Meter
	errs []error
}

func (m *meter) note(err error) {
	if err != nil {
		m.errs = append(m.errs, err)
	}
}

func (m *meter) counter(name, unit, desc string) metric.Int64Counter {
	c, err := m.m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	m.note(err)
	if c == nil {
		return noop.Int64Counter{}
	}
	return c
}

func (m *meter) histogram(name, unit, desc string, bounds []float64) metric.Float64Histogram {
	h, err := m.m.Float64Histogram(name, metric.WithUnit(unit), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(bounds...))
	m.note(err)
	if h == nil {
		return noop.Float64Histogram{}
	}
	return h
}

// observeGauges registers the callback that reports the bucket's gauges:
// breaker states, pending journal entries and their oldest age, and the
// replay spools' bytes. If a gauge cannot be created, none is reported.
func (f *Failover) observeGauges(m *meter, t *telemetry) {
	var errs [4]error
	var state, pending, spooled metric.Int64ObservableGauge
	var age metric.Float64ObservableGauge
	state, errs[0] = m.m.Int64ObservableGauge("failoverblob.breaker.state", metric.WithUnit("1"),
		metric.WithDescription("State of a side's breaker: 0 closed, 1 half-open, 2 open."))
	pending, errs[1] = m.m.Int64ObservableGauge("failoverblob.journal.pending", metric.WithUnit("{entry}"),
		metric.WithDescription("Journal entries not yet reconciled."))
	age, errs[2] = m.m.Float64ObservableGauge("failoverblob.journal.oldest_age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest journal entry not yet reconciled (the live recovery point); 0 when none is pending."))
	spooled, errs[3] = m.m.Int64ObservableGauge("failoverblob.spool.bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes held by the replay spools of Redirect-mode writes in flight, by where (memory, disk)."))
	if err := errors.Join(errs[:]...); err != nil || state == nil || pending == nil || age == nil || spooled == nil {
		m.note(err)
		return
	}
	memory := metric.WithAttributeSet(attribute.NewSet(attrWhere.String("memory")))
	disk := metric.WithAttributeSet(attribute.NewSet(attrWhere.String("disk")))
	reg, err := m.m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, s := range f.sides {
			o.ObserveInt64(state, breakerStateValues[s.br.State()], metric.WithAttributeSet(t.sideSets[s.id]))
		}
		n, oldest := f.idx.stats()
		o.ObserveInt64(pending, int64(n))
		var a float64
		if n > 0 && !oldest.IsZero() {
			a = max(time.Since(oldest).Seconds(), 0)
		}
		o.ObserveFloat64(age, a)
		o.ObserveInt64(spooled, t.spooled.memory.Load(), memory)
		o.ObserveInt64(spooled, t.spooled.disk.Load(), disk)
		return nil
	}, state, pending, age, spooled)
	m.note(err)
	t.gauges = reg
}

// buildOptions builds the attribute sets and options of every side, op,
// outcome and failover reason.
func (t *telemetry) buildOptions() {
	failovers := [numOutcomes]bool{outcomeOutage: true, outcomeRejected: true, outcomeForced: true}
	for _, id := range sideIDs {
		side := attrSide.String(id.String())
		t.sideSets[id] = attribute.NewSet(side)
		for op := range numSideOps {
			opAttr := attrOp.String(sideOpNames[op])
			t.spanNames[id][op] = "failoverblob." + id.String() + "." + sideOpNames[op]
			t.timeOpts[id][op] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(side, opAttr))}
			for o := range numOutcomes {
				name := outcomeNames[o]
				t.callOpts[id][op][o] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(side, opAttr, attrOutcome.String(name)))}
				attrs := []attribute.KeyValue{side, opAttr, attrFailover.Bool(failovers[o])}
				if failovers[o] {
					attrs = append(attrs, attrReason.String(name))
				}
				t.spanStart[id][op][o] = []trace.SpanStartOption{trace.WithAttributes(attrs...)}
			}
		}
	}
	for op := range numSideOps {
		for o := range numOutcomes {
			t.reasonOpts[op][o] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
				attrOp.String(sideOpNames[op]), attrReason.String(outcomeNames[o])))}
		}
	}
}

// stop unregisters the gauges' callback, so that a closed bucket is no
// longer observed (nor kept reachable) by the meter provider.
func (t *telemetry) stop() error {
	if t == nil || t.gauges == nil {
		return nil
	}
	return t.gauges.Unregister()
}

// sideCall is the telemetry of one call to a side: its span, and when it
// began.
type sideCall struct {
	t     *telemetry
	side  journal.Side
	op    sideOp
	span  trace.Span
	start time.Time
}

// failoverKey is the context key that marks the calls made because the
// other side failed; its value is the failover's reason.
type failoverKey struct{}

// failingOver counts a failover of op to the secondary (every failover goes
// there) for cause, an error from the primary, and returns ctx marked so
// that the calls made with it to the secondary say they are a failover.
// While traffic is forced off the secondary (ForcePrimary) nothing fails
// over: the calls there are refused (outcome forced), ctx is returned as
// it is, and no failover is counted.
func (f *Failover) failingOver(ctx context.Context, op sideOp, cause error) context.Context {
	if f.sides[journal.Secondary].forced.Load() {
		return ctx
	}
	reason := reasonOf(cause)
	f.tel.failovers.Add(ctx, 1, f.tel.reasonOpts[op][reason]...)
	return context.WithValue(ctx, failoverKey{}, reason)
}

// begin starts the telemetry of a call of kind op to side id on behalf of a
// caller whose context is ctx: the call's span is a child of the caller's.
// The returned context carries the span, for the call to the side.
func (t *telemetry) begin(ctx context.Context, id journal.Side, op sideOp) (context.Context, sideCall) {
	reason, _ := ctx.Value(failoverKey{}).(outcome)
	ctx, span := t.tracer.Start(ctx, t.spanNames[id][op], t.spanStart[id][op][reason]...)
	return ctx, sideCall{t: t, side: id, op: op, span: span, start: time.Now()}
}

// end records the call's outcome; err is its error, if any. It must be
// called once. A call refused by the breaker, or because traffic is forced
// off the side, has no duration. A failed call's
// span has the status Error described by err's gcerrors code alone: error
// texts can name keys and URLs, and spans name neither.
func (c sideCall) end(ctx context.Context, o outcome, err error) {
	t := c.t
	t.calls.Add(ctx, 1, t.callOpts[c.side][c.op][o]...)
	if o != outcomeRejected && o != outcomeForced {
		t.duration.Record(ctx, time.Since(c.start).Seconds(), t.timeOpts[c.side][c.op]...)
	}
	if c.span.IsRecording() {
		c.span.SetAttributes(attrOutcome.String(outcomeNames[o]))
		if err != nil {
			c.span.SetStatus(codes.Error, gcerrors.Code(err).String())
		}
	}
	c.span.End()
}

// reconciledObject counts one object the reconciler or the verifier settled
// with action, and the bytes it copied.
func (t *telemetry) reconciledObject(ctx context.Context, action string, bytes int64) {
	t.reconciled.Add(ctx, 1, metric.WithAttributes(attrAction.String(action)))
	if bytes > 0 {
		t.reconciledSize.Add(ctx, bytes)
	}
}

// repaired counts the objects a repair settled.
func (t *telemetry) repaired(ctx context.Context, r Repair) {
	t.reconciledObject(ctx, r.Action.String(), r.Bytes)
	if r.Cleaned {
		t.reconciledObject(ctx, actionCleaned, 0)
	}
}

// actionCleaned is the reconcile.objects action of a temporary copy removed
// from the secondary.
const actionCleaned = "cleaned"

// spoolTally is the bytes held by a bucket's replay spools.
type spoolTally struct {
	memory, disk atomic.Int64
}

// add adds the bytes a spool took (or, negative, gave back). A nil tally
// counts nothing.
func (t *spoolTally) add(memory, disk int64) {
	if t == nil {
		return
	}
	if memory != 0 {
		t.memory.Add(memory)
	}
	if disk != 0 {
		t.disk.Add(disk)
	}
}
