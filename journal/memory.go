package journal

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// Memory is a Journal held in memory. Its entries are lost with the process,
// so it suits tests and services that accept that risk; the zero value is
// not usable, use NewMemory.
type Memory struct {
	mu      sync.Mutex
	next    uint64
	entries []Entry // in append order
}

var _ Journal = (*Memory)(nil)

// NewMemory returns an empty in-memory journal.
func NewMemory() *Memory { return &Memory{} }

// Append implements Journal. It fails only if ctx is done.
func (m *Memory) Append(ctx context.Context, e Entry) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if e.Recorded.IsZero() {
		e.Recorded = time.Now()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	e.ID = strconv.FormatUint(m.next, 10)
	m.entries = append(m.entries, e)
	return e.ID, nil
}

// List implements Journal. The returned slice is a copy.
func (m *Memory) List(ctx context.Context) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Entry(nil), m.entries...), nil
}

// Ack implements Journal.
func (m *Memory) Ack(ctx context.Context, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	drop := make(map[string]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	kept := m.entries[:0]
	for _, e := range m.entries {
		if !drop[e.ID] {
			kept = append(kept, e)
		}
	}
	clear(m.entries[len(kept):])
	m.entries = kept
	return nil
}

// Len returns the number of pending entries.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
