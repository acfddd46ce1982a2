// Package driverx declares what a side's bucket may offer a failover bucket
// beyond gocloud's driver.Bucket, as gocloud declares its own optional
// driver extensions (driver.Copier, driver.DownloaderAt) next to
// driver.Bucket.
//
// A side offers each through its bucket's As: a bucket b offers a
// ConditionalWriter when b.As(&c), with c a ConditionalWriter, sets c. The
// failover bucket asks its sides' *blob.Bucket; a driver answers in its As.
// A failover bucket does not offer its sides' ConditionalWriter,
// ConditionalDeleter or MD5Taker as its own: its writes and deletes may
// land on either side.
//
// Application code uses package failoverblob, and opens its sides with the
// providers packages, whose buckets offer these. This package is for the
// authors of drivers that sit under a failover bucket.
package driverx

import (
	"context"

	"gocloud.dev/blob/driver"
)

// ConditionalWriter is what a side offers when the provider can make a
// write conditional on the object it replaces. The reconciler uses it for
// every copy it makes: it reads the object on the side it repairs, decides
// from its version that the copy is needed, and writes only if that object
// is still there unchanged (or still absent). A newer object written by
// another process in between is then never overwritten; the copy fails
// with gcerrors.FailedPrecondition, the journal entry stays, and the next
// pass decides again.
//
// Buckets opened through the providers packages offer it for S3
// (If-Match / If-None-Match), GCS (generation preconditions) and Azure
// (If-Match / If-None-Match). For other buckets the reconciler's copy is
// unconditional: the version check before it is the only guard, which is
// enough while one process reconciles.
type ConditionalWriter interface {
	// WriteIf returns a driver.WriterOptions.BeforeWrite function that makes
	// the write fail with gcerrors.FailedPrecondition unless the object is
	// still the one prior describes, or still absent if prior is nil. It
	// returns nil if it cannot express the condition for prior, and the
	// write is then unconditional.
	WriteIf(prior *driver.Attributes) func(asFunc func(any) bool) error
}

// ConditionalDeleter is what a side offers when the provider can make a
// delete conditional on the object it removes. The reconciler and the
// verifier use it for every delete they make (a tombstone carried to a
// side, a temporary copy removed): they examine the object first, decide
// from its version that it goes, and delete it only if it is still that
// object. A newer object written by another instance in between is then
// never removed; the delete fails with gcerrors.FailedPrecondition, and the
// next pass decides again. Where a side has no conditional delete, the
// version check before the delete is the only guard.
type ConditionalDeleter interface {
	// DeleteIf returns a driver.DeleteOptions.BeforeDelete function that
	// makes the delete fail with gcerrors.FailedPrecondition unless the
	// object is still the one prior describes. It returns nil if it cannot
	// express the condition, and the delete is then unconditional.
	DeleteIf(prior *driver.Attributes) func(asFunc func(any) bool) error
}

// OutageClassifier is what a side offers when it knows, better than the
// default, which of its provider's errors show the provider failing. A
// failover bucket whose breaker settings name no Classifier classifies the
// side's errors with it.
//
// Buckets opened through providers/gcs offer one (gcs.Classifier): the GCS
// client reports an HTTP status in an error type (*googleapi.Error) that
// circuit.DefaultClassifier does not know, and a 503 then counts as an
// outage, as it does from S3.
type OutageClassifier interface {
	// IsOutage reports whether err, returned by a call to the side made on
	// behalf of a caller whose context is ctx, is an outage; it has the
	// contract of circuit.Classifier.
	IsOutage(ctx context.Context, err error) bool
}

// MD5Taker is what a side offers to say whether its provider takes a
// write's MD5 and checks the object it stores against it. A side that
// offers it and takes the MD5 takes it from the write's context (see
// WithWriteMD5) as well as from driver.WriterOptions.ContentMD5.
//
// A ContentMD5 is checked by the side's portable layer, which hashes every
// byte handed to it. A failover bucket whose write's bytes are checked
// against the MD5 before the write commits (by the portable layer in front
// of the failover bucket, say) opens the write on a side that offers an
// MD5Taker without a ContentMD5: with the MD5 in the write's context where
// the provider takes it, and with none where it does not, the side's
// portable layer being the only one to check it. The side then does not
// hash the bytes again, and its provider checks what arrives as it did.
// A side that offers no MD5Taker is handed the ContentMD5 as it came.
//
// Buckets opened through the providers packages offer it: GCS and Azure
// take the MD5, S3 does not (s3blob sends no Content-MD5).
type MD5Taker interface {
	// TakesMD5 reports whether a write's MD5 reaches the provider.
	TakesMD5() bool
}

// writeMD5Key is the context key of WithWriteMD5.
type writeMD5Key struct{}

// WithWriteMD5 returns a copy of ctx that carries sum, the MD5 of the
// object a write opened with it is to hold, for a side that takes a
// write's MD5 (MD5Taker) to hand its provider as it would a ContentMD5.
// Whoever opens the write checks the bytes against sum before the write
// commits: the side does not.
func WithWriteMD5(ctx context.Context, sum []byte) context.Context {
	return context.WithValue(ctx, writeMD5Key{}, sum)
}

// WriteMD5 returns the MD5 WithWriteMD5 put in ctx, or nil.
func WriteMD5(ctx context.Context) []byte {
	sum, _ := ctx.Value(writeMD5Key{}).([]byte)
	return sum
}
