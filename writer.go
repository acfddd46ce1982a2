package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/journal"
)

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
	closed  bool
	flight  bool // counted by the index as in flight until Close
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

func (w *writer) open(s *side) error {
	t, err := s.allow(w.ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(w.ctx)
	wd := newWatchdog(w.f.opts.IdleTimeout, cancel)
	bw, err := s.d.NewTypedWriter(ctx, w.key, w.contentType, w.opts)
	wd.stop()
	if err != nil {
		cancel()
		t.finish(err)
		return err
	}
	w.sw[s.id] = &sideWriter{s: s, w: bw, cancel: cancel, wd: wd, idle: w.f.opts.IdleTimeout, t: t}
	return nil
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
	err := w.open(pr)
	if err == nil {
		if w.src == nil {
			w.sp = newSpool(w.f.opts.SpoolMemory, w.f.opts.SpoolDir)
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
	if err := w.open(sec); err != nil {
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
		if err := w.open(s); err != nil {
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
	if w.f.opts.Mode == Mirror {
		return w.writeMirror(p)
	}
	if pw := w.sw[journal.Primary]; pw != nil {
		if w.sp != nil {
			if _, err := w.sp.Write(p); err != nil {
				// The primary can still take the write; only a replay to
				// the secondary is lost, should the primary fail.
				_ = w.sp.Close()
				w.sp, w.spErr = nil, fmt.Errorf("replay spool: %w", err)
				w.f.opts.Logger.Warn("failoverblob: replay spool dropped; this write cannot go to the secondary if the primary fails", "key", w.key, "cause", err)
			}
		}
		_, err := pw.Write(p)
		if err == nil {
			return len(p), nil
		}
		if !pw.s.outage(w.ctx, err) {
			return 0, w.fail(err)
		}
		pw.abort(err)
		w.sw[journal.Primary] = nil
		if err := w.redirect(err); err != nil {
			return 0, w.fail(err)
		}
		return len(p), nil
	}
	if _, err := w.sw[journal.Secondary].Write(p); err != nil {
		return 0, w.fail(w.secondaryFailed(err))
	}
	return len(p), nil
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
		switch {
		case werr != nil && pw.s.outage(w.ctx, werr):
			pw.abort(werr)
			w.sw[journal.Primary] = nil
			if err := w.redirect(werr); err != nil {
				return w.fail(err)
			}
			return nil
		case werr != nil:
			return w.fail(werr)
		case rerr != nil:
			return w.fail(rerr)
		}
		return nil
	}
	// start redirected the write, which replayed the source from where it
	// started: whatever is left comes on top of that.
	n, rerr, werr := copyTo(w.sw[journal.Secondary], rs)
	w.size += n
	switch {
	case werr != nil:
		return w.fail(w.secondaryFailed(werr))
	case rerr != nil:
		return w.fail(rerr)
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

// Close commits the write; see writer for when it is durable. If the
// context the writer was opened with is done, nothing is committed.
func (w *writer) Close() error {
	if w.closed {
		return errors.New("failoverblob: writer already closed")
	}
	w.closed = true
	if w.flight {
		defer w.f.idx.end(w.key)
	}
	defer func() {
		w.abortAll()
		if w.sp != nil {
			_ = w.sp.Close()
		}
	}()
	if err := w.ready(); err != nil {
		return err
	}
	defer w.f.locks.lock(w.key).Unlock()
	if done, err := w.giveWay(); done {
		w.abortAll()
		return err
	}
	if w.opts.IfNotExist {
		if err := w.clearTombstone(); err != nil {
			w.abortAll()
			return err
		}
		// Still under the key's lock, after the commit.
		defer w.f.idx.conditional(w.key, w.version)
	}
	defer w.f.idx.commitStarts(w.key)()
	commit := w.commitRedirect
	if w.f.opts.Mode == Mirror {
		commit = w.commitMirror
	}
	err := commit()
	if err != nil {
		// A side whose commit failed may hold the write all the same.
		w.f.idx.reached(w.key, w.reached)
	}
	return err
}

// ready brings the write to the point of committing: its context is live,
// nothing failed, and the sides' writers are open.
func (w *writer) ready() error {
	if err := w.ctx.Err(); err != nil {
		w.abortAll()
		return err
	}
	if w.err != nil {
		return w.err
	}
	if !w.started {
		return w.start()
	}
	return nil
}

// giveWay decides, under the key's lock, whether the write must not commit,
// and with what outcome: an IfNotExist write of a key that exists where the
// primary's precondition cannot see it, or a write overtaken by a newer
// change.
func (w *writer) giveWay() (done bool, err error) {
	if w.opts.IfNotExist {
		p, pending, err := w.f.state(holding(w.ctx, w.key), w.key)
		switch {
		case err != nil:
			return true, err
		case pending && !p.deleted:
			// The newest version may be only on the secondary, where the
			// primary's precondition cannot see it.
			return true, fmt.Errorf("%w: %q", errExists, w.key)
		}
	}
	newer, by := w.f.idx.overtaken(w.key, w.version)
	if !newer {
		return false, nil
	}
	// A change stamped after this write opened has already committed.
	// Committing now would put an older version over it, which the
	// reconciler would later undo in favour of the newer one, or leave the
	// sides apart; instead the write takes its place just before that
	// change, which replaced it. Nothing is left to store.
	switch {
	case w.opts.IfNotExist && !by.deleted:
		return true, fmt.Errorf("%w: %q", errExists, w.key)
	case by.conditional:
		// That change found the key absent: nothing came just before it.
		return true, unavailable(nil, "an IfNotExist write of %q committed while this write was in flight", w.key)
	case w.opts.IfNotExist:
		// Whether the key was absent just before the delete is unknown.
		return true, unavailable(nil, "%q was deleted while an IfNotExist write of it was in flight", w.key)
	}
	return true, nil
}

// clearTombstone applies a pending tombstone of the key to the sides this
// IfNotExist write goes to: a side may still hold the object the tombstone
// deleted, and its precondition would refuse the write. The delete is part
// of this write and rides on its breaker slot (a half-open breaker has no
// other). If it fails, the side's answer would say the deleted object
// exists: the write fails.
func (w *writer) clearTombstone() error {
	if p, ok := w.f.idx.get(w.key); !ok || !p.known || !p.deleted {
		return nil
	}
	for _, sw := range w.sw {
		if sw == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(w.ctx, w.f.opts.CallTimeout)
		err := sw.s.d.Delete(ctx, w.key, &driver.DeleteOptions{})
		cancel()
		if err != nil && !isNotFound(err) {
			return unavailable(err, "writing %q with IfNotExist needs its deleted object gone from the %s", w.key, sw.s.id)
		}
	}
	return nil
}

func (w *writer) commitRedirect() error {
	f := w.f
	_, pending := f.idx.get(w.key)
	recorded := false
	if pw := w.sw[journal.Primary]; pw != nil {
		w.sw[journal.Primary] = nil
		// While a key has pending work, every change to it is recorded, so
		// the reconciler sees the newest one.
		err, rerr := w.commitRecording(pw, pending)
		switch {
		case rerr != nil:
			w.reached[journal.Primary] = err == nil
			return rerr
		case err == nil:
			f.idx.commit(w.key, w.version, false, only(journal.Primary), w.size)
			return nil
		case !pw.s.outage(w.ctx, err):
			return err
		}
		recorded = pending
		w.reached[journal.Primary] = true
		if err := w.redirect(err); err != nil {
			return err
		}
	}
	sw := w.sw[journal.Secondary]
	w.sw[journal.Secondary] = nil
	err, rerr := w.commitRecording(sw, !recorded)
	switch {
	case rerr != nil:
		w.reached[journal.Secondary] = err == nil
		return rerr
	case err != nil && sw.s.outage(w.ctx, err):
		w.reached[journal.Secondary] = true
		return unavailable(errors.Join(w.missed[journal.Primary], err), "both sides are down writing %q", w.key)
	case err != nil:
		return err
	}
	f.idx.commit(w.key, w.version, false, only(journal.Secondary), w.size)
	return nil
}

// commitRecording commits sw and, if record is set, records at the same
// time that the primary is missing the write: with a journal on the
// buckets, the entry and the data are two requests, and a write waits for
// the slower, not for both in turn. The write is acknowledged only once
// both have succeeded, so an acknowledged write is always recorded; a crash
// between the two can leave data no entry describes, which the verifier
// finds. err is the commit's outcome, rerr the record's.
func (w *writer) commitRecording(sw *sideWriter, record bool) (err, rerr error) {
	if !record {
		return sw.commit(), nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, rerr = w.f.record(w.ctx, w.key, journal.Put, w.version, journal.Primary, w.size)
	}()
	err = sw.commit()
	<-done
	return err, rerr
}

func (w *writer) commitMirror() error {
	f := w.f
	p, _ := f.idx.get(w.key)
	var recorded [2]bool
	rec := func(s journal.Side) error {
		if recorded[s] {
			return nil
		}
		_, err := f.record(w.ctx, w.key, journal.Put, w.version, s, w.size)
		recorded[s] = err == nil
		return err
	}
	for _, s := range []journal.Side{journal.Primary, journal.Secondary} {
		if w.missed[s] != nil || p.entries[s] > 0 {
			if err := rec(s); err != nil {
				return err
			}
		}
	}
	var applied [2]bool
	for _, s := range []journal.Side{journal.Primary, journal.Secondary} {
		sw := w.sw[s]
		if sw == nil {
			continue
		}
		w.sw[s] = nil
		err := sw.commit()
		if err == nil {
			applied[s] = true
			continue
		}
		outage := sw.s.outage(w.ctx, err)
		if !outage && !applied[journal.Primary] {
			// A refusal (a failed precondition, say) before anything was
			// committed refuses the write.
			return err
		}
		w.missed[s], w.reached[s] = err, outage
		// Recorded before the secondary commits; for the secondary, after
		// the primary did, so a crash in between is left to the verifier.
		if err := rec(s); err != nil {
			return err
		}
	}
	if !applied[0] && !applied[1] {
		return unavailable(errors.Join(w.missed[0], w.missed[1]), "both sides are down writing %q", w.key)
	}
	holder := journal.Primary
	if !applied[journal.Primary] {
		holder = journal.Secondary
	}
	f.idx.commit(w.key, w.version, false, applied, w.size)
	if f.opts.Ack == AckBoth && !(applied[0] && applied[1]) {
		return unavailable(w.missed[holder.Other()], "write of %q reached only the %s; a repair is recorded", w.key, holder)
	}
	if !applied[journal.Primary] {
		f.opts.Logger.Warn("failoverblob: mirrored write reached only the secondary", "key", w.key, "cause", w.missed[journal.Primary])
	}
	return nil
}
