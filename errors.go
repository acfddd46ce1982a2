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

// hook is a caller's Before* hook, guarded so that its errors are not
// taken for outages. With once set (calls that reach both sides in Mirror
// mode) it runs only for the first side the call reaches, as a caller of a
// single bucket expects.
type hook struct {
	fn   func(func(any) bool) error
	once bool
	ran  atomic.Bool
}

// guard returns the hook to hand to a side's driver: nil without a hook.
func (h *hook) guard() func(func(any) bool) error {
	if h.fn == nil {
		return nil
	}
	return func(as func(any) bool) error {
		if h.ran.Swap(true) && h.once {
			return nil
		}
		if err := h.fn(as); err != nil {
			return &hookError{err}
		}
		return nil
	}
}

// runUnreached runs the hook, unless a side has run it already, with no
// driver types to inspect: for a call that takes effect without reaching
// the side whose request the hook would have seen (a delete recorded as a
// tombstone while the primary is down). Its error is the caller's answer.
func (h *hook) runUnreached() error {
	if h.fn == nil || h.ran.Swap(true) {
		return nil
	}
	return h.fn(func(any) bool { return false })
}

// guardHook returns fn guarded as hook.guard does.
func guardHook(fn func(func(any) bool) error, once bool) func(func(any) bool) error {
	return (&hook{fn: fn, once: once}).guard()
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

// Temporary reports true: the call may succeed later, and a failover bucket
// used as a side of another counts the error as an outage.
func (e *unavailableError) Temporary() bool { return true }

// Cause returns the failure that made the call unavailable.
func (e *unavailableError) Cause() error { return e.cause }

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
