package failoverblob

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/failoverblob/failoverblob/journal"
)

// pendingKey is what the index knows about a key with unacknowledged journal
// entries: how many there are per missing side, and the newest committed
// change, which decides where the key is read from.
type pendingKey struct {
	entries  [2]int    // unacknowledged entries, by missing side
	oldest   time.Time // when the oldest of them was recorded
	known    bool      // a change below is known (committed, or loaded from the journal)
	verified bool      // the change was committed by this process, not only read from the journal
	settled  bool      // holder was confirmed by reading both sides' versions
	latest   Version
	deleted  bool
	holder   journal.Side // the side holding latest, when !deleted
	size     int64
	modTime  time.Time
}

// index is the in-memory view of pending work, so that calls on keys with
// nothing pending cost no journal I/O.
type index struct {
	mu sync.RWMutex
	m  map[string]*pendingKey
	// flights follows the keys with writes in flight, pending or not.
	flights map[string]*flight
	// committing counts, in Mirror mode, the changes of each key being
	// committed to the sides, which the sides may show apart meanwhile.
	committing map[string]int
}

// commitStarts counts a Mirror-mode change of key starting to commit to the
// sides; the returned function counts it done.
func (x *index) commitStarts(key string) func() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.committing == nil {
		x.committing = map[string]int{}
	}
	x.committing[key]++
	return func() {
		x.mu.Lock()
		defer x.mu.Unlock()
		if x.committing[key]--; x.committing[key] == 0 {
			delete(x.committing, key)
		}
	}
}

// get returns a copy of the key's entry.
func (x *index) get(key string) (pendingKey, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	p, ok := x.m[key]
	if !ok {
		return pendingKey{}, false
	}
	return *p, true
}

func (x *index) entry(key string, at time.Time) *pendingKey {
	p := x.m[key]
	if p == nil {
		p = &pendingKey{oldest: at}
		x.m[key] = p
	}
	if at.Before(p.oldest) {
		p.oldest = at
	}
	return p
}

// pending reports whether key has pending work.
func (x *index) pending(key string) bool {
	_, ok := x.get(key)
	return ok
}

// load adds an entry read from the journal when the bucket opens. The newest
// entry of a key is taken as its state until a commit proves otherwise.
func (x *index) load(e journal.Entry, v Version) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p := x.entry(e.Key, e.Recorded)
	p.entries[e.Missing]++
	if !p.known || v.Compare(p.latest) > 0 {
		p.known, p.latest, p.deleted, p.holder = true, v, e.Op == journal.Delete, e.Missing.Other()
		p.size, p.modTime = e.Size, e.Recorded
	}
}

// settle records that side holds the newest version of key that exists, as
// read from both sides, if the index still knows the key only from the
// journal as it did when latest was its newest change.
func (x *index) settle(key string, latest Version, side journal.Side) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p := x.m[key]; p != nil && p.known && !p.verified && !p.deleted && p.latest.Compare(latest) == 0 {
		p.holder, p.settled = side, true
	}
}

// added counts an entry just appended.
func (x *index) added(key string, missing journal.Side, at time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.entry(key, at).entries[missing]++
}

// commit records a committed change to a key that has pending entries; keys
// without any are not tracked.
func (x *index) commit(key string, v Version, deleted bool, holder journal.Side, size int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if fl := x.flights[key]; fl != nil && v.Compare(fl.latest) > 0 {
		fl.latest, fl.deleted, fl.conditional = v, deleted, false
	}
	p := x.m[key]
	if p == nil || (p.known && v.Compare(p.latest) < 0) {
		return
	}
	p.known, p.verified, p.latest, p.deleted, p.holder = true, true, v, deleted, holder
	p.size, p.modTime = size, time.Now()
}

// moved records that side to holds version v of key, the newest there is,
// before the reconciler removes the copy on the other side, so that reads
// that followed the index to that copy go to to instead.
func (x *index) moved(key string, v Version, to journal.Side) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p := x.m[key]; p != nil && p.known && !p.deleted && p.latest.Compare(v) <= 0 {
		p.latest, p.holder = v, to
	}
}

// acked drops n acknowledged entries for the key's missing side, and the key
// itself once nothing is pending. Entries that remain were recorded after
// listedAt (when the acknowledged ones were read from the journal), so the
// key's oldest pending time moves up to it.
func (x *index) acked(key string, missing journal.Side, n int, listedAt time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p := x.m[key]
	if p == nil {
		return
	}
	p.entries[missing] = max(0, p.entries[missing]-n)
	if p.entries[0] == 0 && p.entries[1] == 0 {
		delete(x.m, key)
	} else if p.entries[missing.Other()] == 0 && listedAt.After(p.oldest) {
		p.oldest = listedAt
	}
}

// snapshot returns the keys with a known state under prefix, sorted, with
// their state.
func (x *index) snapshot(prefix string) ([]string, map[string]pendingKey) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var keys []string
	states := map[string]pendingKey{}
	for k, p := range x.m {
		if p.known && strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
			states[k] = *p
		}
	}
	sort.Strings(keys)
	return keys, states
}

// unsettled returns the keys under prefix that may read differently on the
// two sides without the index knowing which is right: they have pending
// work of unknown outcome (changes that failed and may or may not have
// taken effect), or a change being committed.
func (x *index) unsettled(prefix string) map[string]bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	keys := map[string]bool{}
	for k, p := range x.m {
		if !p.known && strings.HasPrefix(k, prefix) {
			keys[k] = true
		}
	}
	for k := range x.committing {
		if strings.HasPrefix(k, prefix) {
			keys[k] = true
		}
	}
	return keys
}

// stats returns the number of pending entries and when the oldest was
// recorded.
func (x *index) stats() (n int, oldest time.Time) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, p := range x.m {
		n += p.entries[0] + p.entries[1]
		if oldest.IsZero() || p.oldest.Before(oldest) {
			oldest = p.oldest
		}
	}
	return n, oldest
}
