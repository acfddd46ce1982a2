package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/journal"
)

// bucket is the failover bucket's gocloud driver. The portable layer in
// front of it (blob.Bucket) validates keys and options, sniffs content types
// and verifies ContentMD5 before a write is committed, so bucket does none of
// that again.
type bucket struct {
	f *Failover
}

var (
	_ driver.Bucket   = (*bucket)(nil)
	_ driver.Reader   = (*reader)(nil)
	_ driver.Writer   = (*writer)(nil)
	_ driver.Uploader = (*writer)(nil)
)

var (
	errEmptyKey = errors.New("failoverblob: key is empty")
	errExists   = errors.New("failoverblob: object exists (IfNotExist)")
	// errDeleted answers reads of a key whose pending tombstone has not yet
	// reached every side.
	errDeleted = errors.New("failoverblob: object not found (deleted)")
)

// ErrorCode implements driver.Bucket. Errors from the sides keep the codes
// their own drivers gave them.
func (b *bucket) ErrorCode(err error) gcerrors.ErrorCode {
	switch {
	case errors.Is(err, ErrReservedKey), errors.Is(err, errEmptyKey):
		return gcerrors.InvalidArgument
	case errors.Is(err, errDeleted):
		return gcerrors.NotFound
	case errors.Is(err, errExists):
		return gcerrors.FailedPrecondition
	case errors.Is(err, ErrUnavailable), errors.Is(err, circuit.ErrOpen):
		return gcerrors.Unknown
	}
	return gcerrors.Code(err)
}

// As implements driver.Bucket: a **Failover reaches the control surface, and
// any other type is tried on the primary, then on the secondary.
func (b *bucket) As(i any) bool {
	if p, ok := i.(**Failover); ok {
		*p = b.f
		return true
	}
	return i != nil && (b.f.sides[journal.Primary].d.As(i) || b.f.sides[journal.Secondary].d.As(i))
}

// ErrorAs implements driver.Bucket, trying the primary's types, then the
// secondary's.
func (b *bucket) ErrorAs(err error, i any) bool {
	return b.f.sides[journal.Primary].d.ErrorAs(err, i) || b.f.sides[journal.Secondary].d.ErrorAs(err, i)
}

// Close implements driver.Bucket.
func (b *bucket) Close() error { return b.f.close() }

func isNotFound(err error) bool { return gcerrors.Code(err) == gcerrors.NotFound }

// newestSide reads the version of key on both sides and returns the side
// holding the newer one (the primary on a tie). ok is false if either side
// could not answer or neither holds the key. It is for keys the index knows
// only from the journal: every change to a pending key is journaled as
// missing from the primary, even one that then committed there, so after a
// restart the journal alone cannot say which side holds the newest version.
func (f *Failover) newestSide(ctx context.Context, key string) (journal.Side, bool) {
	vp, inP, _, err := f.objectVersion(ctx, f.sides[journal.Primary], key)
	if err != nil {
		return 0, false
	}
	vs, inS, _, err := f.objectVersion(ctx, f.sides[journal.Secondary], key)
	switch {
	case err != nil || (!inP && !inS):
		return 0, false
	case inP && (!inS || vp.Compare(vs) >= 0):
		return journal.Primary, true
	default:
		return journal.Secondary, true
	}
}

