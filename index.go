package failoverblob

import (
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/failoverblob/failoverblob/journal"
)

// keyState is what the index knows about a key with unacknowledged journal
// entries.
//
// Its state is known when this process committed the key's newest change,
// or read the versions both sides hold (see Failover.resolve). A key known
// only from journal entries (after a restart) or from changes that failed
// has an unknown state: the entries are hints, and nothing is served,
// listed or refused on their strength until the sides have been asked.
type keyState struct {
	entries [2]int    // unacknowledged entries, by missing side
	oldest  time.Time // when the oldest of them was recorded
	// hintPut and hintDel are the newest put and the newest delete the
	// journal holds for the key.
	hintPut, hintDel stamp

	known   bool    // the fields below are the key's state
	latest  stamp   // the newest change (zero for a key no side holds)
	deleted bool    // latest is a delete, or no side holds the key
	on      [2]bool // the sides holding latest, when !deleted
	size    int64
	modTime time.Time
}

// only returns the set of sides holding a version that is only on s.
func only(s journal.Side) [2]bool {
	var on [2]bool
	on[s] = true
	return on
}

// holds reports whether side s holds the key's newest version.
func (p keyState) holds(s journal.Side) bool { return p.known && !p.deleted && p.on[s] }

// index is the in-memory view of pending work, so that calls on keys with
// nothing pending cost no journal I/O. It also follows the writes in flight
// (flight.go) and the commits in progress (commits.go).
type index struct {
	skew time.Duration // Options.MaxClockSkew, to order versions

	mu sync.RWMutex
	m  *packedMap
	// writers interns the writer ids of the versions the index keeps.
	writers  map[string]uint32
	writerOf []string
	// flights follows the keys with writes in flight, pending or not.
	flights map[string]*flight
	// commits follows the changes being committed to the sides, which the
	// sides may show before the index does.
	commits map[string]*commitMark

	// While listings of the journal are under way (listings > 0), the
	// entries this process appends and acknowledges are kept, so that a
	// listing taken before them does not undo them (see sync).
	listings  int
	recentAdd map[string]recentEntry
	recentAck map[string]bool
	// complete says the last listing of the journal read every entry; a
	// journal kept on the sides cannot list a side that is down.
	complete bool
	// read says some listing since the index was made read every entry:
	// until then, the index may not know of pending work kept on a side
	// that could not be listed (see Failover.journalKnown).
	read bool

	// unsure are the keys whose hints may still count an entry withdrawn
	// (see unhint) until a listing reads the whole journal.
	unsure map[string]bool

	// kept are the entries of changes that reached a side, or may have,
	// which the journal could not record (see records.recordAfter): they
	// count as pending, as recorded entries do, until a Drain or a look at
	// their key records them (Failover.recordKept, keptRecorded). keptSeq
	// numbers them.
	kept      map[string]recentEntry
	keptKeys  map[string]int       // kept entries by key
	keptTried map[string]time.Time // when a look at the key last tried to record them
	keptSeq   int
}

// recentEntry is an entry this process appended while a listing of the
// journal was under way.
type recentEntry struct {
	key     string
	missing journal.Side
	op      journal.Op
	s       stamp
	at      time.Time
	size    int64 // kept entries only: the change's size
}

// get returns a copy of the key's state.
func (x *index) get(key string) (keyState, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.load(x.m, key)
}

// pending reports whether key has pending work.
func (x *index) pending(key string) bool {
	_, ok := x.get(key)
	return ok
}

// hintOf returns p's hint for op: its newest put or newest delete.
func (p *keyState) hintOf(op journal.Op) *stamp {
	if op == journal.Delete {
		return &p.hintDel
	}
	return &p.hintPut
}

