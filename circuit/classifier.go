package circuit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"

	"gocloud.dev/gcerrors"
)

// Classifier reports whether err, returned by a call to a side made on behalf
// of a caller whose context is ctx, is an outage (an infrastructure failure
// that should count against the side and move traffic) rather than an answer.
// A nil err is never an outage.
type Classifier func(ctx context.Context, err error) bool

// DefaultClassifier is the Classifier used when none is set. It counts as
// an outage only what shows the side failed, not the request: a caller's
// bad input (a key a local driver refuses, say) must never count against a
// side's health. It decides, in this order:
//
//  1. A nil err is not an outage.
//  2. If ctx is done, err is not an outage: the caller's own cancellation or
//     deadline is an answer, whatever it caused.
//  3. context.DeadlineExceeded or context.Canceled in err's chain is an
//     outage: with the caller still waiting, it is a deadline or cancellation
//     the library imposed on the side, such as a per-call timeout.
//  4. Evidence in err's chain decides next. ErrOpen, a transport failure
//     (a *net.OpError or *url.Error, as an HTTP client reports a request it
//     could not complete; a net.Error whose Timeout is true; ECONNREFUSED,
//     ECONNRESET, ECONNABORTED, EPIPE, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH;
//     io.ErrUnexpectedEOF), a failing local disk (EIO, ENOSPC, EROFS,
//     EDQUOT), an error that says it is temporary (a Temporary() bool
//     method that returns true, as failoverblob's ErrUnavailable has) or an
//     HTTP status of 408, 429 or 5xx is an outage. Any other 4xx status is
//     an answer. The status is taken from the first error in the chain
//     with an HTTPStatusCode() int method (as the AWS SDK's response errors
//     have).
//  5. Otherwise the gcerrors code decides. Internal, ResourceExhausted and
//     DeadlineExceeded are outages. Every other code is an answer: NotFound,
//     InvalidArgument, PermissionDenied, FailedPrecondition, AlreadyExists,
//     Unimplemented, Canceled, and Unknown, which drivers give to an error
//     they do not recognize, including their own refusals of a request
//     (fileblob's for a key ending in ".attrs" or escaping its directory,
//     a file name too long).
//
// Step 4 comes before step 5 because the gocloud drivers report a 503, a
// reset and a refused connection alike as gcerrors.Unknown (there is no
// Unavailable code). A side whose SDK reports outages in a way step 4 does
// not recognize needs a Classifier that does: Google's clients carry the
// status in a *googleapi.Error, which the buckets of providers/gcs
// classify with gcs.Classifier (and offer to a failover bucket, see
// driverx.OutageClassifier).
func DefaultClassifier(ctx context.Context, err error) bool {
	switch {
	case err == nil:
		return false
	case ctx.Err() != nil:
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true
	}
	if outage, ok := evidence(err); ok {
		return outage
	}
	switch gcerrors.Code(err) {
	case gcerrors.Internal, gcerrors.ResourceExhausted, gcerrors.DeadlineExceeded:
		return true
	default:
		return false
	}
}

// evidence looks in err's chain for something more specific than a gcerrors
// code. ok is false when it finds nothing that decides.
func evidence(err error) (outage, ok bool) {
	if errors.Is(err, ErrOpen) || isTransportFailure(err) || isTemporary(err) {
		return true, true
	}
	code, found := httpStatus(err)
	switch {
	case !found:
		return false, false
	case code == http.StatusRequestTimeout,
		code == http.StatusTooManyRequests,
		code >= 500:
		return true, true
	case code >= 400:
		return false, true
	default:
		return false, false
	}
}

// transportErrnos are the system errors that mean the side could not be
// reached or dropped the connection.
var transportErrnos = []error{
	syscall.ECONNREFUSED,
	syscall.ECONNRESET,
	syscall.ECONNABORTED,
	syscall.EPIPE,
	syscall.ETIMEDOUT,
	syscall.EHOSTUNREACH,
	syscall.ENETUNREACH,
	io.ErrUnexpectedEOF,
	// A local disk failing under a file-backed side.
	syscall.EIO,
	syscall.ENOSPC,
	syscall.EROFS,
	syscall.EDQUOT,
}

// isTemporary reports whether an error in err's chain says it is
// temporary.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func isTransportFailure(err error) bool {
	var opErr *net.OpError
	var urlErr *url.Error
	if errors.As(err, &opErr) || errors.As(err, &urlErr) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	for _, target := range transportErrnos {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// httpStatus returns the HTTP status code recorded in err's chain, if any.
func httpStatus(err error) (code int, ok bool) {
	var withStatus interface{ HTTPStatusCode() int }
	if errors.As(err, &withStatus) {
		return withStatus.HTTPStatusCode(), true
	}
	return 0, false
}
