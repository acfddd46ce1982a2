// Package wrap is the driver the provider packages put in front of a
// provider's gocloud bucket: conditional writes for the reconciler, a
// write's MD5 handed to the provider, per-write tuning of the provider's
// writer, and (for GCS) small writes sent without the client's chunk
// buffer.
package wrap

import (
	"context"
	"io"
	"slices"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/driverx"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
)

// Hooks builds the BeforeWrite hooks that speak one provider's SDK. Hooks
// that are also a driverx.OutageClassifier or a driverx.ConditionalDeleter
// are offered through the Bucket's As.
type Hooks interface {
	// WriteIf is the hook of a write conditional on prior (see
	// driverx.ConditionalWriter), or nil if it cannot be expressed.
	WriteIf(prior *driver.Attributes) func(func(any) bool) error
	// SendMD5 is a hook that hands the provider the MD5 of the object
	// written, as its gocloud driver does with WriterOptions.ContentMD5, or
	// nil, whatever sum, if the provider takes none.
	SendMD5(sum []byte) func(func(any) bool) error
}

// Bucket is a provider's bucket with what a failover bucket needs on top:
// conditional writes for the reconciler (driverx.ConditionalWriter),
// the write's MD5 handed to the provider, the transport's limits on each
// writer and, for GCS, small writes sent without the 16 MiB chunk buffer.
// Set its fields before Open.
type Bucket struct {
	driver.Bucket
	inner *blob.Bucket // owns the driver; closed by Close
	hooks Hooks
	// Release, if set, frees what the provider package made for the bucket
	// (the client, its pooled connections); Close calls it after closing
	// the provider's bucket.
	Release func()
	// SmallWrite holds writes up to this many bytes; 0 means do not.
	SmallWrite int
	// SmallBudget bounds the one request that sends a small write, retries
	// included; 0 means no bound.
	SmallBudget time.Duration
	// TuneWriter, if set, runs after the caller's BeforeWrite on every
	// write, to give the provider's writer the transport's limits.
	TuneWriter func(asFunc func(any) bool) error
}

var (
	_ driver.Bucket             = (*Bucket)(nil)
	_ driver.DownloaderAt       = (*Bucket)(nil)
	_ driverx.ConditionalWriter = (*Bucket)(nil)
	_ driverx.MD5Taker          = (*Bucket)(nil)
)

// New returns b, a provider's bucket, as a Bucket whose writes use hooks.
// It calls b through b's public API (bucketconv.Bucket).
func New(b *blob.Bucket, hooks Hooks) *Bucket {
	return &Bucket{Bucket: bucketconv.Bucket(b), inner: b, hooks: hooks}
}

// Open returns b as a *blob.Bucket.
func (b *Bucket) Open() *blob.Bucket { return blob.NewBucket(b) }

// Conditional returns a providers.Provider.Conditional for a provider whose
// buckets reach a C (its SDK's client) through As: such a bucket is
// returned as a Bucket with hooks.
func Conditional[C any](hooks Hooks) func(*blob.Bucket) (*blob.Bucket, bool) {
	return func(b *blob.Bucket) (*blob.Bucket, bool) {
		if !b.As(new(C)) {
			return nil, false
		}
		return New(b, hooks).Open(), true
	}
}

// As implements driver.Bucket: a *driverx.ConditionalWriter reaches the
// bucket's conditional writes, a *driverx.MD5Taker whether it hands the
// provider a write's MD5, a *driverx.ConditionalDeleter its conditional
// deletes and a *driverx.OutageClassifier the provider's outage classifier
// where its Hooks are those, and any other type is the provider's.
func (b *Bucket) As(i any) bool {
	switch p := i.(type) {
	case *driverx.ConditionalWriter:
		*p = b
		return true
	case *driverx.MD5Taker:
		*p = b
		return true
	case *driverx.OutageClassifier:
		oc, ok := b.hooks.(driverx.OutageClassifier)
		if ok {
			*p = oc
		}
		return ok
	case *driverx.ConditionalDeleter:
		cd, ok := b.hooks.(driverx.ConditionalDeleter)
		if ok {
			*p = cd
		}
		return ok
	}
	return b.Bucket.As(i)
}

// WriteIf implements driverx.ConditionalWriter.
func (b *Bucket) WriteIf(prior *driver.Attributes) func(func(any) bool) error {
	return b.hooks.WriteIf(prior)
}

// TakesMD5 implements driverx.MD5Taker: a write's MD5 (its ContentMD5, or
// the one in its context) reaches the provider where its Hooks have a
// SendMD5 hook, which they have for any sum or for none.
func (b *Bucket) TakesMD5() bool { return b.hooks.SendMD5(nil) != nil }

// Close closes the provider's bucket and releases its client.
func (b *Bucket) Close() error {
	err := b.inner.Close()
	if b.Release != nil {
		b.Release()
	}
	return err
}

// NewTypedWriter implements driver.Bucket. Where small writes are held, the
// provider's writer is made only once the write is known to be small (at
// Close) or large (past SmallWrite bytes).
//
// A ContentMD5 is handed to the provider by a hook rather than passed to
// the provider's bucket, whose portable layer would hash every byte to
// verify it again: the portable layer in front of this driver (Open) has
// verified it before it closes the write. Without a ContentMD5, the MD5 in
// ctx (driverx.WithWriteMD5), if any, is handed on the same way.
func (b *Bucket) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	// A write with no precondition is not retried by the provider's client
	// (see gcs.ApplyTransport), so it needs no buffer to retry from.
	plain := opts.BeforeWrite == nil && !opts.IfNotExist
	o := *opts
	sum := o.ContentMD5
	if len(sum) == 0 {
		sum = driverx.WriteMD5(ctx)
	}
	var sendMD5 func(func(any) bool) error
	if len(sum) > 0 {
		sendMD5, o.ContentMD5 = b.hooks.SendMD5(sum), nil
	}
	o.BeforeWrite = chainHooks(o.BeforeWrite, sendMD5, b.TuneWriter)
	opts = &o
	if b.SmallWrite <= 0 || opts.BufferSize != 0 {
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
func (b *Bucket) DownloadAt(ctx context.Context, key string, w io.WriterAt, opts *driver.ReaderOptions) error {
	return b.Bucket.(driver.DownloaderAt).DownloadAt(ctx, key, w, opts) // bucketconv.Bucket has it
}

// heldWriter holds a write's first bytes until it knows the write's size
// class.
type heldWriter struct {
	ctx         context.Context
	cancel      context.CancelFunc // aborts the provider's write
	b           *Bucket
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
	if w.w == nil && len(w.held)+len(p) <= w.b.SmallWrite {
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
	if w.w == nil && w.err == nil {
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
		if w.b.SmallBudget > 0 {
			var cancel context.CancelFunc
			w.ctx, cancel = context.WithTimeout(w.ctx, w.b.SmallBudget)
			defer cancel()
		}
		_ = w.make(&o) // a failure is w.err
	}
	if w.err != nil {
		if w.w != nil {
			// A failed write must not commit what got through, and the
			// provider's writer is closed all the same.
			w.cancel()
			_ = w.w.Close()
		}
		return w.err
	}
	return w.w.Close()
}
