package failoverblob_test

import (
	"testing"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
)

// As reaches the control surface, and the sides' own types (the primary's
// first).
func TestAsReachesFailoverAndSides(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	var f *failoverblob.Failover
	if !r.b.As(&f) || f != r.f {
		t.Errorf("As(**Failover): got %p, want %p", f, r.f)
	}
	var in *failovertest.Injector
	if !r.b.As(&in) || in != r.faults[primary] {
		t.Errorf("As(**failovertest.Injector): got %p, want the primary's %p", in, r.faults[primary])
	}
	var s *string
	if r.b.As(&s) {
		t.Error("As(**string): got true, want false")
	}
}
