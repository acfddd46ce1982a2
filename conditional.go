package failoverblob

import (
	"gocloud.dev/blob/driver"
)

// ConditionalWriter is implemented by a side's driver when the provider can
// make a write conditional on the object it replaces. The reconciler uses it
// for every copy it makes: it reads the object on the side it repairs,
// decides from its version that the copy is needed, and writes only if that
// object is still there unchanged (or still absent). A newer object written
// by another process in between is then never overwritten; the copy fails
// with gcerrors.FailedPrecondition, the journal entry stays, and the next
// pass decides again.
//
// Buckets opened through the providers package implement it for S3
// (If-Match / If-None-Match) and GCS (generation preconditions). For other
// drivers the reconciler's copy is unconditional: the version check before
// it is the only guard, which is enough while one process reconciles.
type ConditionalWriter interface {
	// WriteIf returns a driver.WriterOptions.BeforeWrite function that makes
	// the write fail with gcerrors.FailedPrecondition unless the object is
	// still the one prior describes, or still absent if prior is nil. It
	// returns nil if it cannot express the condition for prior, and the
	// write is then unconditional.
	WriteIf(prior *driver.Attributes) func(asFunc func(any) bool) error
}

// writeIf is the condition for a write onto s over prior, or nil.
func (s *side) writeIf(prior *driver.Attributes) func(func(any) bool) error {
	c, ok := s.d.(ConditionalWriter)
	if !ok {
		return nil
	}
	return c.WriteIf(prior)
}
