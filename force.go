package failoverblob

import (
	"errors"
	"fmt"

	"github.com/failoverblob/failoverblob/journal"
)

// ForceMode is an operator's override of a failover bucket's routing (see
// Failover.Force).
type ForceMode int32

const (
	// ForceNone routes automatically, by the breakers. The zero value.
	ForceNone ForceMode = iota
	// ForceSecondary treats the primary as down, for a planned evacuation
	// or maintenance: writes are redirected and recorded as in an outage,
	// and reads follow the contract for a primary outage. In Mirror mode
	// writes reach the secondary only, with repairs recorded for the
	// primary.
	ForceSecondary
	// ForcePrimary never lets a call go to the secondary instead of the
	// primary (treating the secondary as down), for callers who must not
	// write to the other cloud: while the primary is down, calls fail
	// instead of failing over. In Mirror mode writes reach the primary only,
	// with repairs recorded for the secondary.
	ForcePrimary
	// ForceReadOnly refuses writes, copies and deletes with an error that
	// wraps ErrReadOnly; reads go on as routed automatically. The
	// reconciler goes on too.
	ForceReadOnly
)

var forceNames = [...]string{"none", "secondary", "primary", "read-only"}

// String returns "none", "secondary", "primary" or "read-only".
func (m ForceMode) String() string {
	if m < 0 || int(m) >= len(forceNames) {
		return fmt.Sprintf("ForceMode(%d)", int32(m))
	}
	return forceNames[m]
}

// MarshalText returns m's String.
func (m ForceMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses a name String returns.
func (m *ForceMode) UnmarshalText(b []byte) error {
	for i, n := range forceNames {
		if string(b) == n {
			*m = ForceMode(i)
			return nil
		}
	}
	return fmt.Errorf("failoverblob: unknown force mode %q (want none, secondary, primary or read-only)", b)
}

// ErrReadOnly is returned (wrapped, with code gcerrors.FailedPrecondition)
// by writes, copies and deletes while the bucket is forced read-only.
var ErrReadOnly = errors.New("failoverblob: the bucket is forced read-only")

// Force overrides the bucket's routing until the next Force: ForceSecondary
// or ForcePrimary take traffic off a side before (or whatever) its breaker
// says, ForceReadOnly refuses writes, ForceNone routes by the breakers
// again. It takes effect for calls that begin afterwards, and for writes in
// flight at their commit: a write streaming to a side that traffic is then
// forced off commits on the other side (or, read-only, is refused). It is
// logged, and shown in Status.
func (f *Failover) Force(m ForceMode) {
	old := ForceMode(f.force.Swap(int32(m)))
	f.sides[journal.Primary].forced.Store(m == ForceSecondary)
	f.sides[journal.Secondary].forced.Store(m == ForcePrimary)
	if old != m {
		f.opts.Logger.Warn("failoverblob: routing forced", "mode", m.String(), "was", old.String())
	}
}

// Forced returns the mode set by Force (or Options.Force).
func (f *Failover) Forced() ForceMode { return ForceMode(f.force.Load()) }

// readOnly returns the error of a change refused because the bucket is
// forced read-only, or nil.
func (f *Failover) readOnly(key string) error {
	if f.Forced() == ForceReadOnly {
		return fmt.Errorf("%w: not changing %q", ErrReadOnly, key)
	}
	return nil
}
