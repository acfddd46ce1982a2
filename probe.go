package failoverblob

import (
	"context"
	"fmt"
	"time"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/circuit"
)

// Active probes notice a side that has come back without waiting for user
// traffic, or for the breaker's Timeout: while a side's breaker is not
// closed, Run probes it every ProbeInterval, and Drain probes a side whose
// breaker is open before it repairs. A probe writes a small canary under
// the reserved prefix, reads it back and removes it, going around the
// breaker; if all three succeed, the breaker is closed at once
// (circuit.Breaker.Reset).

// probeKey is the name of this instance's canary.
func (f *Failover) probeKey() string { return ReservedPrefix + "probe/" + f.instance }

// probe checks side s with a canary, and closes its breaker if s answers.
// It reports whether s answered.
func (f *Failover) probe(ctx context.Context, s *side) bool {
	if s.forced.Load() {
		return false
	}
	key := f.probeKey()
	body := []byte("probe " + f.instance)
	err := s.direct(ctx, f.opts.CallTimeout, func(ctx context.Context) error {
		if err := s.writeSmall(ctx, key, body, nil); err != nil {
			return err
		}
		a, err := s.d.Attributes(ctx, key)
		if err != nil {
			return err
		}
		if a.Size != int64(len(body)) {
			return fmt.Errorf("the canary read back has %d bytes, want %d", a.Size, len(body))
		}
		return s.d.Delete(ctx, key, &driver.DeleteOptions{})
	})
	if err != nil {
		f.opts.Logger.Debug("failoverblob: probe failed", "side", s.id.String(), "err", redactURLs(err.Error()))
		return false
	}
	if s.br.State() != circuit.StateClosed {
		f.opts.Logger.Info("failoverblob: side answered a probe; breaker closed", "side", s.id.String())
		s.br.Reset()
	}
	return true
}

// probeDown probes the sides whose breaker is not closed; with openOnly,
// only those whose breaker is open.
func (f *Failover) probeDown(ctx context.Context, openOnly bool) {
	for _, s := range f.sides {
		st := s.br.State()
		if st == circuit.StateClosed || openOnly && st != circuit.StateOpen {
			continue
		}
		f.probe(ctx, s)
	}
}

// direct runs fn against s with a deadline of timeout, around the breaker.
func (s *side) direct(ctx context.Context, timeout time.Duration, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(cctx)
}

// writeSmall writes body under key on s's driver with opts (nil: none),
// for the library's own small objects; the caller decides whether s's
// breaker counts the call. A write that
// fails is aborted: its writer is closed once its context is cancelled, so
// that nothing is committed and the writer is not left open.
func (s *side) writeSmall(ctx context.Context, key string, body []byte, opts *driver.WriterOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opts == nil {
		opts = &driver.WriterOptions{}
	}
	w, err := s.d.NewTypedWriter(ctx, key, "text/plain", opts)
	if err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		cancel()
		_ = w.Close()
		return err
	}
	return w.Close()
}
