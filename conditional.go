package failoverblob

import (
	"gocloud.dev/blob/driver"
)

// ConditionalWriter is what a side offers, through its bucket's As, when
// the provider can make a write conditional on the object it replaces: a
// bucket b has it when b.As(&c), with c a ConditionalWriter, sets c. The
// reconciler uses it for every copy it makes: it reads the object on the
// side it repairs, decides from its version that the copy is needed, and
// writes only if that object is still there unchanged (or still absent). A
// newer object written by another process in between is then never
// overwritten; the copy fails with gcerrors.FailedPrecondition, the journal
// entry stays, and the next pass decides again.
//
// Buckets opened through the providers package offer it for S3
// (If-Match / If-None-Match), GCS (generation preconditions) and Azure
// (If-Match / If-None-Match). For other buckets the reconciler's copy is
// unconditional: the version check before it is the only guard, which is
// enough while one process reconciles. A failover bucket does not offer its
// sides' conditional writes: its writes may land on either side.
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
	var c ConditionalWriter
	if !s.b.As(&c) {
		return nil
	}
	return c.WriteIf(prior)
}

// ConditionalDeleter is what a side offers, through its bucket's As, when
// the provider can make a delete conditional on the object it removes: a
// bucket b has it when b.As(&c), with c a ConditionalDeleter, sets c. As
// with ConditionalWriter, a failover bucket does not offer its sides'. The
// reconciler uses
// it for every delete it makes (a tombstone carried to a side, a temporary
// copy removed): it examines the object first, decides from its version
// that it goes, and deletes it only if it is still that object. A newer
// object written by another instance in between is then never removed; the
// delete fails with gcerrors.FailedPrecondition, and the next pass decides
// again. Where a side has no conditional delete, the version check before
// the delete is the only guard.
type ConditionalDeleter interface {
	// DeleteIf returns a driver.DeleteOptions.BeforeDelete function that
	// makes the delete fail with gcerrors.FailedPrecondition unless the
	// object is still the one prior describes. It returns nil if it cannot
	// express the condition, and the delete is then unconditional.
	DeleteIf(prior *driver.Attributes) func(asFunc func(any) bool) error
}

// deleteIf is the condition for a delete on s of the object prior, or nil.
func (s *side) deleteIf(prior *driver.Attributes) *driver.DeleteOptions {
	var c ConditionalDeleter
	if prior == nil || !s.b.As(&c) {
		return nil
	}
	return &driver.DeleteOptions{BeforeDelete: c.DeleteIf(prior)}
}
