package failoverblob

import "slices"

// flight is what the index follows of a key while writes of it are in
// flight: the newest change committed since the first of them opened.
type flight struct {
	writers     int
	stamps      []Version  // the versions of the writes in flight stamped so far
	buf         [2]Version // stamps' first room, so that a write or two allocate nothing
	latest      Version
	deleted     bool // latest is a delete
	conditional bool // latest is an IfNotExist write, which found the key absent
	found       bool // latest is a delete that removed an object of the key
	// afterFlights is the newest delete that answered success only as
	// coming after the writes of the key in flight stamped before it (see
	// mirrorDelete.unseen): those writes take their place before it.
	afterFlights Version
}

// begin counts a write of key opening and stamps its version with stamp,
// which it returns. The write counts before it is stamped, so that every
// change committed after the stamp is seen by overtaken; and it is stamped
// under the index's lock, so that inFlightBefore never misses a write
// that holds its version.
func (x *index) begin(key string, stamp func() Version) Version {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.flights == nil {
		x.flights = map[string]*flight{}
	}
	fl := x.flights[key]
	if fl == nil {
		fl = &flight{}
		fl.stamps = fl.buf[:0]
		x.flights[key] = fl
	}
	fl.writers++
	v := stamp()
	fl.stamps = append(fl.stamps, v)
	return v
}

// end counts a write of key, stamped v, closing.
func (x *index) end(key string, v Version) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if fl := x.flights[key]; fl != nil {
		if i := slices.Index(fl.stamps, v); i >= 0 {
			fl.stamps = slices.Delete(fl.stamps, i, i+1)
		}
		if fl.writers--; fl.writers == 0 {
			delete(x.flights, key)
		}
	}
}

// inFlightBefore reports whether a write of key stamped before v is in
// flight.
func (x *index) inFlightBefore(key string, v Version) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if fl := x.flights[key]; fl != nil {
		for _, s := range fl.stamps {
			if s.Compare(v) < 0 {
				return true
			}
		}
	}
	return false
}

// overtaken reports whether a change to key newer than v, a version stamped
// by a write in flight, has committed (in this process), and which. Such a
// change was stamped after the write began, so it committed while the
// write's flight was followed.
func (x *index) overtaken(key string, v Version) (newer bool, by flight) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if fl := x.flights[key]; fl != nil && fl.latest.Compare(v) > 0 {
		return true, *fl
	}
	return false, flight{}
}

// conditional records that the change of key at version v, just committed,
// was an IfNotExist write.
func (x *index) conditional(key string, v Version) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if fl := x.flights[key]; fl != nil && fl.latest.Compare(v) == 0 {
		fl.conditional = true
	}
}

// deleteAfterFlights records that the delete stamped v answered success
// only as coming after the writes of key in flight stamped before it.
func (x *index) deleteAfterFlights(key string, v Version) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if fl := x.flights[key]; fl != nil && v.Compare(fl.afterFlights) > 0 {
		fl.afterFlights = v
	}
}

// cameBefore reports whether a delete answered success as coming after
// the write of key in flight stamped v (see deleteAfterFlights).
func (x *index) cameBefore(key string, v Version) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	fl := x.flights[key]
	return fl != nil && v.Compare(fl.afterFlights) < 0
}

// deleteFound records that the delete of key at version v, just
// committed, removed an object of the key: the key existed just before it.
func (x *index) deleteFound(key string, v Version) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if fl := x.flights[key]; fl != nil && fl.latest.Compare(v) == 0 && fl.deleted {
		fl.found = true
	}
}
