package failoverblob

import "time"

// packed is how the index keeps a keyState: small, since a long outage can
// leave millions of keys pending. Times are Unix nanoseconds (0 for the
// zero time) and writer ids are interned.
type packed struct {
	hintPut, hintDel, latest packedStamp
	oldest, modTime, size    int64
	entries                  [2]uint32
	flags                    uint8
}

type packedStamp struct {
	wall, at        int64
	logical, writer uint32
}

const (
	flagKnown uint8 = 1 << iota
	flagDeleted
	flagOnPrimary
	flagOnSecondary
	flagUnseenDelete // hintDel is an unseen tombstone (see stamp.unseen)
)

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func unixTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// load returns the state of key in m.
func (x *index) load(m *packedMap, key string) (keyState, bool) {
	q, ok := m.get(key)
	if !ok {
		return keyState{}, false
	}
	return x.unpack(q), true
}

// store keeps p as the state of key in m.
func (x *index) store(m *packedMap, key string, p keyState) { m.put(key, x.pack(p)) }

func (x *index) pack(p keyState) packed {
	q := packed{
		hintPut: x.packStamp(p.hintPut), hintDel: x.packStamp(p.hintDel), latest: x.packStamp(p.latest),
		oldest: unixNano(p.oldest), modTime: unixNano(p.modTime), size: p.size,
		entries: [2]uint32{uint32(p.entries[0]), uint32(p.entries[1])},
	}
	for _, f := range []struct {
		set  bool
		flag uint8
	}{{p.known, flagKnown}, {p.deleted, flagDeleted}, {p.on[0], flagOnPrimary}, {p.on[1], flagOnSecondary}, {p.hintDel.unseen, flagUnseenDelete}} {
		if f.set {
			q.flags |= f.flag
		}
	}
	return q
}

func (x *index) unpack(q packed) keyState {
	p := keyState{
		hintPut: x.unpackStamp(q.hintPut), hintDel: x.unpackStamp(q.hintDel), latest: x.unpackStamp(q.latest),
		oldest: unixTime(q.oldest), modTime: unixTime(q.modTime), size: q.size,
		entries: [2]int{int(q.entries[0]), int(q.entries[1])},
		known:   q.flags&flagKnown != 0, deleted: q.flags&flagDeleted != 0,
		on: [2]bool{q.flags&flagOnPrimary != 0, q.flags&flagOnSecondary != 0},
	}
	p.hintDel.unseen = q.flags&flagUnseenDelete != 0
	return p
}

func (x *index) packStamp(s stamp) packedStamp {
	return packedStamp{wall: s.v.Wall, at: unixNano(s.at), logical: s.v.Logical, writer: x.intern(s.v.Writer)}
}

func (x *index) unpackStamp(p packedStamp) stamp {
	var w string
	if int(p.writer) < len(x.writerOf) {
		w = x.writerOf[p.writer]
	}
	return stamp{v: Version{Wall: p.wall, Logical: p.logical, Writer: w}, at: unixTime(p.at)}
}

// intern returns the number of writer id w, which the index's few writers
// share. Callers hold x.mu for writing.
func (x *index) intern(w string) uint32 {
	if n, ok := x.writers[w]; ok {
		return n
	}
	if x.writers == nil {
		x.writers, x.writerOf = map[string]uint32{"": 0}, []string{""}
		if w == "" {
			return 0
		}
	}
	n := uint32(len(x.writerOf))
	x.writers[w] = n
	x.writerOf = append(x.writerOf, w)
	return n
}

// packedMap maps keys to packed states kept side by side in one slice, so
// that the map itself holds small slots (a key and a slot number): a Go
// map's slots are key and value together, and it doubles its slots as it
// grows, so large values would cost up to twice their size per key.
type packedMap struct {
	at   map[string]uint32
	vals []packed
	free []uint32 // slots of vals no key uses
}

// newPackedMap returns an empty packedMap with room for n keys.
func newPackedMap(n int) *packedMap {
	return &packedMap{at: make(map[string]uint32, n), vals: make([]packed, 0, n)}
}

func (m *packedMap) get(key string) (packed, bool) {
	i, ok := m.at[key]
	if !ok {
		return packed{}, false
	}
	return m.vals[i], true
}

func (m *packedMap) put(key string, q packed) {
	if i, ok := m.at[key]; ok {
		m.vals[i] = q
		return
	}
	if n := len(m.free); n > 0 {
		i := m.free[n-1]
		m.free = m.free[:n-1]
		m.vals[i], m.at[key] = q, i
		return
	}
	m.at[key] = uint32(len(m.vals))
	m.vals = append(m.vals, q)
}

func (m *packedMap) del(key string) {
	i, ok := m.at[key]
	if !ok {
		return
	}
	delete(m.at, key)
	m.vals[i] = packed{}
	if len(m.at) == 0 {
		m.vals, m.free = m.vals[:0], nil
		return
	}
	m.free = append(m.free, i)
}

// all returns the keys and their states, in no order.
func (m *packedMap) all() func(yield func(string, packed) bool) {
	return func(yield func(string, packed) bool) {
		for k, i := range m.at {
			if !yield(k, m.vals[i]) {
				return
			}
		}
	}
}
