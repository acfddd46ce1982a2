package failovertest

import (
	"context"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/internal/bucketconv"
)

// Wrap returns a bucket that forwards every call to base, with faults
// controlled by the returned Injector. A nil opts is the same as the zero
// Options.
//
// Closing the returned bucket does not close base: the caller opened base
// and closes it.
//
// A write through the returned bucket is durable when Close returns nil, and
// only as durable as it is in base; a write whose Close returns an error is
// not committed, unless the Fault in force says Applied.
func Wrap(base *blob.Bucket, opts *Options) (*blob.Bucket, *Injector) {
	drv, in := NewDriver(base, opts)
	return blob.NewBucket(drv), in
}

// NewDriver is Wrap for code that layers gocloud drivers: it returns the
// fault-injecting driver.Bucket itself instead of a *blob.Bucket in front of
// it. Application code and tests use Wrap.
func NewDriver(base *blob.Bucket, opts *Options) (driver.Bucket, *Injector) {
	in := newInjector(opts)
	return &bucket{base: base, in: in}, in
}

// bucket is the fault-injecting driver. The portable layer in front of it
// validates keys and options, sniffs content types and verifies ContentMD5,
// and the portable layer of base does the same again for base's driver.
type bucket struct {
	base *blob.Bucket
	in   *Injector
}

var (
	_ driver.Bucket = (*bucket)(nil)
	_ driver.Reader = (*reader)(nil)
	_ driver.Writer = (*writer)(nil)
)

// ErrorCode implements driver.Bucket. Errors from base keep the codes base
// gave them; ErrOutage, and any injected error without a code, is
// gcerrors.Unknown.
func (b *bucket) ErrorCode(err error) gcerrors.ErrorCode { return gcerrors.Code(err) }

// As implements driver.Bucket: a **Injector reaches the bucket's Injector,
// and any other type is forwarded to base.
func (b *bucket) As(i any) bool {
	if p, ok := i.(**Injector); ok {
		*p = b.in
		return true
	}
	return b.base.As(i)
}

// ErrorAs implements driver.Bucket by forwarding to base.
func (b *bucket) ErrorAs(err error, i any) bool { return b.base.ErrorAs(err, i) }

// Close implements driver.Bucket. It does not close base, which belongs to
// the caller.
func (b *bucket) Close() error { return nil }

// begin refuses a call for op about keys that the Injector's Refuse rule
// refuses; otherwise it counts the call, decides its effect and waits out
// its latency.
func (b *bucket) begin(ctx context.Context, op Op, keys ...string) (effect, error) {
	if err := b.in.refusal(op, keys...); err != nil {
		return effect{}, err
	}
	e := b.in.call(op)
	if err := e.delay(ctx); err != nil {
		return effect{}, err
	}
	return e, nil
}

// Attributes implements driver.Bucket.
func (b *bucket) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	e, err := b.begin(ctx, OpAttributes, key)
	if err != nil {
		return nil, err
	}
	if e.failsNow() {
		return nil, e.failure(ctx)
	}
	a, err := b.base.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	return bucketconv.Attributes(a), nil
}

// ListPaged implements driver.Bucket.
func (b *bucket) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	e, err := b.begin(ctx, OpList)
	if err != nil {
		return nil, err
	}
	if e.failsNow() {
		return nil, e.failure(ctx)
	}
	return bucketconv.ListPage(ctx, b.base, opts)
}

// NewRangeReader implements driver.Bucket. With a part-way Fault for OpRead,
// the reader returns the fault's error once AfterBytes bytes have been read.
func (b *bucket) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	e, err := b.begin(ctx, OpRead, key)
	if err != nil {
		return nil, err
	}
	if e.failsNow() {
		return nil, e.failure(ctx)
	}
	r, err := b.base.NewRangeReader(ctx, key, offset, length, bucketconv.ReaderOptions(opts))
	if err != nil {
		return nil, err
	}
	return &reader{
		in:    b.in,
		ctx:   ctx,
		r:     r,
		fault: e,
		attrs: driver.ReaderAttributes{ContentType: r.ContentType(), ModTime: r.ModTime(), Size: r.Size()},
	}, nil
}

// NewTypedWriter implements driver.Bucket. It opens a writer on base at once.
// The object is committed on base when Close returns nil (or, with an Applied
// Fault, when Close reports the injected error), and not before; a writer
// failed by a Fault, an Outage or a Hang is aborted and commits nothing.
func (b *bucket) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	e, err := b.begin(ctx, OpWrite, key)
	if err != nil {
		return nil, err
	}
	if e.failsNow() {
		return nil, e.failure(ctx)
	}
	// The inner writer gets a context of its own so that a failure can
	// abort it: a blob.Writer whose context is cancelled does not commit.
	wctx, cancel := context.WithCancel(ctx)
	w, err := b.base.NewWriter(wctx, key, bucketconv.WriterOptions(contentType, opts))
	if err != nil {
		cancel()
		return nil, err
	}
	return &writer{in: b.in, ctx: ctx, w: w, cancel: cancel, fault: e}, nil
}

// Copy implements driver.Bucket.
func (b *bucket) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	e, err := b.begin(ctx, OpCopy, dstKey, srcKey)
	if err != nil {
		return err
	}
	if e.failsNow() {
		return e.failure(ctx)
	}
	if err := b.base.Copy(ctx, dstKey, srcKey, bucketconv.CopyOptions(opts)); err != nil || !e.fails {
		return err
	}
	return e.failure(ctx)
}

// Delete implements driver.Bucket.
func (b *bucket) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	e, err := b.begin(ctx, OpDelete, key)
	if err != nil {
		return err
	}
	if e.failsNow() {
		return e.failure(ctx)
	}
	if err := b.base.DeleteWithOptions(ctx, key, bucketconv.DeleteOptions(opts)); err != nil || !e.fails {
		return err
	}
	return e.failure(ctx)
}

// SignedURL implements driver.Bucket.
func (b *bucket) SignedURL(ctx context.Context, key string, opts *driver.SignedURLOptions) (string, error) {
	e, err := b.begin(ctx, OpSignedURL)
	if err != nil {
		return "", err
	}
	if e.failsNow() {
		return "", e.failure(ctx)
	}
	return b.base.SignedURL(ctx, key, bucketconv.SignedURLOptions(opts))
}

// delay waits out e's latency on a timer. It returns ctx.Err() if ctx is done
// first.
func (e effect) delay(ctx context.Context) error {
	if e.latency <= 0 {
		return nil
	}
	t := time.NewTimer(e.latency)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// failure returns the error a failing call reports. A hanging call first
// waits for ctx, and nothing else, so that synctest can advance virtual time
// past it.
func (e effect) failure(ctx context.Context) error {
	if e.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return e.err
}
