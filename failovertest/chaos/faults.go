package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// errServerDown is the error of a "5xx" outage window: an error without a
// gcerrors code (gcerrors.Unknown) that carries its HTTP status, as the
// AWS SDK's response errors do and as a driver reports an HTTP 503.
var errServerDown error = httpError{http.StatusServiceUnavailable}

// httpError is an error answer from an HTTP service.
type httpError struct{ status int }

func (e httpError) Error() string {
	return fmt.Sprintf("chaos: %d %s", e.status, http.StatusText(e.status))
}

// HTTPStatusCode returns the answer's status, as the AWS SDK's errors do.
func (e httpError) HTTPStatusCode() int { return e.status }

// faultKind is one kind of trouble the schedule puts a side in for a window
// of time. Windows end with Heal, which is the recovery.
type faultKind struct {
	name   string
	weight int
	down   bool // the side cannot be reached at all during the window
	apply  func(in *failovertest.Injector, rng *rand.Rand)
}

// allOps sets the same fault on every op.
func allOps(in *failovertest.Injector, f failovertest.Fault) {
	for _, op := range failovertest.AllOps {
		in.Set(op, f)
	}
}

func probability(rng *rand.Rand) float64 { return 0.2 + 0.6*rng.Float64() }

// cutAfter is where a stream is cut: anywhere in its first 256 KiB, so that
// small and large objects alike are cut part-way.
func cutAfter(rng *rand.Rand) int64 { return 1 + rng.Int64N(256<<10) }

var faultKinds = []faultKind{
	{name: "outage", weight: 4, down: true, apply: func(in *failovertest.Injector, _ *rand.Rand) { in.Outage(nil) }},
	{name: "outage-5xx", weight: 2, down: true, apply: func(in *failovertest.Injector, _ *rand.Rand) { in.Outage(errServerDown) }},
	{name: "hang", weight: 2, down: true, apply: func(in *failovertest.Injector, _ *rand.Rand) { in.Hang() }},
	{name: "latency", weight: 2, apply: func(in *failovertest.Injector, rng *rand.Rand) {
		// From a nuisance to well past every timeout the bucket sets.
		allOps(in, failovertest.Fault{Latency: time.Millisecond + time.Duration(rng.Int64N(int64(40*time.Second)))})
	}},
	{name: "flaky", weight: 3, apply: func(in *failovertest.Injector, rng *rand.Rand) {
		allOps(in, failovertest.Fault{Probability: probability(rng)})
	}},
	{name: "write-cut-mid-stream", weight: 2, apply: func(in *failovertest.Injector, rng *rand.Rand) {
		in.Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: cutAfter(rng), Probability: probability(rng)})
	}},
	{name: "read-cut-mid-stream", weight: 2, apply: func(in *failovertest.Injector, rng *rand.Rand) {
		in.Set(failovertest.OpRead, failovertest.Fault{AfterBytes: cutAfter(rng), Probability: probability(rng)})
	}},
	{name: "write-applied-reported-failed", weight: 3, apply: func(in *failovertest.Injector, rng *rand.Rand) {
		in.Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Probability: probability(rng)})
	}},
	{name: "write-applied-then-hang", weight: 1, apply: func(in *failovertest.Injector, rng *rand.Rand) {
		in.Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Hang: true, Probability: probability(rng)})
	}},
	{name: "delete-copy-applied-reported-failed", weight: 2, apply: func(in *failovertest.Injector, rng *rand.Rand) {
		in.Set(failovertest.OpDelete, failovertest.Fault{Applied: true, Probability: probability(rng)})
		in.Set(failovertest.OpCopy, failovertest.Fault{Applied: true, Probability: probability(rng)})
	}},
}

// sides are the two sides, in the order the schedule visits them.
var sides = [2]journal.Side{journal.Primary, journal.Secondary}

// bothDownKind names the windows in which the schedule takes both sides
// down together, on top of the overlaps that independent windows make.
const bothDownKind = "both-sides-down"

// windowKind is a kind of fault window as a schedule applies it to a side
// (0: primary, 1: secondary).
type windowKind struct {
	name   string
	weight int
	down   bool
	apply  func(side journal.Side, rng *rand.Rand)
}

