package failoverblob

import (
	"bytes"
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
	attrs, r, err := f.openCopySource(ctx, srcKey)
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

// openCopySource reads the attributes of srcKey and opens a reader of the
// same object. Writes to the source in this process commit under its lock,
// which is held meanwhile; another process's write between the two calls
// would pair one object's attributes with another's bytes, so the
// attributes are read again once the reader is open, and the two must
// agree (the reader's object is fixed when it opens). A source that keeps
// changing is unavailable.
func (f *Failover) openCopySource(ctx context.Context, srcKey string) (*blob.Attributes, *blob.Reader, error) {
	b := f.bucket
	lock := f.locks.lock(srcKey)
	defer lock.Unlock()
	rctx := holding(ctx, srcKey)
	for try := 0; try < 3; try++ {
		attrs, err := b.Attributes(rctx, srcKey)
		if err != nil {
			return nil, nil, err
		}
		r, err := b.NewReader(rctx, srcKey, nil)
		if err != nil {
			return nil, nil, err
		}
		again, err := b.Attributes(rctx, srcKey)
		if err == nil && sameObject(attrs, again) && r.Size() == attrs.Size {
			return attrs, r, nil
		}
		_ = r.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	return nil, nil, unavailable(nil, "the source %q of a copy kept changing while it was opened", srcKey)
}

// sameObject reports whether two readings of a key's attributes describe
// the same object.
func sameObject(a, b *blob.Attributes) bool {
	return a.ETag == b.ETag && a.Size == b.Size && a.ModTime.Equal(b.ModTime) && bytes.Equal(a.MD5, b.MD5)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
