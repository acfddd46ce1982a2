package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/driverx"
	"github.com/failoverblob/failoverblob/journal"
)

// NewTypedWriter implements driver.Bucket. See writer for when the write is
// durable.
func (b *bucket) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := b.f.readOnly(key); err != nil {
		return nil, err
	}
	for k := range opts.Metadata {
		// The rule Attributes hides the reserved keys by: keys that fold
		// to them.
		if isReservedMetadata(k) {
			return nil, fmt.Errorf("%w: metadata key %q is reserved (%q, %q)", ErrReservedKey, k, VersionMetadataKey, StoredMetadataKey)
		}
	}
	f := b.f
	v := f.idx.begin(key, f.clock.Now) // Close ends it
	md := make(map[string]string, len(opts.Metadata)+1)
	maps.Copy(md, opts.Metadata)
	md[VersionMetadataKey] = v.String()
	// The options go to the sides' drivers as they came, and a write's MD5
	// with them to a side whose provider verifies it on arrival (see
	// sideOptions).
	w := &writer{f: f, ctx: ctx, key: key, contentType: contentType, version: v, own: *opts, flight: true}
	// A writer whose Close is never called (gocloud's Writer skips the
	// driver's Close when its first Write fails inside Close, and cancels
	// the context instead) must not leave its key in flight for good: the
	// flight ends when the context is done, as nothing can be committed
	// after that.
	w.stopLanding = context.AfterFunc(ctx, w.land)
	w.own.Metadata = md
	w.own.BeforeWrite = guardHook(opts.BeforeWrite, f.opts.Mode == Mirror)
	w.opts = &w.own
	return w, nil
}

// writer is a write through the failover bucket.
//
// In Redirect mode the bytes stream to the primary and into a spool; if the
// primary fails, before or during the stream or at its commit, the spool is
// replayed to the secondary and a repair is recorded in the journal before
// the secondary commits. In Mirror mode the bytes stream to both sides at
// once.
//
// The write is durable when Close returns nil: the object is committed on the
// primary, or on the secondary with its repair recorded in the journal (as
// durable as the journal is), or in Mirror mode on the sides the AckPolicy
// requires. Until then any previous object stays readable.
type writer struct {
	f           *Failover
	ctx         context.Context
	key         string
	contentType string
	opts        *driver.WriterOptions // for the sides, version stamped
	own         driver.WriterOptions  // what opts points to, for writes through the bucket
	unsummed    *driver.WriterOptions // opts without ContentMD5 (see sideOptions); nil until needed
	version     Version

	started bool
	sw      [2]*sideWriter // open writers, by side
	missed  [2]error       // why a side does not get the write
	sp      *spool         // Redirect: replay copy while writing to the primary
	spErr   error          // Redirect: why the spool was dropped; the write cannot be replayed
	src     io.ReadSeeker  // Redirect: a seekable Upload source, replayed instead of a spool
	srcAt   int64          // where the seekable source started
	size    int64
	err     error   // sticky failure
	reached [2]bool // sides whose commit failed with an outage: they may hold the write
	refused error   // Mirror: the primary's refusal of a write the secondary committed at the same time
	closed  bool
	flight  bool // counted by the index as in flight until Close, or until its context is done
	// landed ends the flight once, at Close or when the writer's context is
	// done; stopLanding cancels the latter, which Close calls first.
	landed      sync.Once
	stopLanding func() bool
}

// land ends the write's flight (see index.begin), once.
func (w *writer) land() {
	if w.flight {
		w.landed.Do(func() { w.f.idx.end(w.key, w.version) })
	}
}

// sideWriter is a write to one side under its breaker and an idle watchdog.
type sideWriter struct {
	s      *side
	w      driver.Writer
	cancel context.CancelFunc
	wd     watchdog
	idle   time.Duration
	t      ticket
}

// Write implements io.Writer. The watchdog runs only while Write waits on
// the side, so a caller that is slow to produce is never taken for a slow
// side.
func (sw *sideWriter) Write(p []byte) (int, error) {
	sw.wd.kick(sw.idle)
	n, err := sw.w.Write(p)
	sw.wd.stop()
	return n, err
}

// commit closes the side's writer and reports the outcome to its breaker.
func (sw *sideWriter) commit() error {
	if sw.s.forced.Load() {
		// Traffic was forced off the side while the write streamed to it:
		// it commits elsewhere, as after an outage.
		err := sw.s.forcedOff()
		sw.abort(err)
		return err
	}
	sw.wd.kick(sw.idle)
	err := sw.w.Close()
	sw.wd.stop()
	sw.cancel()
	sw.t.finish(err)
	return err
}

// abort drops the side's write without committing it: a driver's writer
// whose context is cancelled does not commit.
func (sw *sideWriter) abort(cause error) {
	sw.cancel()
	_ = sw.w.Close()
	sw.wd.stop()
	sw.t.finish(cause)
}

