package providers

import (
	"context"
	"io"
	"slices"
	"time"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
)

// writeHooks builds the BeforeWrite hooks that speak one provider's SDK.
type writeHooks interface {
	// writeIf is the hook of a write conditional on prior (see
	// failoverblob.ConditionalWriter), or nil if it cannot be expressed.
	writeIf(prior *driver.Attributes) func(func(any) bool) error
	// sendMD5 is a hook that hands the provider the MD5 of the object
	// written, as its gocloud driver does with WriterOptions.ContentMD5, or
	// nil if the provider takes none.
	sendMD5(sum []byte) func(func(any) bool) error
}

// bucket is a provider's driver with what a failover bucket needs on top:
// conditional writes for the reconciler (failoverblob.ConditionalWriter) and,
// for GCS, small writes sent without the 16 MiB chunk buffer.
type bucket struct {
	driver.Bucket
	inner *blob.Bucket // owns the driver; closed by Close
	// release frees what this package made for the bucket (the client,
	// its pooled connections); Close calls it after closing inner.
	release    func()
	hooks      writeHooks
	smallWrite int // hold writes up to this many bytes; 0 means do not
	// smallBudget bounds the one request that sends a small write, retries
	// included.
	smallBudget time.Duration
	// tuneWriter, if set, runs after the caller's BeforeWrite on every
	// write, to give the provider's writer the transport's limits.
	tuneWriter func(asFunc func(any) bool) error
}

var _ driver.DownloaderAt = (*bucket)(nil)

// wrap returns b as a bucket whose writes use hooks. It calls b through b's
// public API (bucketconv.Bucket).
func wrap(b *blob.Bucket, hooks writeHooks) *bucket {
	return &bucket{Bucket: bucketconv.Bucket(b), inner: b, hooks: hooks}
}

// open returns b as a *blob.Bucket.
func (b *bucket) open() *blob.Bucket { return blob.NewBucket(b) }

// As implements driver.Bucket: a *failoverblob.ConditionalWriter reaches
// the bucket's conditional writes, and any other type is the provider's.
func (b *bucket) As(i any) bool {
	if p, ok := i.(*failoverblob.ConditionalWriter); ok {
		*p = b
		return true
	}
	return b.Bucket.As(i)
}

// WriteIf implements failoverblob.ConditionalWriter.
func (b *bucket) WriteIf(prior *driver.Attributes) func(func(any) bool) error {
	return b.hooks.writeIf(prior)
}

// Close closes the provider's bucket and releases its client.
func (b *bucket) Close() error {
	err := b.inner.Close()
	if b.release != nil {
		b.release()
	}
	return err
}

// NewTypedWriter implements driver.Bucket. Where small writes are held, the
// provider's writer is made only once the write is known to be small (at
// Close) or large (past smallWrite bytes).
//
// A ContentMD5 is handed to the provider by a hook rather than passed to
// the provider's bucket, whose portable layer would hash every byte to
// verify it again: the portable layer in front of this driver (open) has
// verified it before it closes the write.
func (b *bucket) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	// A write with no precondition is not retried by the provider's client
	// (see applyGCS), so it needs no buffer to retry from.
	plain := opts.BeforeWrite == nil && !opts.IfNotExist
	o := *opts
	var sendMD5 func(func(any) bool) error
	if len(o.ContentMD5) > 0 {
		sendMD5, o.ContentMD5 = b.hooks.sendMD5(o.ContentMD5), nil
	}
	o.BeforeWrite = chainHooks(o.BeforeWrite, sendMD5, b.tuneWriter)
	opts = &o
	if b.smallWrite <= 0 || opts.BufferSize != 0 {
		return b.Bucket.NewTypedWriter(ctx, key, contentType, opts)
	}
	ctx, cancel := context.WithCancel(ctx)
	return &heldWriter{ctx: ctx, cancel: cancel, b: b, key: key, contentType: contentType, opts: opts, plain: plain}, nil
}