// read runs op on the side that should answer a read of key, falling over to
// the other side when that one is down:
//   - a key with a pending delete reads as not found;
//   - a key with a pending put is read from the side holding its newest
//     version, and is unavailable while that side is down;
//   - any other key is read from the primary, then from the secondary. A miss
//     on the secondary is proof of absence only in Mirror mode.
func (f *Failover) read(ctx context.Context, key string, op func(*side) error) error {
	if p, ok := f.idx.get(key); ok && p.known {
		if p.deleted {
			return fmt.Errorf("%w: %q", errDeleted, key)
		}
		if !p.verified && !p.settled {
			if s, ok := f.newestSide(ctx, key); ok {
				f.idx.settle(key, p.latest, s)
				p.holder = s
			}
		}
		h := f.sides[p.holder]
		err := op(h)
		switch {
		case err == nil:
			return nil
		case !p.verified && (isNotFound(err) || h.outage(ctx, err)):
			// Only the journal says so (the write may have failed before
			// the bucket restarted): the other side may hold the newest
			// version that exists.
			err2 := op(f.sides[p.holder.Other()])
			switch {
			case err2 == nil:
				return nil
			case isNotFound(err2) && h.outage(ctx, err):
				// The side the journal names is down: the other side's
				// miss is no proof of absence.
				return unavailable(err, "the %s may hold the newest version of %q and is down", h.id, key)
			case !f.sides[p.holder.Other()].outage(ctx, err2):
				return err2
			}
			return unavailable(err, "reading %q", key)
		case h.outage(ctx, err):
			return unavailable(err, "the %s holds the newest version of %q and is down", h.id, key)
		case isNotFound(err):
			// The reconciler may have moved the newest version and removed
			// this copy since the index was read: if so, read again.
			if q, ok := f.idx.get(key); !ok || !q.known || q.holder != p.holder || q.latest.Compare(p.latest) != 0 {
				return f.read(ctx, key, op)
			}
			return err
		default:
			return err
		}
	}
	pr, sec := f.sides[journal.Primary], f.sides[journal.Secondary]
	err := op(pr)
	if err == nil || !pr.outage(ctx, err) {
		return err
	}
	if f.opts.Mode == Mirror && ctx.Value(lockHeld{}) != key {
		// A change in flight may have reached the primary and not yet the
		// secondary, and a reader may have seen it there: wait for the
		// change (it holds the key's lock), then read as its outcome says.
		lock := f.locks.lock(key)
		if p, ok := f.idx.get(key); ok && p.known {
			lock.Unlock()
			return f.read(ctx, key, op)
		}
		defer lock.Unlock()
	}
	if f.idx.pending(key) {
		// A change to it failed and may or may not have taken effect: the
		// secondary's copy may be newer than what the primary served, or
		// older, and serving it would make that change flicker.
		return unavailable(err, "%q has pending work of unknown outcome and the primary is down", key)
	}
	err2 := op(sec)
	switch {
	case err2 == nil:
		f.opts.Logger.Debug("failoverblob: read served by the secondary", "key", key, "cause", err)
		return nil
	case isNotFound(err2) && f.opts.Mode == Mirror:
		return err2
	case isNotFound(err2):
		return unavailable(err, "%q is not on the secondary and the primary is down", key)
	case sec.outage(ctx, err2):
		return unavailable(errors.Join(err, err2), "both sides are down reading %q", key)
	default:
		return err2
	}
}

// Attributes implements driver.Bucket. The version metadata is hidden.
func (b *bucket) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f := b.f
	var attrs *driver.Attributes
	err := f.read(ctx, key, func(s *side) (err error) {
		attrs, err = s.attributes(ctx, f.opts.CallTimeout, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	return withoutVersion(attrs), nil
}

// withoutVersion returns a copy of a without the version metadata. Drivers
// may return attributes they keep, so a is not changed.
func withoutVersion(a *driver.Attributes) *driver.Attributes {
	c := *a
	if _, ok := versionEntry(a.Metadata); ok {
		c.Metadata = make(map[string]string, len(a.Metadata)-1)
		for k, v := range a.Metadata {
			if !isVersionKey(k) {
				c.Metadata[k] = v
			}
		}
	}
	return &c
}

// NewRangeReader implements driver.Bucket.
func (b *bucket) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var r *reader
	err := b.f.read(ctx, key, func(s *side) (err error) {
		r, err = b.f.openReader(ctx, s, key, offset, length, &driver.ReaderOptions{BeforeRead: guardHook(opts.BeforeRead, false)})
		return err
	})
	return r, err
}

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
	t, err := s.allow(ctx)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	wd := newWatchdog(f.opts.FirstByteTimeout, cancel)
	r, err := s.d.NewRangeReader(rctx, key, offset, length, opts)
	wd.stop()
	if err != nil {
		err = s.coded(err)
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
	if err != nil && err != io.EOF {
		err = r.s.coded(err)
	}
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
	return r.s.coded(err)
}

func (r *reader) Attributes() *driver.ReaderAttributes { return r.r.Attributes() }

func (r *reader) As(i any) bool { return r.r.As(i) }

// ListPaged implements driver.Bucket.
func (b *bucket) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	return b.f.list(ctx, opts)
}

// Copy implements driver.Bucket. The object is read through the failover
// bucket and written back through it, so the copy is routed, versioned and
// journaled like any other write. A side's own copy is not used: it would
// keep the source's version stamp, older than the copy itself, and a
// redirected write of dstKey made earlier by another process would then win
// over the copy on reconcile.
func (b *bucket) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	for _, k := range []string{dstKey, srcKey} {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	if dstKey == "" {
		return errEmptyKey
	}
	if opts.BeforeCopy != nil {
		if err := opts.BeforeCopy(func(any) bool { return false }); err != nil {
			return err
		}
	}
	return b.f.streamCopy(ctx, dstKey, srcKey)
}

// lockHeld is the context key that tells read its caller holds the lock of
// the key (the value) already.
type lockHeld struct{}

