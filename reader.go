package failoverblob

import (
	"context"
	"io"
	"time"

	"gocloud.dev/blob/driver"
)

// reader reads from one side. Its breaker outcome is the time to first
// byte: the first Read (or Close before any) reports it.
type reader struct {
	r        driver.Reader
	wd       watchdog
	wait     time.Duration // the bound on the next Read: first byte, then idle
	idle     time.Duration
	stop     context.CancelFunc
	t        ticket
	reported bool // the breaker has the outcome
	ctx      context.Context
	s        *side
	key      string
}

func (f *Failover) openReader(ctx context.Context, s *side, key string, offset, length int64, opts *driver.ReaderOptions) (*reader, error) {
	t, err := s.allow(ctx, opRead)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(t.ctx)
	wd := newWatchdog(f.opts.FirstByteTimeout, cancel)
	r, err := s.d.NewRangeReader(rctx, key, offset, length, opts)
	wd.stop()
	if err != nil {
		cancel()
		t.finish(err)
		return nil, err
	}
	return &reader{
		r: r, wd: wd, wait: f.opts.FirstByteTimeout, idle: f.opts.IdleTimeout, stop: cancel, t: t, ctx: ctx, s: s, key: key,
	}, nil
}

// Read implements io.Reader. The watchdog runs only while Read waits on the
// side, so a caller that is slow to read is never taken for a slow side.
func (r *reader) Read(p []byte) (int, error) {
	r.wd.kick(r.wait)
	n, err := r.r.Read(p)
	r.wd.stop()
	r.wait = r.idle
	if !r.reported {
		if err == io.EOF {
			r.t.finish(nil)
		} else {
			r.t.finish(err)
		}
		r.reported = true
	}
	switch {
	case err == nil || err == io.EOF:
	case isNotFound(err):
		// The object was there when the read began. A client that reopens
		// a cut stream (as the GCS client does) can find it gone: moved by
		// the reconciler, or deleted since. Not found would be false for a
		// read that has begun; the caller should read again.
		err = unavailable(err, "%q went from the %s while it was read; read it again", r.key, r.s.id)
	case r.s.outage(r.ctx, err):
		// The side failed part-way; a new read goes where reads go now.
		err = unavailable(err, "the %s failed while %q was read; read it again", r.s.id, r.key)
	}
	return n, err
}

func (r *reader) Close() error {
	if !r.reported {
		r.t.finish(nil)
		r.reported = true
	}
	r.wd.stop()
	err := r.r.Close()
	r.stop()
	return err
}

func (r *reader) Attributes() *driver.ReaderAttributes { return r.r.Attributes() }

func (r *reader) As(i any) bool { return r.r.As(i) }
