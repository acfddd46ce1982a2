package failoverblob

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/journal"
)

// SideStatus is the health of one side.
type SideStatus struct {
	Name string `json:"name"`
	// State is the side's breaker state; it marshals as "closed", "open"
	// or "half-open".
	State circuit.State `json:"state"`
	// Since is when the breaker last changed state (or the bucket opened).
	Since time.Time `json:"since"`
	// LastError is the last outage seen on the side, and when.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Requests and Failures are the breaker's counts in its current window.
	Requests uint32 `json:"requests"`
	Failures uint32 `json:"failures"`
}

// Status is a snapshot of a failover bucket's health.
type Status struct {
	Mode      string     `json:"mode"`
	Primary   SideStatus `json:"primary"`
	Secondary SideStatus `json:"secondary"`
	// Pending is the number of journal entries not yet reconciled, and
	// OldestPending when the oldest was recorded (zero when none): the live
	// recovery-point figure is time.Since(OldestPending).
	Pending       int       `json:"pending"`
	OldestPending time.Time `json:"oldest_pending,omitzero"`
	// Clock reports versions from clocks that ran fast.
	Clock ClockStatus `json:"clock"`
}

// ClockStatus reports the versions this bucket found stamped by a clock
// ahead by more than MaxSkew (Options.MaxClockSkew) of the time their object
// was stored, or of this writer's clock. Such versions are ordered by when
// they were stored; a steady count means a writer's clock needs fixing.
type ClockStatus struct {
	MaxSkew         time.Duration `json:"max_skew"`
	FastVersions    int           `json:"fast_versions"`
	LastFastVersion string        `json:"last_fast_version,omitempty"`
	LastFastKey     string        `json:"last_fast_key,omitempty"`
	LastFastSide    string        `json:"last_fast_side,omitempty"`
	LastFastAt      time.Time     `json:"last_fast_at,omitzero"`
}

// Status returns a snapshot of the bucket's health. It does no I/O.
func (f *Failover) Status() Status {
	st := Status{Mode: f.opts.Mode.String()}
	st.Primary = f.sides[journal.Primary].status()
	st.Secondary = f.sides[journal.Secondary].status()
	st.Pending, st.OldestPending = f.idx.stats()
	f.fastMu.Lock()
	st.Clock = f.fast
	f.fastMu.Unlock()
	st.Clock.MaxSkew = f.opts.MaxClockSkew
	return st
}

// StatusHandler returns an http.Handler that serves Status as JSON, with
// status code 200 while the primary's breaker is closed and 503 otherwise.
// Query strings of URLs in error texts are redacted.
func (f *Failover) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := f.Status()
		w.Header().Set("Content-Type", "application/json")
		if st.Primary.State != circuit.StateClosed {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
}