// streamCopy copies srcKey to dstKey through the failover bucket itself.
func (f *Failover) streamCopy(ctx context.Context, dstKey, srcKey string) error {
	b := f.bucket
	// Writes to the source commit under its lock: holding it while the
	// attributes are read and the reader is opened keeps the copy from
	// pairing one version's metadata with another version's bytes.
	lock := f.locks.lock(srcKey)
	rctx := context.WithValue(ctx, lockHeld{}, srcKey)
	attrs, err := b.Attributes(rctx, srcKey)
	var r *blob.Reader
	if err == nil {
		r, err = b.NewReader(rctx, srcKey, nil)
	}
	lock.Unlock()
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	ct := attrs.ContentType
	// Upload replays a seekable source by seeking it back, which would
	// read the source again, perhaps from the other side or after it
	// changed: hand it a plain stream, so that a replay comes from the
	// spool of the bytes read once.
	return b.Upload(ctx, dstKey, struct{ io.Reader }{r}, &blob.WriterOptions{
		CacheControl:                attrs.CacheControl,
		ContentDisposition:          attrs.ContentDisposition,
		ContentEncoding:             attrs.ContentEncoding,
		ContentLanguage:             attrs.ContentLanguage,
		ContentType:                 orDefault(ct, "application/octet-stream"),
		DisableContentTypeDetection: ct == "",
		Metadata:                    attrs.Metadata,
	})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Delete implements driver.Bucket. In Redirect mode a delete while the
// primary is down is acknowledged once its tombstone is recorded in the
// journal; it then reports success whether or not the object existed, since
// the primary cannot be asked.
func (b *bucket) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	f := b.f
	defer f.locks.lock(key).Unlock()
	dopts := &driver.DeleteOptions{BeforeDelete: guardHook(opts.BeforeDelete, f.opts.Mode == Mirror)}
	if f.opts.Mode == Mirror {
		defer f.idx.commitStarts(key)()
		return f.deleteMirror(ctx, key, dopts)
	}
	return f.deleteRedirect(ctx, key, dopts)
}

func (f *Failover) deleteRedirect(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	v := f.clock.Now()
	p, pending := f.idx.get(key)
	recorded, id := false, ""
	if pending {
		var err error
		if id, err = f.record(ctx, key, journal.Delete, v, journal.Primary, 0); err != nil {
			return err
		}
		recorded = true
	}
	pr, sec := f.sides[journal.Primary], f.sides[journal.Secondary]
	err := pr.delete(ctx, f.opts.CallTimeout, key, opts)
	switch {
	case err == nil, isNotFound(err) && pending && p.known && !p.deleted:
		// The primary no longer has it; the tombstone (if the key had
		// pending work) keeps the secondary's copy from coming back.
		f.idx.commit(key, v, true, journal.Primary, 0)
		return nil
	case !pr.outage(ctx, err):
		// Refused: the delete must not take effect later either.
		if recorded {
			f.retract(key, journal.Primary, id)
		}
		return err
	}
	if !recorded {
		if _, err := f.record(ctx, key, journal.Delete, v, journal.Primary, 0); err != nil {
			return err
		}
	}
	f.idx.commit(key, v, true, journal.Primary, 0)
	// The temporary copy, if any, goes now; the tombstone covers it if not.
	_ = sec.delete(ctx, f.opts.CallTimeout, key, opts)
	f.opts.Logger.Warn("failoverblob: delete recorded as a tombstone while the primary is down", "key", key, "cause", err)
	return nil
}

