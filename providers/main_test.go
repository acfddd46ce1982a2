package providers_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain skips the conformance checks listed in conformanceExclusions
// (on top of any -test.skip given) before running the tests.
func TestMain(m *testing.M) {
	flag.Parse()
	skipConformanceExclusions()
	os.Exit(m.Run())
}
