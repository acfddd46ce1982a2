package circuit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"gocloud.dev/gcerrors"
	"google.golang.org/api/googleapi"
)

// Classifier reports whether err, returned by a call to a side made on behalf
// of a caller whose context is ctx, is an outage (an infrastructure failure
// that should count against the side and move traffic) rather than an answer.
// A nil err is never an outage.
type Classifier func(ctx context.Context, err error) bool

// DefaultClassifier is the Classifier used when none is set. It decides, in
// this order:
//
//  1. A nil err is not an outage.
//  2. If ctx is done, err is not an outage: the caller's own cancellation or
//     deadline is an answer, whatever it caused.
//  3. context.DeadlineExceeded or context.Canceled in err's chain is an
//     outage: with the caller still waiting, it is a deadline or cancellation
//     the library imposed on the side, such as a per-call timeout.
//  4. Evidence in err's chain decides next. ErrOpen, a transport failure
//     (a *net.OpError; a net.Error whose Timeout is true; ECONNREFUSED,
//     ECONNRESET, ECONNABORTED, EPIPE, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH;
//     io.ErrUnexpectedEOF) or an HTTP status of 408, 429 or 5xx is an outage.
//     Any other 4xx status is an answer. The status is taken from the first
//     error in the chain with an HTTPStatusCode() int method (as the AWS
//     SDK's response errors have), or else from a *googleapi.Error.
//  5. Otherwise the gcerrors code decides. NotFound, InvalidArgument,
//     PermissionDenied, FailedPrecondition, AlreadyExists, Unimplemented and
//     Canceled are answers; Unknown, Internal, ResourceExhausted,
//     DeadlineExceeded and any other code are outages.
//
// Step 4 comes before step 5 because the gocloud drivers report a 503, a
// reset and a refused connection alike as gcerrors.Unknown (there is no
// Unavailable code), while an unmapped 4xx is also Unknown and still an
// answer.
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
	case gcerrors.NotFound,
		gcerrors.InvalidArgument,
		gcerrors.PermissionDenied,
		gcerrors.FailedPrecondition,
		gcerrors.AlreadyExists,
		gcerrors.Unimplemented,
		gcerrors.Canceled:
		return false
	default:
		return true
	}
}

// evidence looks in err's chain for something more specific than a gcerrors
// code. ok is false when it finds nothing that decides.
func evidence(err error) (outage, ok bool) {
	if errors.Is(err, ErrOpen) || isTransportFailure(err) {
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
}

func isTransportFailure(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) {
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
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return gerr.Code, true
	}
	return 0, false
}
