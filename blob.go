package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"

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

// ErrorCode implements driver.Bucket. Errors from the sides keep the codes
// their own drivers gave them.
func (b *bucket) ErrorCode(err error) gcerrors.ErrorCode {
	switch {
	case errors.Is(err, ErrReservedKey), errors.Is(err, errInvalidKey):
		return gcerrors.InvalidArgument
	case errors.Is(err, errDeleted), errors.Is(err, errNotFound):
		return gcerrors.NotFound
	case errors.Is(err, errExists):
		return gcerrors.FailedPrecondition
	case errors.Is(err, ErrUnavailable), errors.Is(err, circuit.ErrOpen):
		return gcerrors.Unknown
	}
	return gcerrors.Code(err)
}

// As implements driver.Bucket: a **Failover reaches the control surface, a
// *ConditionalWriter or *ConditionalDeleter nothing (see ConditionalWriter),
// and any other type is tried on the primary, then on the secondary.
func (b *bucket) As(i any) bool {
	switch p := i.(type) {
	case **Failover:
		*p = b.f
		return true
	case *ConditionalWriter, *ConditionalDeleter:
		return false
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
	if opts.BeforeCopy != nil {
		if err := opts.BeforeCopy(func(any) bool { return false }); err != nil {
			return err
		}
	}
	return b.f.streamCopy(ctx, dstKey, srcKey)
}

// streamCopy copies srcKey to dstKey through the failover bucket itself.
func (f *Failover) streamCopy(ctx context.Context, dstKey, srcKey string) error {
	b := f.bucket
	// Writes to the source commit under its lock: holding it while the
	// attributes are read and the reader is opened keeps the copy from
	// pairing one version's metadata with another version's bytes.
	lock := f.locks.lock(srcKey)
	rctx := holding(ctx, srcKey)
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
	p, pending, err := f.state(ctx, key)
	switch {
	case err != nil:
		return "", err
	case pending && !p.deleted:
		var url string
		err := f.readPending(ctx, key, p, func(s *side) (err error) {
			url, err = sign(s)
			return err
		})
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
	for k := range opts.Metadata {
		// The rule Attributes hides the version by: keys that fold to it.
		if isVersionKey(k) {
			return nil, fmt.Errorf("%w: metadata key %q is %q, which is reserved", ErrReservedKey, k, VersionMetadataKey)
		}
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
