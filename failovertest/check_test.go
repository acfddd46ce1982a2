package failovertest

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"gocloud.dev/blob"
)

func TestValuesDecodeToTheWriteThatMadeThem(t *testing.T) {
	for _, size := range []int64{0, 1, valueHeaderLen, valueHeaderLen + 1, 1000, 1<<16 + 3} {
		want := valueID(size + 7)
		if size == 0 {
			want = 0
		}
		got, err := decodeValue(encodeValue(valueID(size+7), size))
		if err != nil || got != want {
			t.Errorf("size %d: decoded #%d, %v; want #%d", size, got, err, want)
		}
	}
}

func TestTornValuesDoNotDecode(t *testing.T) {
	a, b := encodeValue(1, 1000), encodeValue(2, 1000)
	cases := map[string][]byte{
		"torn between two writes": append(append([]byte{}, a[:500]...), b[500:]...),
		"truncated":               a[:999],
		"padded":                  append(append([]byte{}, a...), 0),
		"not a value":             bytes.Repeat([]byte("x"), 100),
	}
	for name, data := range cases {
		if id, err := decodeValue(data); err == nil {
			t.Errorf("%s: decoded as value #%d, want an error", name, id)
		}
	}
}

// runSeed runs one short seed against open and returns what it found.
func runSeed(t *testing.T, open func(ctx context.Context, primary, secondary *blob.Bucket) (Target, error)) seedResult {
	t.Helper()
	o := (&CheckOptions{Ops: 300}).withDefaults()
	res := checkSeed(t, open, o, 1)
	if res.err != nil {
		t.Fatal(res.err)
	}
	return res
}

// A single bucket, with no failover at all, loses nothing: it is only
// unavailable while it is down. The check must pass it.
func TestCheckPassesASingleBucket(t *testing.T) {
	res := runSeed(t, func(_ context.Context, primary, _ *blob.Bucket) (Target, error) {
		return Target{Bucket: primary, Reconcile: func(context.Context) (int, error) { return 0, nil }}, nil
	})
	if len(res.violations) > 0 {
		t.Errorf("a single bucket: %d violations, want none; first: %s", len(res.violations), res.violations[0])
	}
	if res.report.KeysLinearizable == 0 || res.report.WritesAcked == 0 {
		t.Errorf("nothing was checked: %+v", res.report)
	}
}

// A single bucket that claims to mirror leaves the secondary empty.
func TestCheckCatchesSidesThatDoNotConverge(t *testing.T) {
	res := runSeed(t, func(_ context.Context, primary, _ *blob.Bucket) (Target, error) {
		return Target{Bucket: primary, Reconcile: func(context.Context) (int, error) { return 0, nil }, Mirror: true}, nil
	})
	if !anyViolation(res, "does not hold it") {
		t.Errorf("a mirror that never writes the secondary: no convergence violation in %q", res.violations)
	}
}

// A reconciler that deletes what it finds loses acknowledged writes.
func TestCheckCatchesAReconcilerThatLosesWrites(t *testing.T) {
	res := runSeed(t, func(_ context.Context, primary, _ *blob.Bucket) (Target, error) {
		return Target{Bucket: primary, Reconcile: func(ctx context.Context) (int, error) {
			for i := range 8 {
				_ = primary.Delete(ctx, keyPrefix+"k0"+string(rune('0'+i)))
			}
			return 0, nil
		}}, nil
	})
	if res.report.LostWrites == 0 || res.report.StaleOverwrites == 0 {
		t.Errorf("a reconciler deleting everything: lost writes %d, stale overwrites %d; want both > 0", res.report.LostWrites, res.report.StaleOverwrites)
	}
}

// A reconciler that puts back the first value it saw of each key replaces
// newer objects with older ones.
func TestCheckCatchesAReconcilerThatRestoresOldValues(t *testing.T) {
	res := runSeed(t, func(_ context.Context, primary, _ *blob.Bucket) (Target, error) {
		var mu sync.Mutex
		first := map[string][]byte{}
		attrs := map[string]*blob.Attributes{}
		return Target{Bucket: primary, Reconcile: func(ctx context.Context) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			for i := range 8 {
				k := keyPrefix + "k0" + string(rune('0'+i))
				if old, ok := first[k]; ok {
					_ = primary.WriteAll(ctx, k, old, &blob.WriterOptions{Metadata: attrs[k].Metadata})
					continue
				}
				if data, err := primary.ReadAll(ctx, k); err == nil {
					if a, err := primary.Attributes(ctx, k); err == nil {
						first[k], attrs[k] = data, a
					}
				}
			}
			return 0, nil
		}}, nil
	})
	if res.report.StaleOverwrites == 0 {
		t.Errorf("a reconciler restoring old values: no stale overwrite found in %q", res.violations)
	}
}

func anyViolation(res seedResult, substr string) bool {
	for _, v := range res.violations {
		if strings.Contains(v, substr) {
			return true
		}
	}
	return false
}
