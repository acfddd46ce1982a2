package failoverblob

import (
	"errors"
	"sync/atomic"
)

// hookError marks an error returned by one of the caller's Before* hooks:
// the caller's answer, never an outage.
type hookError struct{ err error }

func (e *hookError) Error() string { return e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

// isHookError reports whether err comes from one of the caller's hooks.
func isHookError(err error) bool {
	if err == nil {
		return false
	}
	var he *hookError
	return errors.As(err, &he)
}

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
