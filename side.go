package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/driverx"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
	"github.com/failoverblob/failoverblob/journal"
)

// side is one of the two buckets with its breaker and what the status
// reports about it.
type side struct {
	id journal.Side
	b  *blob.Bucket  // as given to New; closed by Close
	d  driver.Bucket // b's public API as a driver (bucketconv.Bucket), which calls go to
	br *circuit.Breaker
	// tel reports the side's calls; set by the bucket's instrument.
	tel *telemetry
	// md5Said says the side offers a driverx.MD5Taker, and takesMD5 what
	// it answers: whether a write's MD5 reaches its provider.
	md5Said, takesMD5 bool

	// forced says an operator forced traffic off the side (Failover.Force):
	// its calls fail at once as if its breaker were open, without counting
	// against it.
	forced atomic.Bool

	mu        sync.Mutex
	since     time.Time
	lastErr   string
	lastErrAt time.Time
}

// errForced is the error of a call to a side traffic was forced off.
var errForced = errors.New("forced off by Failover.Force")

// forcedOff is the error of a call to s while traffic is forced off it: it
// moves calls as an open breaker does.
func (s *side) forcedOff() error {
	return fmt.Errorf("failoverblob: %s: %w: %w", s.id, errForced, circuit.ErrOpen)
}

func newSide(id journal.Side, b *blob.Bucket, tmpl *circuit.Settings, log *slog.Logger) *side {
	s := &side{id: id, b: b, d: bucketconv.Bucket(b), since: time.Now()}
	var st circuit.Settings
	if tmpl != nil {
		st = *tmpl
	}
	st.Name = id.String()
	var oc driverx.OutageClassifier
	if st.Classifier == nil && b.As(&oc) {
		st.Classifier = oc.IsOutage
	}
	user := st.OnStateChange
	st.OnStateChange = func(name string, from, to circuit.State) {
		s.mu.Lock()
		s.since = time.Now()
		s.mu.Unlock()
		log.Warn("failoverblob: breaker changed state", "side", name, "from", from.String(), "to", to.String())
		if user != nil {
			user(name, from, to)
		}
	}
	s.br = circuit.New(&st)
	var mt driverx.MD5Taker
	if b.As(&mt) {
		s.md5Said, s.takesMD5 = true, mt.TakesMD5()
	}
	return s
}

// allow asks the side's breaker for a call of kind op on behalf of a caller
// whose context is ctx. The returned ticket's finish records the call's
// outcome; its ctx, ctx with the call's span, is the one to make the call
// with.
func (s *side) allow(ctx context.Context, op sideOp) (ticket, error) {
	ctx, c := s.tel.begin(ctx, s.id, op)
	if s.forced.Load() {
		err := s.forcedOff()
		c.end(ctx, outcomeForced, err)
		return ticket{}, err
	}
	done, err := s.br.Allow(ctx)
	if err != nil {
		err = fmt.Errorf("failoverblob: %w", err) // names the side
		c.end(ctx, outcomeRejected, err)
		return ticket{}, err
	}
	return ticket{s: s, ctx: ctx, done: done, call: c}, nil
}

// refusing reports whether calls to s fail at once: its breaker is open or
// traffic was forced off it.
func (s *side) refusing() bool {
	return s.forced.Load() || s.br.State() == circuit.StateOpen
}

// ticket is a call a side's breaker let through.
type ticket struct {
	s    *side
	ctx  context.Context
	done func(error)
	call sideCall
}

// finish reports the call's outcome to the breaker and to telemetry, and
// keeps the last outage for the status. It must be called once. An error
// from the caller's own hook is the caller's answer, and a write dropped
// because traffic was forced off the side (forcedOff) is no fault of the
// side's: the side did not fail.
func (t ticket) finish(err error) {
	hooked := isHookError(err)
	forced := err != nil && errors.Is(err, errForced)
	o := outcomeOK
	switch {
	case err == nil:
	case forced:
		o = outcomeForced
	case !hooked && t.s.br.IsOutage(t.ctx, err):
		o = outcomeOutage
		t.s.mu.Lock()
		t.s.lastErr, t.s.lastErrAt = redactURLs(err.Error()), time.Now()
		t.s.mu.Unlock()
	default:
		o = outcomeAnswer
	}
	t.call.end(t.ctx, o, err)
	if hooked || forced {
		err = nil
	}
	t.done(err)
}

// urlQuery matches the query string of a URL in an error message, where a
// signature or token would be.
var urlQuery = regexp.MustCompile(`(https?://[^\s?"']*)\?[^\s"']*`)

// redactURLs drops query strings from URLs in s, so that an error kept for
// the status never carries a signature.
func redactURLs(s string) string { return urlQuery.ReplaceAllString(s, "$1?REDACTED") }

// outage reports whether err, from a call to s for a caller whose context is
// ctx, means s is down (including its breaker being open).
func (s *side) outage(ctx context.Context, err error) bool {
	return err != nil && !isHookError(err) && (errors.Is(err, circuit.ErrOpen) || s.br.IsOutage(ctx, err))
}

// call runs fn against s's driver under the breaker and a deadline of
// timeout. The error carries the gcerrors code s's bucket gives it.
func (s *side) call(ctx context.Context, op sideOp, timeout time.Duration, fn func(ctx context.Context) error) error {
	t, err := s.allow(ctx, op)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(t.ctx, timeout)
	err = fn(cctx)
	cancel()
	t.finish(err)
	return err
}

func (s *side) attributes(ctx context.Context, timeout time.Duration, key string) (attrs *driver.Attributes, err error) {
	err = s.call(ctx, opAttributes, timeout, func(ctx context.Context) (err error) {
		attrs, err = s.d.Attributes(ctx, key)
		return err
	})
	return attrs, err
}

func (s *side) delete(ctx context.Context, timeout time.Duration, key string, opts *driver.DeleteOptions) error {
	if opts == nil {
		opts = &driver.DeleteOptions{}
	}
	return s.call(ctx, opDelete, timeout, func(ctx context.Context) error {
		return s.d.Delete(ctx, key, opts)
	})
}

// writeIf is the condition for a write onto s over prior, or nil.
func (s *side) writeIf(prior *driver.Attributes) func(func(any) bool) error {
	var c driverx.ConditionalWriter
	if !s.b.As(&c) {
		return nil
	}
	return c.WriteIf(prior)
}

// deleteIf is the condition for a delete on s of the object prior, or nil.
func (s *side) deleteIf(prior *driver.Attributes) *driver.DeleteOptions {
	var c driverx.ConditionalDeleter
	if prior == nil || !s.b.As(&c) {
		return nil
	}
	return &driver.DeleteOptions{BeforeDelete: c.DeleteIf(prior)}
}

// remove deletes key on s, where the provider can only if it is still the
// object prior describes (see deleteIf); a miss is as good.
func (s *side) remove(ctx context.Context, timeout time.Duration, key string, prior *driver.Attributes) error {
	if err := s.delete(ctx, timeout, key, s.deleteIf(prior)); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// sideIDs are the two sides, the primary first.
var sideIDs = [2]journal.Side{journal.Primary, journal.Secondary}

// status reports the side's health for Status.
func (s *side) status() SideStatus {
	state, counts := s.br.State(), s.br.Counts()
	s.mu.Lock()
	defer s.mu.Unlock()
	return SideStatus{
		Name: s.id.String(), State: state, Since: s.since,
		LastError: s.lastErr, LastErrorAt: s.lastErrAt,
		Requests: counts.Requests, Failures: counts.TotalFailures,
	}
}
