package failoverblob

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"gocloud.dev/gcerrors"
)

var (
	// ErrUnavailable is returned (wrapped) when a call cannot be answered
	// because the side that could answer it is down: both sides failed, the
	// side holding a key's newest version is down, or a key missing from the
	// secondary while the primary is down in Redirect mode (a miss there is
	// not proof of absence). Test with errors.Is.
	ErrUnavailable = errors.New("failoverblob: unavailable")
	// ErrReservedKey is returned (wrapped, with code gcerrors.InvalidArgument)
	// for a key under ReservedPrefix.
	ErrReservedKey = errors.New("failoverblob: key is under the reserved prefix " + ReservedPrefix)
)

// unavailableError is what a caller gets when no side could answer. It
// matches ErrUnavailable and wraps the failure that caused it.
type unavailableError struct {
	msg   string
	cause error
}

func (e *unavailableError) Error() string {
	if e.cause == nil {
		return "failoverblob: " + e.msg
	}
	return "failoverblob: " + e.msg + ": " + e.cause.Error()
}

// Unwrap returns ErrUnavailable only: the cause's gcerrors code (a
// watchdog's cancellation, a miss on the other side) must not become the
// error's code, which is Unknown. The cause is in the message.
func (e *unavailableError) Unwrap() error { return ErrUnavailable }

// Temporary reports true: the call may succeed later, and a failover bucket
// used as a side of another counts the error as an outage.
func (e *unavailableError) Temporary() bool { return true }

func unavailable(cause error, format string, args ...any) error {
	return &unavailableError{msg: fmt.Sprintf(format, args...), cause: cause}
}

var (
	// errInvalidKey answers keys no side may be asked about: empty, or not
	// valid UTF-8. Its code is InvalidArgument.
	errInvalidKey = errors.New("failoverblob: invalid key")
	errExists     = errors.New("failoverblob: object exists (IfNotExist)")
	// errDeleted answers reads of a key whose pending tombstone has not yet
	// reached every side.
	errDeleted = errors.New("failoverblob: object not found (deleted)")
	// errNotFound answers a strict read of a key neither side holds.
	errNotFound = errors.New("failoverblob: object not found")
)

// checkKey refuses the empty key, keys the library reserves, and keys that
// are not valid UTF-8 (which the portable layer already refuses for most
// calls), before any side is asked.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: the key is empty", errInvalidKey)
	case strings.HasPrefix(key, ReservedPrefix):
		return fmt.Errorf("%w: %q", ErrReservedKey, key)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: not valid UTF-8: %q", errInvalidKey, key)
	}
	return nil
}

// isNotFound reports whether err is a NotFound answer.
func isNotFound(err error) bool { return gcerrors.Code(err) == gcerrors.NotFound }