func (f *Failover) deleteMirror(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	v := f.clock.Now()
	p, pending := f.idx.get(key)
	var ids [2]string
	rec := func(s journal.Side) error {
		if ids[s] != "" {
			return nil
		}
		id, err := f.record(ctx, key, journal.Delete, v, s, 0)
		ids[s] = id
		return err
	}
	for _, s := range []journal.Side{journal.Primary, journal.Secondary} {
		if p.entries[s] > 0 {
			if err := rec(s); err != nil {
				return err
			}
		}
	}
	withdraw := func() {
		for _, s := range []journal.Side{journal.Primary, journal.Secondary} {
			if ids[s] != "" {
				f.retract(key, s, ids[s])
			}
		}
	}
	var errs [2]error
	var answered, found, down [2]bool
	for _, s := range f.sides {
		if f.opts.Ack == AckBoth && s.id == journal.Secondary && down[journal.Primary] {
			errs[s.id], down[s.id] = errs[journal.Primary], true
			break
		}
		errs[s.id] = s.delete(ctx, f.opts.CallTimeout, key, opts)
		if s.id == journal.Primary && isNotFound(errs[s.id]) && !pending {
			// Both sides hold every key that is not pending: the primary's
			// miss is the answer.
			return errs[s.id]
		}
		switch {
		case errs[s.id] == nil:
			answered[s.id], found[s.id] = true, true
		case isNotFound(errs[s.id]):
			answered[s.id] = true
		case s.outage(ctx, errs[s.id]):
			down[s.id] = true
			if err := rec(s.id); err != nil {
				return err
			}
		case s.id == journal.Primary:
			// Refused before anything was deleted: withdraw the
			// tombstones so the delete does not take effect later.
			withdraw()
			return errs[s.id]
		case !answered[journal.Primary]:
			// The primary is down and the secondary refuses: nothing was
			// deleted.
			withdraw()
			return errs[s.id]
		default:
			// The primary's delete stands; the secondary's refusal is
			// repaired like a miss.
			if err := rec(s.id); err != nil {
				return err
			}
			down[s.id] = true
		}
	}
	if !answered[0] && !answered[1] {
		err := unavailable(errors.Join(errs[0], errs[1]), "both sides are down deleting %q", key)
		var he *hookError
		if errors.As(errs[1], &he) || (errors.Is(errs[0], circuit.ErrOpen) && errors.Is(errs[1], circuit.ErrOpen)) {
			// The caller's hook refused the delete (it runs for the first
			// side reached, so the primary was not reached), or neither
			// side was asked: nothing was deleted.
			withdraw()
			return err
		}
		// A side that was asked may have deleted the object and lost the
		// answer. The delete then has to reach both sides, or they stay
		// apart for good: record it for both, and read the key as deleted
		// until it is reconciled. The caller still learns it failed.
		for _, s := range []journal.Side{journal.Primary, journal.Secondary} {
			if rerr := rec(s); rerr != nil {
				return rerr
			}
		}
		f.idx.commit(key, v, true, journal.Primary, 0)
		return err
	}
	existed := found[0] || found[1] || (pending && p.known && !p.deleted)
	if !existed {
		// Not found: an answer, not a change. Committing it as the key's
		// newest change would overrule a write in flight that this answer
		// says came later, so nothing is recorded.
		withdraw()
		if !down[journal.Primary] {
			return errs[journal.Primary]
		}
		// The secondary holds every key that is not pending, so its miss
		// is an answer too.
		return errs[journal.Secondary]
	}
	f.idx.commit(key, v, true, journal.Primary, 0)
	if f.opts.Ack == AckBoth && (down[0] || down[1]) {
		return unavailable(errors.Join(errs[0], errs[1]), "delete of %q reached only one side; a repair is recorded", key)
	}
	return nil
}

// SignedURL implements driver.Bucket. The URL is signed by the side that
// serves the key: the holder of a pending key's newest version, else the
// primary, else (in Mirror mode, with the primary down) the secondary.
// Signing is local to most providers and would succeed for a side that is
// down, so the side is first asked for the key's attributes: an outage
// there moves the URL to the other side, as a read would move. A URL that
// writes or deletes bypasses the failover bucket: it stamps no version and
// records no repair.
func (b *bucket) SignedURL(ctx context.Context, key string, opts *driver.SignedURLOptions) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	f := b.f
	sign := func(s *side) (url string, err error) {
		if _, err := s.attributes(ctx, f.opts.CallTimeout, key); err != nil && s.outage(ctx, err) {
			return "", err
		}
		err = s.call(ctx, f.opts.CallTimeout, func(ctx context.Context) (err error) {
			o := *opts
			o.BeforeSign = guardHook(opts.BeforeSign, false)
			url, err = s.d.SignedURL(ctx, key, &o)
			return err
		})
		return url, err
	}
	if p, ok := f.idx.get(key); ok && p.known && !p.deleted {
		h := f.sides[p.holder]
		url, err := sign(h)
		if err != nil && h.outage(ctx, err) {
			return "", unavailable(err, "the %s holds the newest version of %q and is down", h.id, key)
		}
		return url, err
	}
	pr := f.sides[journal.Primary]
	url, err := sign(pr)
	switch {
	case err == nil || !pr.outage(ctx, err):
		return url, err
	case f.opts.Mode == Redirect:
		return "", unavailable(err, "signing a URL for %q while the primary is down", key)
	}
	return sign(f.sides[journal.Secondary])
}

// NewTypedWriter implements driver.Bucket. See writer for when the write is
// durable.
func (b *bucket) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if key == "" {
		return nil, errEmptyKey
	}
	if _, ok := opts.Metadata[VersionMetadataKey]; ok {
		return nil, fmt.Errorf("%w: metadata key %q", ErrReservedKey, VersionMetadataKey)
	}
	f := b.f
	f.idx.begin(key) // before the version is stamped; Close ends it
	v := f.clock.Now()
	md := make(map[string]string, len(opts.Metadata)+1)
	maps.Copy(md, opts.Metadata)
	md[VersionMetadataKey] = v.String()
	// The options go to the sides' drivers as they came, ContentMD5
	// included, so a provider verifies the checksum on arrival.
	w := &writer{f: f, ctx: ctx, key: key, contentType: contentType, version: v, own: *opts, flight: true}
	w.own.Metadata = md
	w.own.BeforeWrite = guardHook(opts.BeforeWrite, f.opts.Mode == Mirror)
	w.opts = &w.own
	return w, nil
}
