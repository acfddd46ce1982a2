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
	// Hedges counts hedged reads (Options.HedgeAfter).
	Hedges HedgeStatus `json:"hedges"`
	// Stale counts the copies kept in Options.Cache and served from it.
	Stale StaleStatus `json:"stale"`
	// Forced is the routing an operator forced (Failover.Force).
	Forced ForceMode `json:"forced"`
	// Reconcile says whether Run is running and when a reconcile pass
	// (Run's or a Drain call's) last completed.
	Reconcile ReconcileStatus `json:"reconcile"`
	// Writable says the bucket can acknowledge a write under its policy
	// now, as far as its breakers know; Reason says why not, or what it
	// falls back on.
	Writable bool   `json:"writable"`
	Reason   string `json:"reason,omitempty"`
}

// ReconcileStatus is what the reconciler has done: a dashboard alerts when
// Running is false, or when LastPass falls more than a few
// ReconcileIntervals behind while work is pending.
type ReconcileStatus struct {
	// Running is true while a Run is running on the bucket.
	Running bool `json:"running"`
	// Passes counts the reconcile passes completed since the bucket
	// opened, each Drain call's included, whether or not they repaired
	// everything; LastPass is when the last one completed.
	Passes   int64     `json:"passes"`
	LastPass time.Time `json:"last_pass,omitzero"`
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
	st.Hedges = f.hedges.status(f.opts.HedgeAfter)
	st.Stale = f.stale.status()
	st.Forced = f.Forced()
	st.Reconcile = f.reconcileStatus()
	st.Writable, st.Reason = f.writable(st)
	return st
}

// writable decides, from the breakers and the forced routing, whether a
// write can be acknowledged now, and why not (or what it falls back on).
// A half-open breaker lets calls through, so only an open one (or a side
// traffic is forced off) counts as down.
func (f *Failover) writable(st Status) (bool, string) {
	up := [2]bool{st.Primary.State != circuit.StateOpen, st.Secondary.State != circuit.StateOpen}
	for i, s := range f.sides {
		up[i] = up[i] && !s.forced.Load()
	}
	switch {
	case st.Forced == ForceReadOnly:
		return false, "forced read-only"
	case !up[0] && !up[1]:
		return false, "both sides are down"
	case f.opts.Mode == Mirror && f.opts.Ack == AckBoth && !(up[0] && up[1]):
		return false, "Mirror mode with AckBoth needs both sides, and one is down"
	case !up[0]:
		return true, "the primary is down; writes go to the secondary"
	case !up[1]:
		return true, "the secondary is down; writes reach the primary only"
	}
	return true, ""
}

// StatusHandler returns an http.Handler that serves Status as JSON, for a
// health endpoint. By default it answers readiness: status 200 while the
// bucket can acknowledge a write under its policy (Status.Writable), 503
// otherwise (both sides down; AckBoth with a side down; forced read-only),
// with Status.Reason saying why. With the query parameter "live" (as in
// /healthz/storage?live) it answers liveness: 200 whenever it answers at
// all, the bucket being usable for reads at least. Query strings of URLs in
// error texts are redacted.
func (f *Failover) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := f.Status()
		w.Header().Set("Content-Type", "application/json")
		if !st.Writable && !r.URL.Query().Has("live") {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
}
