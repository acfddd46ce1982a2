// Package circuit decides when a side of a failover bucket (the primary or the
// secondary) should stop receiving calls, and when it may receive them again.
//
// A Breaker guards one side. Before each call the caller asks Allow; after it,
// the caller reports the call's final error to the done function Allow
// returned. A Classifier decides whether that error is an outage (the side is
// unreachable or failing, and traffic should move) or an answer (NotFound,
// PermissionDenied, ...), which says the side is up. Only outages count
// against a side; a call the caller itself cancelled counts for nothing.
//
// Breakers are built on the two-step form of github.com/sony/gobreaker/v2,
// because a call to a side does not end when a function returns: a write
// succeeds only when its writer's Close returns nil.
package circuit

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Defaults for the zero values of Settings.
const (
	// DefaultInterval is the closed-state window used when
	// Settings.Interval is not positive.
	DefaultInterval = 60 * time.Second
	// DefaultTimeout is how long a breaker stays open when
	// Settings.Timeout is not positive.
	DefaultTimeout = 30 * time.Second
)

// intervalBuckets is how many buckets the closed-state window is divided
// into, so that old outcomes leave the window a tenth at a time rather than
// all at once.
const intervalBuckets = 10

// Settings configures a Breaker. The zero value, and a nil *Settings, are
// valid and mean every default below.
type Settings struct {
	// Name names the breaker in OnStateChange calls and in errors.
	// If Name is empty, "side" is used.
	Name string

	// Classifier decides whether a call's error is an outage.
	// If Classifier is nil, DefaultClassifier is used.
	Classifier Classifier

	// ReadyToTrip is called with the current Counts after each outage while
	// the breaker is closed; if it returns true the breaker opens.
	// If ReadyToTrip is nil, DefaultReadyToTrip is used.
	ReadyToTrip func(Counts) bool

	// Interval is the rolling window over which a closed breaker keeps
	// Counts: outcomes older than Interval are forgotten, a tenth of the
	// window at a time. If Interval is less than or equal to 0,
	// DefaultInterval (60 seconds) is used.
	Interval time.Duration

	// Timeout is how long the breaker stays open before it turns half-open
	// and lets probe calls through. If Timeout is less than or equal to 0,
	// DefaultTimeout (30 seconds) is used.
	Timeout time.Duration

	// HalfOpenRequests is how many probe calls a half-open breaker lets
	// through before it decides. The breaker closes once that many probes
	// have succeeded and opens again on the first one that fails; until
	// then further calls are refused. A probe the caller itself cancelled
	// gives its slot back. If HalfOpenRequests is 0, 1 is used.
	HalfOpenRequests uint32

	// OnStateChange, if not nil, is called on every change of state. It is
	// called synchronously while the breaker's lock is held, so it must be
	// quick and must not call the Breaker's methods.
	OnStateChange func(name string, from, to State)
}

// WithDefaults returns s with the defaults New uses filled in for the zero
// Interval, Timeout, HalfOpenRequests and ReadyToTrip. Name and Classifier
// are left as they are.
func (s Settings) WithDefaults() Settings {
	if s.Interval <= 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.HalfOpenRequests == 0 {
		s.HalfOpenRequests = 1
	}
	if s.ReadyToTrip == nil {
		s.ReadyToTrip = DefaultReadyToTrip
	}
	return s
}

// ErrOpen is returned, wrapped with the breaker's name, by Allow while the
// breaker is open, and while it is half-open with all its probes in flight.
// Test for it with errors.Is.
var ErrOpen = errors.New("circuit breaker is open")

// errOutage and errExcluded are what done reports to gobreaker: the caller's
// error has already been classified, so gobreaker only needs the verdict.
var (
	errOutage   = errors.New("outage")
	errExcluded = errors.New("excluded")
)

// Breaker guards one side. It is safe for concurrent use.
//
// A Breaker has no timers of its own: an open breaker turns half-open when
// Allow or State is next called after Timeout has passed, and that is when
// OnStateChange reports it.
type Breaker struct {
	name     string
	classify Classifier
	settings gobreaker.Settings
	onChange func(name string, from, to State)
	cb       atomic.Pointer[gobreaker.TwoStepCircuitBreaker[struct{}]]
}