// open opens the write on s, for a caller whose context is ctx: w.ctx, or
// w.ctx marked as a failover. checked says the bytes s is to get are
// verified against w.opts.ContentMD5 before s commits (see sideOptions).
func (w *writer) open(ctx context.Context, s *side, checked bool) error {
	t, err := s.allow(ctx, opWrite)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(t.ctx)
	wd := newWatchdog(w.f.opts.IdleTimeout, cancel)
	octx, opts := w.sideOptions(ctx, s, checked)
	bw, err := s.d.NewTypedWriter(octx, w.key, w.contentType, opts)
	wd.stop()
	if err != nil {
		cancel()
		t.finish(err)
		return err
	}
	w.sw[s.id] = &sideWriter{s: s, w: bw, cancel: cancel, wd: wd, idle: w.f.opts.IdleTimeout, t: t}
	return nil
}

// sideOptions returns the context and the options s's write is opened
// with, ctx being the write's. Where s says whether its provider takes a
// write's MD5 (driverx.MD5Taker) and the bytes s gets are checked against
// the ContentMD5 before s commits (checked), the options leave the
// ContentMD5 out, so that s's portable layer does not hash every byte
// again to check the bytes already checked, and the context carries the
// MD5 for s's provider if it takes it (driverx.WithWriteMD5). The bytes of
// a write through the failover bucket reach Write from gocloud's portable
// layer in front of it, which hashes them and, before it calls Close,
// cancels the write if they do not match (and never calls Upload with a
// ContentMD5). A repair's bytes are checked by the side's own portable
// layer (see transfer), so a repair opens its write unchecked. Bytes
// replayed to the secondary after the primary failed come from the spool:
// the secondary checks them.
func (w *writer) sideOptions(ctx context.Context, s *side, checked bool) (context.Context, *driver.WriterOptions) {
	sum := w.opts.ContentMD5
	if !checked || !s.md5Said || len(sum) == 0 {
		return ctx, w.opts
	}
	if w.unsummed == nil {
		o := *w.opts
		o.ContentMD5 = nil
		w.unsummed = &o
	}
	if s.takesMD5 {
		ctx = driverx.WithWriteMD5(ctx, sum)
	}
	return ctx, w.unsummed
}

// abortAll drops every open side write, for a reason that is not those
// sides' fault (so it does not count against their breakers).
func (w *writer) abortAll() {
	for i, sw := range w.sw {
		if sw != nil {
			sw.abort(nil)
			w.sw[i] = nil
		}
	}
}

func (w *writer) fail(err error) error {
	w.err = err
	w.abortAll()
	return err
}

func (w *writer) start() error {
	w.started = true
	if w.f.opts.Mode == Mirror {
		return w.startMirror()
	}
	pr := w.f.sides[journal.Primary]
	err := w.open(w.ctx, pr, true)
	if err == nil {
		if w.src == nil {
			w.sp = newSpool(w.f.opts.SpoolMemory, w.f.opts.SpoolDir, &w.f.tel.spooled)
		}
		return nil
	}
	if !pr.outage(w.ctx, err) {
		return err
	}
	return w.redirect(err)
}

// redirect moves a Redirect-mode write to the secondary after the primary
// failed with cause, replaying what the primary was sent.
func (w *writer) redirect(cause error) error {
	w.missed[journal.Primary] = cause
	if w.opts.IfNotExist {
		return unavailable(cause, "writing %q with IfNotExist needs the primary, which is down", w.key)
	}
	if w.spErr != nil {
		return unavailable(errors.Join(cause, w.spErr), "the primary failed writing %q and the bytes sent to it could not be kept for the secondary", w.key)
	}
	sec := w.f.sides[journal.Secondary]
	if err := w.open(w.f.failingOver(w.ctx, opWrite, cause), sec, false); err != nil {
		if !sec.outage(w.ctx, err) {
			return err // the secondary's answer (it refuses the key, say)
		}
		return unavailable(errors.Join(cause, err), "both sides are down writing %q", w.key)
	}
	w.f.opts.Logger.Warn("failoverblob: write redirected to the secondary", "key", w.key, "cause", cause)
	sw := w.sw[journal.Secondary]
	switch {
	case w.src != nil:
		if _, err := w.src.Seek(w.srcAt, io.SeekStart); err != nil {
			return err
		}
		n, rerr, werr := copyTo(sw, w.src)
		w.size = n
		if werr != nil {
			return w.secondaryFailed(werr)
		}
		return rerr
	case w.sp != nil:
		_, err := w.sp.WriteTo(sw)
		_ = w.sp.Close()
		w.sp = nil
		if err != nil {
			return w.secondaryFailed(err)
		}
	}
	return nil
}

func (w *writer) startMirror() error {
	for _, s := range w.f.sides {
		if err := w.open(w.ctx, s, true); err != nil {
			if !s.outage(w.ctx, err) {
				w.abortAll()
				return err
			}
			w.missed[s.id] = err
		}
	}
	return w.checkMirror()
}

// checkMirror fails a Mirror-mode write that can no longer be acknowledged.
func (w *writer) checkMirror() error {
	m := w.missed
	switch {
	case m[0] != nil && m[1] != nil:
		return unavailable(errors.Join(m[0], m[1]), "both sides are down writing %q", w.key)
	case w.f.opts.Ack == AckBoth && (m[0] != nil || m[1] != nil):
		return unavailable(errors.Join(m[0], m[1]), "writing %q needs both sides (AckBoth) and one is down", w.key)
	}
	return nil
}