// added counts an entry appended (id, for a change to key at s) and returns
// the key's hint for op from before it, for unhint.
func (x *index) added(key string, missing journal.Side, op journal.Op, s stamp, at time.Time, id string) (prev stamp) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.listings > 0 {
		x.recentAdd[entryName(id)] = recentEntry{key: key, missing: missing, op: op, s: s, at: at}
	}
	return x.count(x.m, key, missing, op, s, at)
}

// count counts an entry in m, and returns the key's hint for op from before
// it.
func (x *index) count(m *packedMap, key string, missing journal.Side, op journal.Op, s stamp, at time.Time) (prev stamp) {
	p, ok := x.load(m, key)
	if !ok || at.Before(p.oldest) {
		p.oldest = at
	}
	p.entries[missing]++
	h := p.hintOf(op)
	prev = *h
	switch {
	case h.v.IsZero() || s.compare(*h, x.skew) > 0:
		*h = s
	case s.v == h.v && !s.unseen:
		// One delete's tombstone recorded twice, unseen and then not (see
		// mirrorDelete.strengthen): it counts as an ordinary one.
		h.unseen = false
	}
	x.store(m, key, p)
	return prev
}

// entryName is the name of the journal entry id for recentAdd and
// recentAck: a journal on the sides names the side or sides an entry is
// on in its ID, and a listing may find it on fewer than its append said.
func entryName(id string) string {
	if len(id) > 2 && id[1] == ':' && strings.HasPrefix(id[2:], journal.BucketPrefix) {
		return id[2:]
	}
	return id
}

// listingStarts is called before the journal is listed for sync.
func (x *index) listingStarts() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.listings == 0 {
		x.recentAdd, x.recentAck = map[string]recentEntry{}, map[string]bool{}
	}
	x.listings++
}

// listingEnds is called after a listing that sync does not take in.
func (x *index) listingEnds() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.ended()
}

func (x *index) ended() {
	if x.listings--; x.listings == 0 {
		x.recentAdd, x.recentAck = nil, nil
	}
}

// sync replaces what the index knows of the journal's entries with
// entries, a listing of the journal begun after listingStarts (complete
// when it read every entry), and the entries this process appended and
// acknowledged since. Other writers' entries come in as keys of unknown
// state (see keyState); keys whose entries are gone leave; a known state
// is kept unless an entry newer than it came in.
func (x *index) sync(entries []journal.Entry, complete bool, withdrawn func(id string) bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.ended()
	fresh := newPackedMap(len(entries))
	listed := make(map[string]bool, len(entries))
	for _, e := range entries {
		if x.recentAck[entryName(e.ID)] || withdrawn(e.ID) {
			continue
		}
		listed[entryName(e.ID)] = true
		x.count(fresh, e.Key, e.Missing, e.Op, entryStamp(e), e.Recorded)
	}
	for id, r := range x.recentAdd {
		if !listed[id] && !x.recentAck[id] {
			x.count(fresh, r.key, r.missing, r.op, r.s, r.at)
		}
	}
	for _, r := range x.kept {
		x.count(fresh, r.key, r.missing, r.op, r.s, r.at)
	}
	if !complete {
		x.keepUnlisted(fresh)
	}
	for key := range fresh.at {
		old, ok := x.load(x.m, key)
		if !ok || !old.known {
			continue
		}
		p, _ := x.load(fresh, key)
		newer := p.hintPut.compare(old.latest, x.skew) > 0 || p.hintDel.compare(old.latest, x.skew) > 0 ||
			// A put that came in below an unseen tombstone may be a write
			// the tombstone leaves standing (see stamp.unseen).
			old.deleted && p.hintDel.unseen && p.hintPut.v != old.hintPut.v && !p.hintPut.v.IsZero()
		if !newer {
			p.known, p.latest, p.deleted, p.on, p.size, p.modTime = true, old.latest, old.deleted, old.on, old.size, old.modTime
			x.store(fresh, key, p)
		}
	}
	x.m, x.complete = fresh, complete
	if complete {
		x.unsure = nil // the listing left withdrawn entries out
	}
	x.read = x.read || complete
}