// New returns a closed Breaker configured by s, which may be nil.
func New(s *Settings) *Breaker {
	if s == nil {
		s = &Settings{}
	}
	b := &Breaker{name: s.Name, classify: s.Classifier}
	if b.name == "" {
		b.name = "side"
	}
	if b.classify == nil {
		b.classify = DefaultClassifier
	}
	interval := s.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	gs := gobreaker.Settings{
		Name:         b.name,
		MaxRequests:  s.HalfOpenRequests, // gobreaker also turns 0 into 1
		Interval:     interval,
		BucketPeriod: interval / intervalBuckets,
		Timeout:      s.Timeout,
		IsExcluded:   func(err error) bool { return err == errExcluded },
	}
	if gs.Timeout <= 0 {
		gs.Timeout = DefaultTimeout
	}
	trip := s.ReadyToTrip
	if trip == nil {
		trip = DefaultReadyToTrip
	}
	gs.ReadyToTrip = func(c gobreaker.Counts) bool { return trip(countsOf(c)) }
	if f := s.OnStateChange; f != nil {
		b.onChange = f
		gs.OnStateChange = func(name string, from, to gobreaker.State) {
			f(name, stateOf(from), stateOf(to))
		}
	}
	b.settings = gs
	b.cb.Store(gobreaker.NewTwoStepCircuitBreaker[struct{}](gs))
	return b
}

// Reset closes the breaker, with its counts cleared, as if the side had
// just answered every probe: for an active probe that has seen the side
// healthy (a canary written and read back) while the breaker was open,
// so that traffic returns without waiting out Timeout. Calls let through
// before the reset report to the breaker they started under, and no longer
// count. OnStateChange reports the change, if there is one.
func (b *Breaker) Reset() {
	old := b.cb.Swap(gobreaker.NewTwoStepCircuitBreaker[struct{}](b.settings))
	if from := stateOf(old.State()); from != StateClosed && b.onChange != nil {
		b.onChange(b.name, from, StateClosed)
	}
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.name }

// State returns the breaker's current state.
func (b *Breaker) State() State { return stateOf(b.cb.Load().State()) }

// Counts returns the outcomes counted since the last change of state, within
// the rolling window while closed.
func (b *Breaker) Counts() Counts { return countsOf(b.cb.Load().Counts()) }

// IsOutage reports whether err, from a call made on behalf of a caller whose
// context is ctx, is an outage according to the breaker's Classifier.
func (b *Breaker) IsOutage(ctx context.Context, err error) bool {
	return b.classify(ctx, err)
}

// Allow asks whether a call to the side may be made now, on behalf of a
// caller whose context is ctx.
//
// If not, Allow returns an error wrapping ErrOpen. Otherwise it returns done,
// which the caller must call once with the call's final error (nil on
// success); for a write, that is the error from the writer's Close. done
// counts the outcome:
//
//   - nil counts as a success;
//   - if ctx is done by the time done is called, the error is the caller's own
//     cancellation and counts as neither a success nor a failure;
//   - otherwise an outage, as the Classifier judges it, counts as a failure,
//     and an answer (NotFound, InvalidArgument, ...) as a success.
//
// done may be called from any goroutine; calls after the first are ignored.
// A call that never reports keeps its place: while the breaker is half-open
// it holds a probe slot until the state changes.
func (b *Breaker) Allow(ctx context.Context) (done func(err error), err error) {
	report, err := b.cb.Load().Allow()
	switch {
	case errors.Is(err, gobreaker.ErrTooManyRequests):
		return nil, fmt.Errorf("%s: %w (half-open, all probes in flight)", b.name, ErrOpen)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", b.name, ErrOpen)
	}
	var reported atomic.Bool
	return func(err error) {
		if reported.Swap(true) {
			return
		}
		report(b.verdict(ctx, err))
	}, nil
}

// verdict turns a call's error into what the underlying breaker counts: nil
// for a success, errOutage for a failure, errExcluded for neither.
func (b *Breaker) verdict(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return errExcluded
	case b.classify(ctx, err):
		return errOutage
	default:
		return nil
	}
}
