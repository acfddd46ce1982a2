package failovertest_test

import (
	"context"
	"net/http"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/drivertest"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob/failovertest"
)

// harness runs gocloud's conformance suite against the fault-injecting
// driver with no faults set; every driver it makes shares one memblob.
type harness struct {
	base *blob.Bucket
}

func (h *harness) MakeDriver(context.Context) (driver.Bucket, error) {
	drv, _ := failovertest.NewDriver(h.base, nil)
	return drv, nil
}

func (h *harness) MakeDriverForNonexistentBucket(context.Context) (driver.Bucket, error) {
	return nil, nil // memblob has no such thing
}

func (h *harness) HTTPClient() *http.Client         { return nil } // memblob signs no URLs
func (h *harness) SupportsCopy() bool               { return true }
func (h *harness) SupportsNonSlashDelimiters() bool { return true }
func (h *harness) SkipDownloadAt() bool             { return false }
func (h *harness) Close()                           { _ = h.base.Close() }

func TestConformance(t *testing.T) {
	drivertest.RunConformanceTests(t, func(context.Context, *testing.T) (drivertest.Harness, error) {
		return &harness{base: memblob.OpenBucket(nil)}, nil
	}, nil)
}
