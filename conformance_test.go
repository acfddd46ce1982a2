package failoverblob

import (
	"context"
	"net/http"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/drivertest"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// harness runs gocloud's conformance suite on a failover bucket over two
// memblob buckets, each behind a fault-injecting wrapper that can hold its
// side down for the whole run. Every MakeDriver opens a new failover bucket
// over the same storage and the same journal, as a restarted process would.
type harness struct {
	base    [2]*blob.Bucket
	down    [2]bool
	journal journal.Journal
	opts    Options
}

func (h *harness) MakeDriver(ctx context.Context) (driver.Bucket, error) {
	var sides [2]*blob.Bucket
	for i := range sides {
		var in *failovertest.Injector
		sides[i], in = failovertest.Wrap(h.base[i], nil)
		if h.down[i] {
			in.Outage(nil)
		}
	}
	opts := h.opts
	opts.Journal = h.journal
	f, err := New(ctx, sides[0], sides[1], &opts)
	if err != nil {
		return nil, err
	}
	return &bucket{f: f}, nil
}

// MakeDriverForNonexistentBucket: a failover bucket has no single bucket
// whose absence the suite could check.
func (h *harness) MakeDriverForNonexistentBucket(context.Context) (driver.Bucket, error) {
	return nil, nil
}

// HTTPClient is nil: memblob cannot sign URLs, so the suite skips those
// checks (it treats Unimplemented from SignedURL as unsupported).
func (h *harness) HTTPClient() *http.Client         { return nil }
func (h *harness) SupportsCopy() bool               { return true }
func (h *harness) SupportsNonSlashDelimiters() bool { return true }
func (h *harness) Close()                           {}

// TestConformance runs drivertest in three states: both sides up (each
// mode), the primary down, and the secondary down.
//
// With the primary down the suite runs in Mirror mode only. In Redirect
// mode the secondary holds only redirected writes, so a read or listing of
// anything else is ErrUnavailable by design (a miss there is not proof of
// absence), where the suite expects NotFound; TestOutages covers that
// behaviour instead.
func TestConformance(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		down [2]bool
	}{
		{"both up/redirect", Options{}, [2]bool{}},
		{"both up/mirror", Options{Mode: Mirror}, [2]bool{}},
		{"primary down/mirror", Options{Mode: Mirror}, [2]bool{true, false}},
		{"secondary down/redirect", Options{}, [2]bool{false, true}},
		{"secondary down/mirror", Options{Mode: Mirror}, [2]bool{false, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drivertest.RunConformanceTests(t, func(context.Context, *testing.T) (drivertest.Harness, error) {
				return &harness{
					base:    [2]*blob.Bucket{memblob.OpenBucket(nil), memblob.OpenBucket(nil)},
					down:    tc.down,
					journal: journal.NewMemory(),
					opts:    tc.opts,
				}, nil
			}, nil)
		})
	}
}
