package failoverblob

import (
	"context"
	"io"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
)

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
	if err := b.f.readOnly(dstKey); err != nil {
		return err
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