// journalRead reports whether a listing of the journal has read every
// entry since the index was made.
func (x *index) journalRead() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.read
}

// hinted reports whether key's hint for op is the change at version v.
func (x *index) hinted(key string, op journal.Op, v Version) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	p, ok := x.load(x.m, key)
	return ok && p.hintOf(op).v == v
}

// markUnsure records that key's hints may count a withdrawn entry: its
// state is unknown, and no hint may decide it, until a listing reads the
// whole journal (see sync).
func (x *index) markUnsure(key string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.unsure == nil {
		x.unsure = map[string]bool{}
	}
	x.unsure[key] = true
	if p, ok := x.load(x.m, key); ok {
		p.known = false
		x.store(x.m, key, p)
	}
}

// isUnsure reports whether key's hints may count a withdrawn entry (see
// markUnsure).
func (x *index) isUnsure(key string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.unsure[key]
}

// keptPrefix begins the IDs of kept entries, which no journal gives.
const keptPrefix = "kept:"

// keep counts an entry the journal could not record, for a change of
// size bytes to key at s, and returns its ID and the key's hint for op
// from before it (see added).
func (x *index) keep(key string, missing journal.Side, op journal.Op, s stamp, at time.Time, size int64) (id string, prev stamp) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.kept == nil {
		x.kept, x.keptKeys = map[string]recentEntry{}, map[string]int{}
	}
	x.keptSeq++
	id = keptPrefix + strconv.Itoa(x.keptSeq)
	x.kept[id] = recentEntry{key: key, missing: missing, op: op, s: s, at: at, size: size}
	x.keptKeys[key]++
	return id, x.count(x.m, key, missing, op, s, at)
}

// keptEntries returns the kept entries, by ID.
func (x *index) keptEntries() map[string]recentEntry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return maps.Clone(x.kept)
}

// isKept reports whether the kept entry id is still waiting to be recorded.
func (x *index) isKept(id string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.kept[id]
	return ok
}

// recordedKept records that the journal now holds the kept entry id, as
// entry recorded: it stays counted, as the journal's.
func (x *index) recordedKept(id, recorded string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	r, ok := x.kept[id]
	if !ok {
		return
	}
	x.forget(id, r.key)
	if x.listings > 0 {
		x.recentAdd[entryName(recorded)] = r
	}
}

// dropKept forgets the kept entry id, withdrawn before it was recorded.
func (x *index) dropKept(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if r, ok := x.kept[id]; ok {
		x.forget(id, r.key)
	}
}

// forget drops the kept entry id, of key.
func (x *index) forget(id, key string) {
	delete(x.kept, id)
	if x.keptKeys[key]--; x.keptKeys[key] <= 0 {
		delete(x.keptKeys, key)
		delete(x.keptTried, key)
	}
}

// keptDue reports whether a look at key (with under, at the keys under the
// prefix key) may try to record its kept entries now: one of them has not
// been tried for every. If so, it counts them tried now. Each key is paced
// on its own, so that looks at other keys do not use up its tries.
func (x *index) keptDue(key string, under bool, every time.Duration) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := time.Now()
	due := false
	for k := range x.keptKeys {
		if k != key && !(under && strings.HasPrefix(k, key)) {
			continue
		}
		if t, ok := x.keptTried[k]; !ok || now.Sub(t) >= every {
			due = true
		}
	}
	if !due {
		return false
	}
	if x.keptTried == nil {
		x.keptTried = map[string]time.Time{}
	}
	for k := range x.keptKeys {
		if k == key || under && strings.HasPrefix(k, key) {
			x.keptTried[k] = now
		}
	}
	return true
}

// unrecorded reports whether a change of key that may have reached a side
// is not yet recorded in the journal (see keep); with under set, whether a
// change of any key under the prefix key is.
func (x *index) unrecorded(key string, under bool) bool {
	_, ok := x.unrecordedKey(key, under)
	return ok
}

