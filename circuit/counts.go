package circuit

import "github.com/sony/gobreaker/v2"

// Counts holds the outcomes a Breaker has seen since its last state change,
// within the rolling window while closed (see Settings.Interval).
type Counts struct {
	// Requests counts the calls Allow let through, including those still
	// in flight.
	Requests uint32
	// TotalSuccesses and TotalFailures count the calls whose outcome was
	// an answer and an outage.
	TotalSuccesses uint32
	TotalFailures  uint32
	// TotalExclusions counts the calls the caller itself cancelled, which
	// are neither successes nor failures.
	TotalExclusions uint32
	// ConsecutiveSuccesses and ConsecutiveFailures count the latest run of
	// successes and of failures.
	ConsecutiveSuccesses uint32
	ConsecutiveFailures  uint32
}

func countsOf(c gobreaker.Counts) Counts {
	return Counts{
		Requests:             c.Requests,
		TotalSuccesses:       c.TotalSuccesses,
		TotalFailures:        c.TotalFailures,
		TotalExclusions:      c.TotalExclusions,
		ConsecutiveSuccesses: c.ConsecutiveSuccesses,
		ConsecutiveFailures:  c.ConsecutiveFailures,
	}
}

// The numbers behind DefaultReadyToTrip.
const (
	// DefaultConsecutiveFailures is how many outages in a row trip a breaker.
	DefaultConsecutiveFailures = 5
	// DefaultMinRequests is how many calls with an outcome (successes plus
	// failures) the window must hold before the failure ratio is considered.
	DefaultMinRequests = 10
)

// DefaultReadyToTrip is the trip rule used when Settings.ReadyToTrip is nil.
// It trips on DefaultConsecutiveFailures (5) outages in a row, or when at
// least DefaultMinRequests (10) calls in the window have an outcome and at
// least half of them were outages.
//
// The rule looks only at counts, never at how long calls took: a client
// whose retry budget is spent fails in about a millisecond, and a burst of
// such fast failures must trip the breaker as surely as slow timeouts do.
func DefaultReadyToTrip(c Counts) bool {
	if c.ConsecutiveFailures >= DefaultConsecutiveFailures {
		return true
	}
	decided := uint64(c.TotalSuccesses) + uint64(c.TotalFailures)
	return decided >= DefaultMinRequests && 2*uint64(c.TotalFailures) >= decided
}
