package providers_test

import (
	"flag"
	"os"
	"testing"

	_ "github.com/failoverblob/failoverblob/providers/azure"
	_ "github.com/failoverblob/failoverblob/providers/gcs"
	_ "github.com/failoverblob/failoverblob/providers/s3"
)

// TestMain skips the conformance checks listed in conformanceExclusions
// (on top of any -test.skip given) before running the tests. The tests of
// this package reach every provider by URL, so it imports them all.
func TestMain(m *testing.M) {
	flag.Parse()
	skipConformanceExclusions()
	os.Exit(m.Run())
}
