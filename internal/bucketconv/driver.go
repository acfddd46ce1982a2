package bucketconv

import (
	"context"
	"errors"
	"reflect"
	"unsafe"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"
)

// DriverOf returns the driver behind b, so that a driver written on top of
// other buckets can call their drivers directly: the portable layer in front
// of the outer driver has already validated the call, sniffed the content
// type, verified ContentMD5 and started a trace, and doing all of that again
// for each side roughly doubles the cost of a small object.
//
// gocloud keeps the driver in an unexported field; DriverOf reads it if the
// field is there with the expected type, and otherwise returns an adapter
// that calls b's portable methods, which is always correct but slower.
// direct reports which one it returned.
func DriverOf(b *blob.Bucket) (d driver.Bucket, direct bool) {
	f := reflect.ValueOf(b).Elem().FieldByName("b")
	if f.IsValid() && f.Type() == reflect.TypeFor[driver.Bucket]() {
		if d := *(*driver.Bucket)(unsafe.Pointer(f.UnsafeAddr())); d != nil {
			return d, true
		}
	}
	return portable{b}, false
}

// portable is a driver.Bucket that calls a *blob.Bucket's portable methods.
type portable struct{ b *blob.Bucket }

var (
	_ driver.Bucket = portable{}
	_ driver.Reader = portableReader{}
)

func (p portable) ErrorCode(err error) gcerrors.ErrorCode { return gcerrors.Code(err) }
func (p portable) As(i any) bool                          { return p.b.As(i) }
func (p portable) ErrorAs(err error, i any) bool          { return p.b.ErrorAs(err, i) }
func (p portable) Close() error                           { return nil } // the owner closes b

func (p portable) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	a, err := p.b.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	return Attributes(a), nil
}

func (p portable) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	return ListPage(ctx, p.b, opts)
}

// ListPage reads one page of b's listing as a driver would return it. A
// PageSize of zero or less asks for 1000 objects.
func ListPage(ctx context.Context, b *blob.Bucket, opts *driver.ListOptions) (*driver.ListPage, error) {
	size := opts.PageSize
	if size <= 0 {
		size = 1000
	}
	objs, next, err := b.ListPage(ctx, FirstPage(opts.PageToken), size, ListOptions(opts))
	if err != nil {
		return nil, err
	}
	page := &driver.ListPage{NextPageToken: next, Objects: make([]*driver.ListObject, len(objs))}
	for i, o := range objs {
		page.Objects[i] = ListObject(o)
	}
	return page, nil
}

func (p portable) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	r, err := p.b.NewRangeReader(ctx, key, offset, length, ReaderOptions(opts))
	if err != nil {
		return nil, err
	}
	return portableReader{r, &driver.ReaderAttributes{ContentType: r.ContentType(), ModTime: r.ModTime(), Size: r.Size()}}, nil
}

type portableReader struct {
	*blob.Reader
	attrs *driver.ReaderAttributes
}

func (r portableReader) Attributes() *driver.ReaderAttributes { return r.attrs }

func (p portable) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	o := WriterOptions(contentType, opts)
	o.ContentMD5 = opts.ContentMD5
	return p.b.NewWriter(ctx, key, o)
}

func (p portable) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	return p.b.Copy(ctx, dstKey, srcKey, CopyOptions(opts))
}

func (p portable) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	return p.b.DeleteWithOptions(ctx, key, DeleteOptions(opts))
}

func (p portable) SignedURL(ctx context.Context, key string, opts *driver.SignedURLOptions) (string, error) {
	return p.b.SignedURL(ctx, key, SignedURLOptions(opts))
}

// Coded returns err with the gcerrors code d gives it, as an error that
// gcerrors.Code reads, so that code which classifies errors by their code
// (outage classifiers, NotFound checks) sees a driver's raw errors the way it
// sees the portable layer's. Errors that already carry a code, and nil, are
// returned as they are.
//
// Only gocloud's portable layer can attach a code, so the error is passed
// through it once, by a bucket whose driver returns it.
func Coded(d driver.Bucket, err error) error {
	if err == nil || gcerrors.Code(err) != gcerrors.Unknown {
		return err
	}
	code := d.ErrorCode(err)
	if code == gcerrors.Unknown {
		return err // Unknown either way
	}
	_, cerr := coder.Attributes(context.WithValue(context.Background(), codedKey{}, &codedError{err, code}), "")
	return cerr
}

// codedError carries a driver's error and its code through coder.
type codedError struct {
	err  error
	code gcerrors.ErrorCode
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

type codedKey struct{}

var coder = blob.NewBucket(codeDriver{})

// codeDriver answers Attributes with the error its context carries.
type codeDriver struct{ driver.Bucket }

func (codeDriver) Attributes(ctx context.Context, _ string) (*driver.Attributes, error) {
	return nil, ctx.Value(codedKey{}).(*codedError)
}

func (codeDriver) ErrorCode(err error) gcerrors.ErrorCode {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return gcerrors.Unknown
}