// unrecordedKey returns a key (key itself, or with under one under the
// prefix key) with a change that waits to be recorded, if there is one.
func (x *index) unrecordedKey(key string, under bool) (string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if !under {
		return key, x.keptKeys[key] > 0
	}
	for k := range x.keptKeys {
		if strings.HasPrefix(k, key) {
			return k, true
		}
	}
	return "", false
}

// keepUnlisted carries into fresh, a listing that could not read every side
// of the journal, what the index knew of the entries it may have missed:
// the entries kept on a side that could not be listed are still pending.
// Each key keeps the larger of its two counts, the older of its oldest
// times, and the newer of its hints.
func (x *index) keepUnlisted(fresh *packedMap) {
	for key := range x.m.all() {
		old, _ := x.load(x.m, key)
		p, ok := x.load(fresh, key)
		if !ok {
			x.store(fresh, key, old)
			continue
		}
		for s := range p.entries {
			p.entries[s] = max(p.entries[s], old.entries[s])
		}
		if old.oldest.Before(p.oldest) {
			p.oldest = old.oldest
		}
		if old.hintPut.compare(p.hintPut, x.skew) > 0 {
			p.hintPut = old.hintPut
		}
		if old.hintDel.compare(p.hintDel, x.skew) > 0 {
			p.hintDel = old.hintDel
		}
		x.store(fresh, key, p)
	}
}

// unhint forgets a withdrawn entry id for a change to key at s as the
// key's hint for op, which goes back to prev, what it was before the
// entry; and forgets it among the entries appended while a listing is
// under way, which that listing's sync would otherwise count again. It
// reports false if the hint cannot go back: a listing of the journal took
// the entry in before its append returned, so prev is the entry itself,
// and what came before it is known only to a listing of the journal.
func (x *index) unhint(id, key string, op journal.Op, s, prev stamp) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.recentAdd, entryName(id))
	p, ok := x.load(x.m, key)
	if !ok {
		return true
	}
	h := p.hintOf(op)
	if h.v != s.v {
		return true
	}
	if prev.v == s.v {
		return false
	}
	*h = prev
	x.store(x.m, key, p)
	return true
}

// commit records a committed change to a key that has pending entries (keys
// without any are not tracked) and to its flight: version v, a delete or a
// put of size bytes now held by the sides in on.
func (x *index) commit(key string, v Version, deleted bool, on [2]bool, size int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if fl := x.flights[key]; fl != nil && v.Compare(fl.latest) > 0 {
		fl.latest, fl.deleted, fl.conditional, fl.found = v, deleted, false, false
	}
	p, ok := x.load(x.m, key)
	s := stamp{v: v}
	if !ok || (p.known && s.compare(p.latest, x.skew) < 0) {
		return
	}
	p.known, p.latest, p.deleted, p.on = true, s, deleted, on
	p.size, p.modTime = size, time.Now()
	x.store(x.m, key, p)
}

// resolved records the state of key read from the sides' versions, if the
// key is still pending and its state still unknown. Callers hold the key's
// lock.
func (x *index) resolved(key string, st keyState) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p, ok := x.load(x.m, key); ok && !p.known {
		p.known, p.latest, p.deleted, p.on = true, st.latest, st.deleted, st.on
		p.size, p.modTime = st.size, st.modTime
		x.store(x.m, key, p)
	}
}

// reached records that a change of key that failed may have reached the
// sides in sides, which may now hold it: they no longer surely hold the
// newest version the index knows. The state of a key that no side surely
// holds becomes unknown, to be resolved from the sides' versions when next
// needed.
func (x *index) reached(key string, sides [2]bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := x.load(x.m, key)
	if !ok || !p.known || p.deleted {
		return
	}
	for s, r := range sides {
		p.on[s] = p.on[s] && !r
	}
	if !p.on[0] && !p.on[1] {
		p.known = false
	}
	x.store(x.m, key, p)
}