// chainHooks returns a BeforeWrite hook that runs the non-nil hooks in
// order and stops at the first error, or nil if there are none.
func chainHooks(hooks ...func(func(any) bool) error) func(func(any) bool) error {
	hooks = slices.DeleteFunc(hooks, func(h func(func(any) bool) error) bool { return h == nil })
	if len(hooks) == 0 {
		return nil
	}
	return func(as func(any) bool) error {
		for _, h := range hooks {
			if err := h(as); err != nil {
				return err
			}
		}
		return nil
	}
}

// DownloadAt implements driver.DownloaderAt with the provider's parallel
// download, which the embedded driver.Bucket would hide.
func (b *bucket) DownloadAt(ctx context.Context, key string, w io.WriterAt, opts *driver.ReaderOptions) error {
	return b.Bucket.(driver.DownloaderAt).DownloadAt(ctx, key, w, opts) // bucketconv.Bucket has it
}

// heldWriter holds a write's first bytes until it knows the write's size
// class.
type heldWriter struct {
	ctx         context.Context
	cancel      context.CancelFunc // aborts the provider's write
	b           *bucket
	key         string
	contentType string
	opts        *driver.WriterOptions
	plain       bool // no precondition: the client sends it once

	held []byte
	w    driver.Writer // nil until made
	err  error
}

func (w *heldWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.w == nil && len(w.held)+len(p) <= w.b.smallWrite {
		w.held = append(w.held, p...)
		return len(p), nil
	}
	if w.w == nil {
		if err := w.make(w.opts); err != nil {
			return 0, err
		}
	}
	return w.w.Write(p)
}

// make makes the provider's writer with opts and hands it the held bytes.
func (w *heldWriter) make(opts *driver.WriterOptions) error {
	if err := w.ctx.Err(); err != nil {
		w.err = err
		return err
	}
	pw, err := w.b.Bucket.NewTypedWriter(w.ctx, w.key, w.contentType, opts)
	if err != nil {
		w.err = err
		return err
	}
	w.w = pw
	if len(w.held) > 0 {
		if _, err := pw.Write(w.held); err != nil {
			w.err = err
			return err
		}
	}
	w.held = nil
	return nil
}

func (w *heldWriter) Close() error {
	defer w.cancel()
	if w.err != nil && w.w != nil {
		// A failed write must not commit what got through.
		w.cancel()
		_ = w.w.Close()
		return w.err
	}
	if w.w == nil {
		if w.err != nil {
			return w.err
		}
		// Small: one request, whose retries end with the attempt budget. A
		// plain write is sent straight from the held bytes (a negative
		// BufferSize means no upload buffer); a conditional one, which the
		// client retries, gets a buffer the size of the object (rounded up
		// by the client to its 256 KiB granularity) to retry from.
		o := *w.opts
		o.BufferSize = max(len(w.held), 1)
		if w.plain {
			o.BufferSize = -1
		}
		if w.b.smallBudget > 0 {
			var cancel context.CancelFunc
			w.ctx, cancel = context.WithTimeout(w.ctx, w.b.smallBudget)
			defer cancel()
		}
		if err := w.make(&o); err != nil {
			return err
		}
	}
	return w.w.Close()
}

// Conditional returns b with the conditional writes the reconciler uses
// (see failoverblob.ConditionalWriter), for a bucket opened outside this
// package with gocloud's s3blob, gcsblob or azureblob. Any other bucket is
// returned as it is. Closing the result closes b.
func Conditional(b *blob.Bucket) *blob.Bucket {
	var c writeHooks
	switch {
	case b.As(new(*s3.Client)):
		c = s3Cond{}
	case b.As(new(*storage.Client)):
		c = gcsCond{}
	case b.As(new(*container.Client)):
		c = azureCond{}
	default:
		return b
	}
	return wrap(b, c).open()
}