// Write implements io.Writer. An error is sticky: the write then fails at
// Close and nothing is committed.
func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if !w.started {
		if err := w.start(); err != nil {
			return 0, w.fail(err)
		}
	}
	w.size += int64(len(p))
	switch {
	case w.f.opts.Mode == Mirror:
		return w.writeMirror(p)
	case w.sw[journal.Primary] != nil:
		return w.writePrimary(p)
	}
	if _, err := w.sw[journal.Secondary].Write(p); err != nil {
		return 0, w.fail(w.secondaryFailed(err))
	}
	return len(p), nil
}

// writePrimary writes p to the primary and to the spool, and moves the
// write to the secondary if the primary fails.
func (w *writer) writePrimary(p []byte) (int, error) {
	pw := w.sw[journal.Primary]
	w.spool(p)
	_, err := pw.Write(p)
	if err == nil {
		return len(p), nil
	}
	if err := w.primaryFailed(pw, err); err != nil {
		return 0, w.fail(err)
	}
	return len(p), nil
}

// spool keeps p for a replay to the secondary. If the spool fails, the
// primary can still take the write; only a replay is lost, should the
// primary fail.
func (w *writer) spool(p []byte) {
	if w.sp == nil {
		return
	}
	if _, err := w.sp.Write(p); err != nil {
		_ = w.sp.Close()
		w.sp, w.spErr = nil, fmt.Errorf("replay spool: %w", err)
		w.f.opts.Logger.Warn("failoverblob: replay spool dropped; this write cannot go to the secondary if the primary fails", "key", w.key, "cause", err)
	}
}

// primaryFailed takes in a failure of the primary's stream: an outage
// redirects the write to the secondary (and returns nil if that worked);
// any other error is returned as it is.
func (w *writer) primaryFailed(pw *sideWriter, err error) error {
	if !pw.s.outage(w.ctx, err) {
		return err
	}
	pw.abort(err)
	w.sw[journal.Primary] = nil
	return w.redirect(err)
}

// secondaryFailed takes in a failure of a redirected write on the
// secondary. An outage counts against the secondary, and the write is
// unavailable, both sides having failed it; any other error is returned as
// it is.
func (w *writer) secondaryFailed(err error) error {
	sw := w.sw[journal.Secondary]
	if sw == nil || !sw.s.outage(w.ctx, err) {
		return err
	}
	sw.abort(err)
	w.sw[journal.Secondary] = nil
	return unavailable(errors.Join(w.missed[journal.Primary], err), "both sides are down writing %q", w.key)
}

func (w *writer) writeMirror(p []byte) (int, error) {
	for i, sw := range w.sw {
		if sw == nil {
			continue
		}
		if _, err := sw.Write(p); err != nil {
			if !sw.s.outage(w.ctx, err) {
				return 0, w.fail(err)
			}
			sw.abort(err)
			w.sw[i], w.missed[i] = nil, err
		}
	}
	if err := w.checkMirror(); err != nil {
		return 0, w.fail(err)
	}
	return len(p), nil
}

// Upload implements driver.Uploader. In Redirect mode a seekable source is
// replayed from where it started if the primary fails, so it needs no spool.
func (w *writer) Upload(r io.Reader) error {
	rs, ok := r.(io.ReadSeeker)
	if ok && w.f.opts.Mode == Redirect && !w.started {
		if at, err := rs.Seek(0, io.SeekCurrent); err == nil {
			w.src, w.srcAt = rs, at
		}
	}
	if w.src == nil {
		// A failing source fails the write: nothing is committed at Close.
		_, rerr, werr := copyTo(w, r)
		if rerr != nil {
			return w.fail(rerr)
		}
		return werr
	}
	if err := w.start(); err != nil {
		return w.fail(err)
	}
	if pw := w.sw[journal.Primary]; pw != nil {
		n, rerr, werr := copyTo(pw, rs)
		w.size = n
		if werr != nil {
			return w.failUnless(w.primaryFailed(pw, werr))
		}
		return w.failUnless(rerr)
	}
	// start redirected the write, which replayed the source from where it
	// started: whatever is left comes on top of that.
	n, rerr, werr := copyTo(w.sw[journal.Secondary], rs)
	w.size += n
	if werr != nil {
		return w.fail(w.secondaryFailed(werr))
	}
	return w.failUnless(rerr)
}

// failUnless fails the write with err, unless err is nil.
func (w *writer) failUnless(err error) error {
	if err != nil {
		return w.fail(err)
	}
	return nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyTo copies src to dst, telling a failure to read src from a failure to
// write dst.
func copyTo(dst io.Writer, src io.Reader) (n int64, readErr, writeErr error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, nil, werr
			}
		}
		if rerr == io.EOF {
			return n, nil, nil
		}
		if rerr != nil {
			return n, rerr, nil
		}
	}
}