// unsettle makes key's state unknown, to be resolved from the sides'
// versions when next needed: an entry of it that this process withdrew may
// still be applied by another instance (see Failover.unsettle).
func (x *index) unsettle(key string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p, ok := x.load(x.m, key); ok && p.known {
		p.known = false
		x.store(x.m, key, p)
	}
}

// unsettleIf makes key's state unknown (see unsettle) if the index still
// says of it what p says: a read found p wrong.
func (x *index) unsettleIf(key string, p keyState) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if q, ok := x.load(x.m, key); ok && q.says(p) {
		q.known = false
		x.store(x.m, key, q)
	}
}

// changed reports whether the index no longer says of key what p says: its
// newest change, or where it is.
func (x *index) changed(key string, p keyState) bool {
	q, ok := x.get(key)
	return !ok || !q.says(p)
}

// says reports whether q, a known state, says of its key what p says: its
// newest change, and where it is.
func (q keyState) says(p keyState) bool {
	return q.known && q.deleted == p.deleted && q.on == p.on && q.latest.v == p.latest.v
}

// moved records that side to holds s, the newest version of key there is,
// before the reconciler removes the copy on the other side, so that reads
// that followed the index to that copy go to to instead.
func (x *index) moved(key string, s stamp, to journal.Side) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p, ok := x.load(x.m, key); ok && p.known && !p.deleted && p.latest.compare(s, x.skew) <= 0 {
		p.latest, p.on = s, only(to)
		x.store(x.m, key, p)
	}
}

// acked drops the acknowledged entries ids for the key's missing side,
// and the key itself once nothing is pending. Entries that remain were
// recorded after listedAt (when the acknowledged ones were read from the
// journal), so the key's oldest pending time moves up to it.
func (x *index) acked(key string, missing journal.Side, ids []string, listedAt time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.listings > 0 {
		for _, id := range ids {
			x.recentAck[entryName(id)] = true
		}
	}
	p, ok := x.load(x.m, key)
	if !ok {
		return
	}
	p.entries[missing] = max(0, p.entries[missing]-len(ids))
	switch {
	case p.entries[0] == 0 && p.entries[1] == 0:
		x.m.del(key)
		delete(x.unsure, key) // no hint is left to doubt
		return
	case p.entries[missing.Other()] == 0 && listedAt.After(p.oldest):
		p.oldest = listedAt
	}
	x.store(x.m, key, p)
}

// snapshot returns the keys with a known state under prefix, sorted, with
// their state.
func (x *index) snapshot(prefix string) ([]string, map[string]keyState) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var keys []string
	states := map[string]keyState{}
	for k, q := range x.m.all() {
		if q.flags&flagKnown != 0 && strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
			states[k] = x.unpack(q)
		}
	}
	sort.Strings(keys)
	return keys, states
}

// unknown returns, sorted, up to limit keys under prefix and after after
// whose state is unknown.
func (x *index) unknown(prefix, after string, limit int) []string {
	x.mu.RLock()
	var keys []string
	for k, q := range x.m.all() {
		if q.flags&flagKnown == 0 && strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	x.mu.RUnlock()
	sort.Strings(keys)
	if len(keys) > limit {
		keys = keys[:limit]
	}
	return keys
}

// pendingSides reports, for each side, whether it misses changes pending
// entries record.
func (x *index) pendingSides() (pending [2]bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, q := range x.m.all() {
		pending[0] = pending[0] || q.entries[0] > 0
		pending[1] = pending[1] || q.entries[1] > 0
		if pending[0] && pending[1] {
			break
		}
	}
	return pending
}

// stats returns the number of pending entries and when the oldest was
// recorded.
func (x *index) stats() (n int, oldest time.Time) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var first int64
	for _, q := range x.m.all() {
		n += int(q.entries[0] + q.entries[1])
		if first == 0 || q.oldest < first {
			first = q.oldest
		}
	}
	return n, unixTime(first)
}
