package bucketconv

import (
	"context"
	"io"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"
)

// Bucket returns a driver.Bucket that calls b's portable methods, so that
// a driver can be written on top of other *blob.Bucket values through
// their public API alone. Each call runs b's portable layer (validation,
// tracing, metrics) and returns its errors, which carry the gcerrors code
// b's own driver gives them; ErrorCode reads that code, and As and ErrorAs
// are b's. The result owns b, as a *blob.Bucket owns its driver: closing it
// closes b.
//
// A write's ContentMD5, if set, is verified again by b's portable layer
// and passed on to b's driver, which may send it to the provider.
func Bucket(b *blob.Bucket) driver.Bucket { return portable{b} }

// portable is the driver.Bucket Bucket returns.
type portable struct{ b *blob.Bucket }

var (
	_ driver.Bucket       = portable{}
	_ driver.DownloaderAt = portable{}
	_ driver.Reader       = portableReader{}
)

func (p portable) ErrorCode(err error) gcerrors.ErrorCode { return gcerrors.Code(err) }
func (p portable) As(i any) bool                          { return p.b.As(i) }
func (p portable) ErrorAs(err error, i any) bool          { return p.b.ErrorAs(err, i) }
func (p portable) Close() error                           { return p.b.Close() }

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

// DownloadAt implements driver.DownloaderAt with b's Download, which uses
// b's driver's parallel download where it has one.
func (p portable) DownloadAt(ctx context.Context, key string, w io.WriterAt, opts *driver.ReaderOptions) error {
	return p.b.Download(ctx, key, io.NewOffsetWriter(w, 0), &blob.ReaderOptions{
		BeforeRead:            opts.BeforeRead,
		AllowParallelDownload: true,
		BufferSize:            opts.BufferSize,
		MaxConcurrency:        opts.MaxConcurrency,
	})
}

func (p portable) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	o := WriterOptions(contentType, opts)
	o.ContentMD5 = opts.ContentMD5
	w, err := p.b.NewWriter(ctx, key, o)
	if err != nil {
		// Not w: a nil *blob.Writer in a driver.Writer is not a nil
		// writer, and the portable layer in front would close it.
		return nil, err
	}
	return w, nil
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
