// Package cache keeps the copies of recent reads that a failover bucket
// serves while every side that could answer a read is down
// (failoverblob.Options.Cache and ServeStale): NewMemory keeps them in
// memory, OpenDir in a directory, where they outlive the process. Both are
// bounded in bytes and drop the least recently used entries first.
//
// Entries are opaque to a cache: the failover bucket makes them and checks
// them (each carries its key, version and checksum), so an entry lost,
// truncated or garbled, in memory or on disk, is a miss and never a wrong
// answer.
package cache

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// lru is the recency order of a cache's entries, with their sizes, bounded
// in bytes: simplelru keeps the order and the map, and counts entries;
// lru counts bytes and drops the oldest entries past its bound. Callers
// hold the cache's lock.
type lru[V any] struct {
	max, used int64
	list      *simplelru.LRU[string, V]
	sizeOf    func(V) int64
}

// newLRU returns an lru bounded at max bytes. dropped, if set, is called
// with each entry that leaves it, by eviction or removal.
func newLRU[V any](max int64, sizeOf func(V) int64, dropped func(string, V)) *lru[V] {
	l := &lru[V]{max: max, sizeOf: sizeOf}
	// simplelru bounds the number of entries; the bound is in bytes here.
	l.list, _ = simplelru.NewLRU[string, V](int(^uint(0)>>1), func(name string, v V) {
		l.used -= l.sizeOf(v)
		if dropped != nil {
			dropped(name, v)
		}
	})
	return l
}

// add adds v under name, replacing any entry there, and drops the least
// recently used entries until the total fits. It reports whether v fits
// at all; if not, it is not added (and any entry under name is removed).
func (l *lru[V]) add(name string, v V) bool {
	l.list.Remove(name)
	size := l.sizeOf(v)
	if size > l.max {
		return false
	}
	l.list.Add(name, v)
	l.used += size
	for l.used > l.max {
		l.list.RemoveOldest()
	}
	return true
}

// Memory is a cache in memory, bounded in bytes (each entry counts its
// key's length and its own). It is safe for concurrent use.
type Memory struct {
	mu  sync.Mutex
	lru *lru[memEntry]
}

type memEntry struct {
	key   string
	entry []byte
}

// NewMemory returns an empty cache in memory holding at most maxBytes; an
// entry larger than that is not kept. maxBytes of zero or less keeps
// nothing.
func NewMemory(maxBytes int64) *Memory {
	size := func(e memEntry) int64 { return int64(len(e.key) + len(e.entry)) }
	return &Memory{lru: newLRU(max(maxBytes, 0), size, nil)}
}

// Get returns the entry under key, which counts as its use.
func (m *Memory) Get(key string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.lru.list.Get(key)
	return e.entry, ok
}

// Put keeps entry under key, replacing any entry there, unless it is
// larger than the cache (then any entry under key is removed). It keeps
// entry itself, not a copy. It returns nil.
func (m *Memory) Put(key string, entry []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.add(key, memEntry{key: key, entry: entry})
	return nil
}

// Delete removes the entry under key, if any. It returns nil.
func (m *Memory) Delete(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.list.Remove(key)
	return nil
}

// Used returns the bytes the entries hold, as counted against the bound.
func (m *Memory) Used() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.used
}

// Len returns the number of entries.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.list.Len()
}
