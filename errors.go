package failoverblob

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"unicode/utf8"
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

// hookError marks an error returned by one of the caller's Before* hooks:
// the caller's answer, never an outage.
type hookError struct{ err error }

func (e *hookError) Error() string { return e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

// guardHook wraps a caller's Before* hook so its errors are not taken for
// outages. With once set (calls that reach both sides in Mirror mode) the
// hook runs only for the first side the call reaches, as a caller of a single
// bucket expects.
func guardHook(fn func(func(any) bool) error, once bool) func(func(any) bool) error {
	if fn == nil {
		return nil
	}
	var called atomic.Bool
	return func(as func(any) bool) error {
		if once && called.Swap(true) {
			return nil
		}
		if err := fn(as); err != nil {
			return &hookError{err}
		}
		return nil
	}
}

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
// error's code, which is Unknown. Cause returns the cause.
func (e *unavailableError) Unwrap() error { return ErrUnavailable }

// Cause returns the failure that made the call unavailable.
func (e *unavailableError) Cause() error { return e.cause }

func unavailable(cause error, format string, args ...any) error {
	return &unavailableError{msg: fmt.Sprintf(format, args...), cause: cause}
}

// checkKey refuses keys the library reserves, and keys that are not valid
// UTF-8 (which the portable layer already refuses for most calls).
func checkKey(key string) error {
	if strings.HasPrefix(key, ReservedPrefix) {
		return fmt.Errorf("%w: %q", ErrReservedKey, key)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("failoverblob: key is not valid UTF-8: %q", key)
	}
	return nil
}
