package failovertest

import (
	"context"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
)

// reader reads from base through the Injector.
//
// It keeps the context it was opened with, as gocloud's readers do: reads
// take no context of their own, and a hanging read waits on this one.
type reader struct {
	in    *Injector
	ctx   context.Context
	r     *blob.Reader
	fault effect // armed part-way failure when fault.afterBytes > 0
	n     int64  // bytes read so far
	err   error  // sticky: once a read is failed, every later read is
	attrs driver.ReaderAttributes
}

// Read implements io.Reader. An error from base is returned as it is.
func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if e := r.in.stream(OpRead); e.fails {
		r.err = e.failure(r.ctx)
		return 0, r.err
	}
	if r.fault.afterBytes > 0 {
		left := r.fault.afterBytes - r.n
		if left <= 0 {
			r.err = r.fault.failure(r.ctx)
			return 0, r.err
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := r.r.Read(p)
	r.n += int64(n)
	return n, err
}

// Close implements io.Closer. It is never faulted: it only releases the
// reader of base.
func (r *reader) Close() error { return r.r.Close() }

// Attributes implements driver.Reader with the attributes base reported when
// the reader was opened.
func (r *reader) Attributes() *driver.ReaderAttributes { return &r.attrs }

// As implements driver.Reader by forwarding to the reader of base.
func (r *reader) As(i any) bool { return r.r.As(i) }

// writer writes to base through the Injector. The object is committed on
// base only by a Close that is not failed; any failure aborts the writer of
// base, so the previous object, if any, remains.
type writer struct {
	in     *Injector
	ctx    context.Context // the stream's; a hanging Write or Close waits on it
	w      *blob.Writer
	cancel context.CancelFunc // aborts w
	fault  effect             // armed part-way or applied failure
	n      int64              // bytes written so far
	err    error              // sticky: set once w is aborted
}

// Write implements io.Writer. An error from base is returned as it is.
func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if e := w.in.stream(OpWrite); e.fails {
		return 0, w.abort(e.failure(w.ctx))
	}
	if w.fault.afterBytes > 0 {
		left := w.fault.afterBytes - w.n
		if left <= 0 {
			return 0, w.abort(w.fault.failure(w.ctx))
		}
		if int64(len(p)) > left {
			n, err := w.w.Write(p[:left])
			w.n += int64(n)
			if err != nil {
				return n, err
			}
			return n, w.abort(w.fault.failure(w.ctx))
		}
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
}

// Close implements io.Closer: it commits the object on base, unless the
// writer was failed, in which case it reports the failure again and commits
// nothing. With an Applied fault it commits and then reports the fault.
func (w *writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if e := w.in.stream(OpWrite); e.fails {
		return w.abort(e.failure(w.ctx))
	}
	if w.fault.afterBytes > 0 && w.n >= w.fault.afterBytes {
		return w.abort(w.fault.failure(w.ctx))
	}
	err := w.w.Close()
	w.cancel()
	if err != nil || !w.fault.applied {
		return err
	}
	return w.fault.failure(w.ctx)
}

// abort drops the write on base without committing it and makes err the
// writer's answer from now on.
func (w *writer) abort(err error) error {
	w.err = err
	w.cancel()
	_ = w.w.Close()
	return err
}