// schedule is the fault timeline of one seed: a sequence of slots of
// slotMin to slotMin+slotSpan; at each slot boundary both sides heal and each
// side independently draws its trouble (or none) for the next slot.
type schedule struct {
	rng      *rand.Rand
	kinds    []windowKind
	heal     func(side journal.Side)
	takeDown func(side journal.Side, rng *rand.Rand) // a side's part of a both-sides-down window
	slotMin  time.Duration
	slotSpan time.Duration
	healthy  float64 // chance that a side has no fault in a slot
	bothDown float64 // chance that a slot takes both sides down
	total    int
	windows  map[string]int
	overlaps int // slots in which both sides were unreachable at once

	mu      sync.Mutex
	trouble [2][]span // by side: when it had a fault window, in order
}

// troubleBegins notes that side has a fault window of kind from now on.
func (s *schedule) troubleBegins(side journal.Side, kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trouble[side] = append(s.trouble[side], span{start: time.Now(), kind: kind})
}

// healSide heals side and ends its fault window, if it had one.
func (s *schedule) healSide(side journal.Side) {
	s.heal(side)
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.trouble[side]; len(t) > 0 && t[len(t)-1].end.IsZero() {
		t[len(t)-1].end = time.Now()
	}
}

// faultsOf returns side's fault windows so far, in the order they began
// (a window still going has a zero end).
func (s *schedule) faultsOf(side journal.Side) []span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]span(nil), s.trouble[side]...)
}

// during reports whether t falls within one of faults.
func during(faults []span, t time.Time) bool {
	for _, w := range faults {
		if !t.Before(w.start) && (w.end.IsZero() || !t.After(w.end)) {
			return true
		}
	}
	return false
}

// quietIn reports whether faults, sorted by start, hold none from (from - d)
// to to, and when the last of them that began by from ended (zero if
// none).
func quietIn(faults []span, from, to time.Time, d time.Duration) (quiet bool, lastEnd time.Time) {
	quiet = true
	for _, w := range faults {
		if w.start.After(to) {
			break
		}
		end := w.end
		if end.IsZero() {
			end = to.Add(time.Nanosecond) // still going
		}
		if !end.Before(from.Add(-d)) {
			quiet = false
		}
		if !w.start.After(from) && end.After(lastEnd) {
			lastEnd = end
		}
	}
	return quiet, lastEnd
}

// newSchedule returns the timeline of a run in virtual time, whose faults
// the sides' Injectors inject: slots of 5 to 45 virtual seconds.
func newSchedule(seed int64, in [2]*failovertest.Injector) *schedule {
	s := &schedule{
		rng:  rand.New(rand.NewPCG(uint64(seed), 0x5eed)),
		heal: func(side journal.Side) { in[side].Heal() },
		takeDown: func(side journal.Side, rng *rand.Rand) {
			if rng.IntN(3) == 0 {
				in[side].Hang()
			} else {
				in[side].Outage(nil)
			}
		},
		slotMin: 5 * time.Second, slotSpan: 40 * time.Second,
		healthy: 0.45, bothDown: 0.08, windows: map[string]int{},
	}
	for _, k := range faultKinds {
		apply := k.apply
		s.kinds = append(s.kinds, windowKind{name: k.name, weight: k.weight, down: k.down, apply: func(side journal.Side, rng *rand.Rand) { apply(in[side], rng) }})
	}
	return s
}

func (s *schedule) pick() windowKind {
	total := 0
	for _, k := range s.kinds {
		total += k.weight
	}
	n := s.rng.IntN(total)
	for _, k := range s.kinds {
		if n < k.weight {
			return k
		}
		n -= k.weight
	}
	panic("unreachable")
}

// run drives the timeline until ctx is done, then heals both sides.
func (s *schedule) run(ctx context.Context) {
	defer s.healBoth()
	for {
		s.healBoth()
		var down [2]bool
		if s.rng.Float64() < s.bothDown {
			for _, i := range sides {
				s.troubleBegins(i, bothDownKind)
				s.takeDown(i, s.rng)
				down[i] = true
			}
			s.windows[bothDownKind]++
			s.total++
		} else {
			for _, i := range sides {
				if s.rng.Float64() < s.healthy {
					continue
				}
				k := s.pick()
				s.troubleBegins(i, k.name)
				k.apply(i, s.rng)
				down[i] = k.down
				s.windows[k.name]++
				s.total++
			}
		}
		if down[0] && down[1] {
			s.overlaps++
		}
		slot := s.slotMin + time.Duration(s.rng.Int64N(int64(s.slotSpan)))
		if sleep(ctx, slot) != nil {
			return
		}
	}
}

func (s *schedule) healBoth() {
	for _, i := range sides {
		s.healSide(i)
	}
}
