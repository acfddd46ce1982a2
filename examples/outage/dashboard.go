package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// The metrics the walkthrough reads, by their documented names (the README's
// "Metrics and traces" lists them all, with their units and attributes).
const (
	metricCalls      = "failoverblob.side.calls"
	metricFailovers  = "failoverblob.failovers"
	metricBreaker    = "failoverblob.breaker.state"
	metricPending    = "failoverblob.journal.pending"
	metricOldestAge  = "failoverblob.journal.oldest_age"
	metricReconciled = "failoverblob.reconcile.objects"
	metricRepaired   = "failoverblob.reconcile.bytes"
)

// dashboard reads the failover bucket's metrics from an OpenTelemetry SDK
// meter provider's ManualReader, as an exporter would on each collection.
type dashboard struct {
	ctx    context.Context
	reader *sdkmetric.ManualReader
	err    error // the first collection that failed
}

// point is one data point: a counter's or a gauge's value, or a
// histogram's count.
type point struct {
	name  string
	attrs attribute.Set
	value float64
}

// snapshot is every data point of one collection.
type snapshot []point

// snapshot collects what the bucket reports now. A failed collection is
// kept in db.err and reads as no data.
func (db *dashboard) snapshot() snapshot {
	var rm metricdata.ResourceMetrics
	if err := db.reader.Collect(db.ctx, &rm); err != nil {
		if db.err == nil {
			db.err = err
		}
		return nil
	}
	var s snapshot
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			s = append(s, points(m)...)
		}
	}
	return s
}

// points returns the data points of m, of the kinds the bucket reports.
func points(m metricdata.Metrics) []point {
	var ps []point
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			ps = append(ps, point{m.Name, p.Attributes, float64(p.Value)})
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			ps = append(ps, point{m.Name, p.Attributes, float64(p.Value)})
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			ps = append(ps, point{m.Name, p.Attributes, p.Value})
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			ps = append(ps, point{m.Name, p.Attributes, float64(p.Count)})
		}
	}
	return ps
}

// filter selects data points by their attributes.
type filter func(attribute.Set) bool

// attrIs selects the points whose attribute key has the value v.
func attrIs(key, v string) filter {
	return func(s attribute.Set) bool {
		got, ok := s.Value(attribute.Key(key))
		return ok && got.AsString() == v
	}
}

// sum adds up the values of the points of metric name that every filter
// selects: a counter's total, or a gauge's value when the filters select
// one point.
func (s snapshot) sum(name string, filters ...filter) float64 {
	var total float64
	for _, p := range s {
		if p.name == name && selects(p.attrs, filters) {
			total += p.value
		}
	}
	return total
}

// value is sum, for a gauge.
func (s snapshot) value(name string, filters ...filter) float64 { return s.sum(name, filters...) }

func selects(attrs attribute.Set, filters []filter) bool {
	for _, f := range filters {
		if !f(attrs) {
			return false
		}
	}
	return true
}

// by returns the totals of metric name's points that the filters select,
// by the values of the attributes keys, joined with a space, in order.
func (s snapshot) by(name string, keys []string, filters ...filter) map[string]float64 {
	totals := map[string]float64{}
	for _, p := range s {
		if p.name != name || !selects(p.attrs, filters) || p.value == 0 {
			continue
		}
		var vals []string
		for _, k := range keys {
			v, _ := p.attrs.Value(attribute.Key(k))
			vals = append(vals, v.Emit())
		}
		totals[strings.Join(vals, " ")] += p.value
	}
	return totals
}

// primaryCallsMade counts the calls the primary's breaker let through to
// it, whatever their outcome.
func (s snapshot) primaryCallsMade() float64 {
	var n float64
	for _, o := range []string{"ok", "answer", "outage"} {
		n += s.sum(metricCalls, attrIs("side", "primary"), attrIs("outcome", o))
	}
	return n
}

// list formats totals as "a 1, b 2", sorted, or "none".
func list(totals map[string]float64) string {
	if len(totals) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(totals))
	for k, v := range totals {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// dashboard prints what a dashboard saw of the walkthrough, during the
// outage (step 3) and now, and checks it against what happened.
func (d *demo) dashboard() error {
	d.step("8. What a dashboard saw: the bucket's OpenTelemetry metrics")
	now, during := d.dash.snapshot(), d.duringOutage
	if d.dash.err != nil {
		return fmt.Errorf("collecting the metrics: %w", d.dash.err)
	}
	d.say("collected with the OpenTelemetry SDK's ManualReader, as an exporter collects them")
	for _, side := range []string{"primary", "secondary"} {
		d.why("%s{side=%s}, by outcome: %s", metricCalls, side, list(now.by(metricCalls, []string{"outcome"}, attrIs("side", side))))
	}
	d.why("%s, by op and reason: %s", metricFailovers, list(now.by(metricFailovers, []string{"op", "reason"})))
	d.why("%s{side=primary}: %.0f during the outage, %.0f now (0 closed, 1 half-open, 2 open)",
		metricBreaker, during.value(metricBreaker, attrIs("side", "primary")), now.value(metricBreaker, attrIs("side", "primary")))
	d.why("%s: %.0f during the outage, %.0f now", metricPending, during.value(metricPending), now.value(metricPending))
	d.why("%s: %.3fs during the outage, %.3fs now (the live recovery point)",
		metricOldestAge, during.value(metricOldestAge), now.value(metricOldestAge))
	d.why("%s, by action: %s", metricReconciled, list(now.by(metricReconciled, []string{"action"})))
	d.why("%s: %.0f", metricRepaired, now.sum(metricRepaired))

	// The figures against what the walkthrough did.
	rep := d.report
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"failovers of writes (steps 2 and 3: two outages, then the open breaker)", now.sum(metricFailovers, attrIs("op", "write")), 3},
		{"failovers of deletes (step 3)", now.sum(metricFailovers, attrIs("op", "delete")), 1},
		{"primary's breaker state during the outage", during.value(metricBreaker, attrIs("side", "primary")), 2},
		{"primary's breaker state now", now.value(metricBreaker, attrIs("side", "primary")), 0},
		{"journal entries pending during the outage", during.value(metricPending), 4},
		{"journal entries pending now", now.value(metricPending), 0},
		{"oldest pending age now", now.value(metricOldestAge), 0},
		{"objects copied", now.sum(metricReconciled, attrIs("action", "copied")), float64(rep.Copied)},
		{"tombstones applied", now.sum(metricReconciled, attrIs("action", "deleted")), float64(rep.Deleted)},
		{"temporary copies removed", now.sum(metricReconciled, attrIs("action", "cleaned")), float64(rep.Cleaned)},
		{"bytes copied", now.sum(metricRepaired), float64(rep.Bytes)},
	} {
		d.check(c.got == c.want, "%s: the metrics say %.0f, want %.0f", c.what, c.got, c.want)
	}
	d.check(during.value(metricOldestAge) > 0, "the oldest pending age during the outage is %.3fs, want more than 0",
		during.value(metricOldestAge))
	d.say("the figures agree with the timeline above and with Drain's report")
	return nil
}
