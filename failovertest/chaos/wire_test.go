package chaos

import (
	"context"
	"errors"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// memWire is Options.Sides without a network: in-memory sides whose
// paths are Injectors, switched as WireFaults would switch a proxy.
type memWire struct{ in [2]*failovertest.Injector }

func (m *memWire) Fault(side journal.Side, f WireFault) {
	in := m.in[side]
	switch f.Kind {
	case WireReset, WireRefuse:
		in.Outage(nil)
	case WireUnavailable:
		in.Outage(errServerDown)
	case WireHang:
		in.Hang()
	case WireCut:
		in.Set(failovertest.OpRead, failovertest.Fault{AfterBytes: f.CutAfter})
		in.Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: f.CutAfter})
	case WireSlow:
		allOps(in, failovertest.Fault{Latency: f.Latency})
	}
}

func (m *memWire) Heal(side journal.Side) { m.in[side].Heal() }

func memWireSides(t *testing.T) (primary, secondary *blob.Bucket, faults WireFaults) {
	m := &memWire{}
	primary, m.in[0] = failovertest.Wrap(memblob.OpenBucket(nil), nil)
	secondary, m.in[1] = failovertest.Wrap(memblob.OpenBucket(nil), nil)
	return primary, secondary, m
}

// runWireSeed runs one short seed over memWire sides against open.
func runWireSeed(t *testing.T, open openFunc) seedResult {
	t.Helper()
	o := (&Options{Ops: 300, Sides: memWireSides, Window: 100 * time.Millisecond}).withDefaults()
	res := checkSeed(t, open, o, 1)
	if res.err != nil {
		t.Fatal(res.err)
	}
	return res
}

// keysOf lists the keys the check wrote to b.
func keysOf(ctx context.Context, b *blob.Bucket) []string {
	var keys []string
	it := b.List(&blob.ListOptions{Prefix: keyPrefix})
	for {
		o, err := it.Next(ctx)
		if err != nil {
			return keys
		}
		keys = append(keys, o.Key)
	}
}

// Over the wire too, a single bucket loses nothing, though every failed
// call may have taken effect.
func TestCheckOverTheWirePassesASingleBucket(t *testing.T) {
	res := runWireSeed(t, func(_ context.Context, env Env) (Target, error) {
		primary := env.Primary
		return Target{Bucket: primary, Reconcile: func(context.Context) (int, error) { return 0, nil }}, nil
	})
	if len(res.violations) > 0 {
		t.Errorf("a single bucket over the wire: %d violations, want none; first: %s", len(res.violations), res.violations[0])
	}
	if !res.report.OverTheWire || res.report.KeysLinearizable == 0 || res.report.WritesAcked == 0 || len(res.report.FaultWindows) == 0 {
		t.Errorf("nothing was checked: %+v", res.report)
	}
}

// Over the wire, a reconciler that puts back the first value it saw of each
// key is still caught, by the reads if not by its own changes.
func TestCheckOverTheWireCatchesAReconcilerThatRestoresOldValues(t *testing.T) {
	res := runWireSeed(t, restoringOldValues(keysOf))
	if res.report.LostWrites == 0 {
		t.Errorf("a reconciler restoring old values over the wire: no lost write found in %q", res.violations)
	}
}

// Sides that are not there fail the seed rather than the process.
func TestCheckOverTheWireNeedsSides(t *testing.T) {
	o := (&Options{Ops: 10, Sides: func(*testing.T) (*blob.Bucket, *blob.Bucket, WireFaults) {
		return memblob.OpenBucket(nil), nil, nil
	}}).withDefaults()
	res := checkSeed(t, func(context.Context, Env) (Target, error) {
		return Target{}, errors.New("not reached")
	}, o, 1)
	if res.err == nil || len(res.report.FailedSeeds) != 1 {
		t.Errorf("Sides without a secondary: %+v, %v; want the seed failed", res.report, res.err)
	}
}
