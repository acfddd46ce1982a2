// Package journal records what each side of a failover bucket is missing.
//
// An Entry says that one side lacks a change (a put or a delete of one key at
// one version) that the other side holds or that must be applied to it. The
// failover bucket appends an entry before it writes the data the entry
// describes, so a crash in between leaves only a harmless entry; the
// reconciler reads the entries, repairs the side that is missing the change
// (checking versions first, so an entry is only ever a hint), and acknowledges
// them.
//
// The interface is small so that implementations can keep entries in memory
// (tests), in a local file (one instance) or on the buckets themselves (a
// fleet of instances).
package journal

import (
	"context"
	"time"
)

// Side names one side of a failover bucket.
type Side uint8

const (
	// Primary is the side that serves reads and writes while healthy.
	Primary Side = iota
	// Secondary is the side that takes writes while the primary is down.
	Secondary
)

// Other returns the side that is not s.
func (s Side) Other() Side { return 1 - s }

// String returns "primary" or "secondary".
func (s Side) String() string {
	if s == Primary {
		return "primary"
	}
	return "secondary"
}

// Op is the kind of change an entry records.
type Op uint8

const (
	// Put records that an object was written.
	Put Op = iota
	// Delete records that an object was deleted (a tombstone).
	Delete
)

// String returns "put" or "delete".
func (o Op) String() string {
	if o == Put {
		return "put"
	}
	return "delete"
}

// Entry is one change a side is missing.
type Entry struct {
	// ID identifies the entry within its journal. Append assigns it; it is
	// ignored on input.
	ID string
	// Key is the object's key.
	Key string
	// Op is the kind of change.
	Op Op
	// Version is the change's version as the failover bucket stamped it. The
	// journal treats it as opaque.
	Version string
	// Missing is the side that lacks the change.
	Missing Side
	// Size is the object's size in bytes for a Put, when known; otherwise 0.
	// The failover bucket records -1 for a Delete whose tombstone removes
	// only an object no other entry accounts for (a Mirror-mode delete that
	// found nothing on the side it reached), and -2 less the object's size
	// for a Put recorded for a side the write was committing on too (a
	// Mirror-mode write of a key with pending work there), which lacks it
	// only if a later change removed it or, once another entry says so, the
	// commit failed there. ObjectSize reads a Put's size either way.
	Size int64
	// Recorded is when the entry was appended, by the appender's clock.
	// Append sets it when zero.
	Recorded time.Time
	// Stored is when the journal's storage stored the entry, by the
	// storage's own clock, where List can tell (a Bucket journal: the entry
	// object's modification time); zero otherwise. It is ignored on input.
	// A Recorded far ahead of Stored comes from a clock that ran fast.
	Stored time.Time
}

// ObjectSize returns the size of the object a Put entry records (see
// Entry.Size), and 0 for a Delete.
func (e Entry) ObjectSize() int64 {
	switch {
	case e.Op != Put:
		return 0
	case e.Size <= -2:
		return -2 - e.Size
	}
	return max(e.Size, 0)
}

// Journal is a record of pending repairs. Implementations are safe for
// concurrent use.
type Journal interface {
	// Append records e and returns its ID. The entry is durable, to the
	// degree the implementation promises, once Append returns nil. An
	// Append that fails may have stored the entry all the same (a write
	// whose answer was lost): it then returns the ID the entry would have,
	// with the error, so that the caller can drop it (Ack).
	Append(ctx context.Context, e Entry) (id string, err error)
	// List returns every entry appended and not yet acknowledged, in the order
	// they were appended.
	List(ctx context.Context) ([]Entry, error)
	// Ack removes the entries with the given IDs. Unknown IDs are ignored, so
	// Ack is idempotent.
	Ack(ctx context.Context, ids ...string) error
}
