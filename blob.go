package failoverblob

import (
	"context"
	"errors"

	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/driverx"
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
	case errors.Is(err, errExists), errors.Is(err, ErrReadOnly):
		return gcerrors.FailedPrecondition
	case errors.Is(err, ErrUnavailable), errors.Is(err, circuit.ErrOpen):
		return gcerrors.Unknown
	}
	return gcerrors.Code(err)
}

// As implements driver.Bucket: a **Failover reaches the control surface, a
// *driverx.ConditionalWriter, *driverx.ConditionalDeleter or
// *driverx.MD5Taker nothing (its writes and deletes may land on either
// side), and any other type is tried on the primary, then on the secondary.
func (b *bucket) As(i any) bool {
	switch p := i.(type) {
	case **Failover:
		*p = b.f
		return true
	case *driverx.ConditionalWriter, *driverx.ConditionalDeleter, *driverx.MD5Taker:
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

// ListPaged implements driver.Bucket.
func (b *bucket) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	return b.f.list(ctx, opts)
}
