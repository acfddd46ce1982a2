package chaos

import (
	"fmt"
	"sort"
	"strings"

	"github.com/failoverblob/failoverblob/journal"
)

// checkMonotonic checks that no client's reads of a key go back in time:
// once a client has seen a value, none of its later reads (begun after that
// read returned) shows an older acknowledged value, one whose every write
// returned before every write of the value seen began, or shows the key
// absent when no delete of it may have taken effect since. Only strict
// sightings are checked (see Check); linearizability implies the same, and
// this check names the two reads.
func (a *analysis) checkMonotonic() {
	for _, h := range a.keys {
		byClient := map[int][]seenAt{}
		for _, s := range h.seen {
			switch s.op.kind {
			case opGet, opAttributes, opList, opDelete:
				if s.strict && (s.kind == seenValue || s.kind == seenAbsent) {
					byClient[s.op.client] = append(byClient[s.op.client], s)
				}
			}
		}
		for _, reads := range byClient {
			sort.SliceStable(reads, func(i, j int) bool { return reads[i].op.call < reads[j].op.call })
			var last *seenAt // the value the client saw last
			for i := range reads {
				s := &reads[i]
				switch {
				case last == nil || s.op.call < last.op.ret:
				case s.kind == seenAbsent && !a.deletedBetween(h, last.op.call, s.op.ret):
					a.report.NonMonotonicReads++
					a.violation("%s: %s is absent, but the same client read value #%d in %s before, and no delete of the key may have taken effect since (reads went back in time)", s.op, h.key, last.value, last.op)
					continue
				case s.kind == seenValue && s.value != last.value && a.older(h, s.value, last.value):
					a.report.NonMonotonicReads++
					a.violation("%s: %s shows value #%d, but the same client read value #%d in %s before, and every write of #%d returned before any write of #%d began (reads went back in time)", s.op, h.key, s.value, last.value, last.op, s.value, last.value)
					continue
				}
				switch s.kind {
				case seenValue:
					last = s
				case seenAbsent:
					last = nil
				}
			}
		}
	}
}

// deletedBetween reports whether a delete of h that may have taken effect
// ran between from and to (logical times).
func (a *analysis) deletedBetween(h *keyHistory, from, to int64) bool {
	for _, m := range h.muts {
		if m.kind == mutDelete && m.call < to && m.ret > from {
			return true
		}
	}
	return false
}

// older reports whether value v of h is older than value w: every write
// that may have made v was acknowledged, and all of them come before all
// that may have made w.
func (a *analysis) older(h *keyHistory, v, w valueID) bool {
	pv, pw := a.producers(h, v), a.producers(h, w)
	if len(pv) == 0 || len(pw) == 0 {
		return false
	}
	for _, m := range pv {
		if !m.acked {
			return false
		}
	}
	return a.allBefore(pv, pw)
}

// between lists the operations on from's key (written, read, deleted or
// copied from) that overlap the span from from's call to to's return.
func (a *analysis) between(from, to *op) string {
	var b strings.Builder
	for _, x := range a.ops {
		if x.key != from.key && x.src != from.key || x.ret < from.call || x.call > to.ret {
			continue
		}
		fmt.Fprintf(&b, "\n\t\t[%d, %d] %s", x.call, x.ret, x)
	}
	return b.String()
}

// failedWriteBetween reports whether a write of first's key that failed
// (other than by its precondition) ran at some time between the start of
// first and the end of second: it may have stored the key all the same,
// unseen, and the second delete then had something to delete.
func (a *analysis) failedWriteBetween(first, second *op) bool {
	for _, x := range a.ops {
		switch {
		case x.key != first.key || x.out == outOK || x.out == outPrecondition || x.out == outNotFound:
		case x.kind != opPut && x.kind != opPutIfAbsent && x.kind != opCopy:
		case x.call < second.ret && x.ret > first.call:
			return true
		}
	}
	return false
}

// checkRepeatedDeletes checks the second of two deletes of a key in a row
// by one client: if the first was acknowledged and no write of the key may
// have taken effect between them (an acknowledged one, or a failed one
// running meanwhile), the key was absent, and the second must
// not be acknowledged (gocloud's Delete answers NotFound for a missing key).
// In Redirect mode a second delete that may have run while the primary was
// down is exempt: the primary cannot be asked, and a delete then reports
// success even for a missing key.
func (a *analysis) checkRepeatedDeletes() {
	for _, o := range a.ops {
		first := o.again
		if first == nil {
			continue
		}
		a.report.RepeatedDeletes++
		h := a.keys[o.key]
		if first.out != outOK || o.out != outOK || h.info.refused || a.primaryMayBeDown(o) {
			continue
		}
		d := &mutation{op: first, kind: mutDelete, acked: true, call: first.call, ret: first.ret}
		written := false
		for _, m := range h.muts {
			if m.kind != mutDelete && m.call < o.ret && !a.after(d, m) {
				written = true
				break
			}
		}
		if written || a.failedWriteBetween(first, o) {
			continue
		}
		a.report.RepeatedDeletesAcked++
		a.violation("%s: %s was deleted by %s, acknowledged, and nothing wrote it since, yet the second delete was acknowledged too (want NotFound); the key's operations from the first:%s", o, o.key, first, a.between(first, o))
	}
}

// primaryMayBeDown reports whether o ran in Redirect mode while the primary
// may have been down, or taken for down: it had a fault (see faultsOf) from
// RecoverWithin before o began to o's end (always, without RecoverWithin).
func (a *analysis) primaryMayBeDown(o *op) bool {
	if a.r.mirror {
		return false
	}
	if a.r.o.RecoverWithin <= 0 {
		return true
	}
	quiet, _ := quietIn(a.faultsOf(o, journal.Primary), o.start, o.end, a.r.o.RecoverWithin)
	return !quiet
}

// faultsOf returns side's faults as the failover bucket of o's instance
// met them, sorted by start: the schedule's windows, and the streams o's
// instance opened on side during one of them that failed, each from its
// opening to its failure. The Injector decides a stream's fault as the
// stream opens (see failovertest.Injector), so a stream opened during a
// window can fail after the window healed, at any time up to its Close
// (a Mirror-mode write whose commit waited on its journal entry first,
// say), and a breaker counts that failure then. A stream that did not
// fail is no fault, however long it ran.
func (a *analysis) faultsOf(o *op, side journal.Side) []span {
	if a.faults == nil {
		a.faults = map[*instance]*[2][]span{}
	}
	at, ok := a.faults[o.inst]
	if !ok {
		at = new([2][]span)
		for _, s := range sides {
			windows := a.r.sched.faultsOf(s)
			at[s] = windows
			if o.inst != nil {
				at[s] = append(at[s], o.inst.fence.failedStreams(s, windows)...)
				sort.SliceStable(at[s], func(i, j int) bool { return at[s][i].start.Before(at[s][j].start) })
			}
		}
		a.faults[o.inst] = at
	}
	return at[side]
}

// checkRefused checks the operations on keys the sides refuse: none may
// succeed (a refused delete must not be acknowledged, with the exemption of
// Redirect mode while the primary may be down, as for repeated deletes),
// and with RecoverWithin none may answer unavailable while a side it needs
// had been free of faults long enough to answer (see needed): the sides'
// refusal is the caller's answer.
func (a *analysis) checkRefused() {
	for _, o := range a.ops {
		if o.kind == opList || o.crashed || !(a.r.keyInfo[o.key].refused || (o.kind == opCopy && a.r.keyInfo[o.src].refused)) {
			continue
		}
		a.report.RefusedKeyOps++
		switch {
		case o.out == outOK && o.kind == opDelete && a.primaryMayBeDown(o):
		case o.out == outOK && o.kind == opDelete:
			a.report.RefusedAcked++
			a.violation("%s: the sides refuse %.60q, yet its delete was acknowledged", o, o.key)
		case o.out == outOK:
			a.report.RefusedAcked++
			a.violation("%s: the sides refuse the key, yet the operation succeeded", o)
		case o.out != outUnavailable || a.r.o.RecoverWithin <= 0:
		default:
			if side, ok := a.neededAndReachable(o); ok {
				a.report.UnavailableWhenQuiet++
				a.violation("%s: the sides refuse the key, which is the caller's answer, yet it was answered as unavailable though the %s, which it needs, had no fault for RecoverWithin (%v) before and during it", o, side, a.r.o.RecoverWithin)
			}
		}
	}
}

// neededAndReachable reports a side that an operation on a refused key
// needs and that was reachable (see reachable) while it ran. A read needs
// any side (both, with Target.StrictReads), as does a change; but an
// IfNotExist write and a delete in Redirect mode need the primary, and with
// Target.AckBoth a change needs both sides. A copy to a refused key from an accepted one reads the source
// first, which may need a side that is down: checkAnswers judges it.
func (a *analysis) neededAndReachable(o *op) (journal.Side, bool) {
	pr, sec := a.reachable(o, journal.Primary), a.reachable(o, journal.Secondary)
	change := o.kind == opPut || o.kind == opPutIfAbsent || o.kind == opDelete || (o.kind == opCopy && !a.r.keyInfo[o.src].refused)
	switch {
	case o.kind == opCopy && !a.r.keyInfo[o.src].refused:
		return 0, false
	case change && a.r.ackBoth, !change && a.r.strictReads:
		return journal.Primary, pr && sec
	case o.kind == opPutIfAbsent, o.kind == opDelete && !a.r.mirror:
		return journal.Primary, pr
	case pr:
		return journal.Primary, true
	}
	return journal.Secondary, sec
}

// checkAnswers checks, with RecoverWithin, that no operation answers
// unavailable while neither side has had a fault for RecoverWithin: a
// side's breaker must have closed again by then, and a caller's bad key must
// never have opened it. A write overtaken by an IfNotExist write of the same
// key through the same instance is exempt: the failover bucket can place it
// neither before that write (which found the key absent) nor after it (its
// version is older), and answers it unavailable, having stored nothing.
func (a *analysis) checkAnswers() {
	if a.r.o.RecoverWithin <= 0 {
		return
	}
	for _, o := range a.ops {
		if o.out != outUnavailable || o.crashed || o.inst == nil || a.overtakenByIfNotExist(o) || a.overtakenByDelete(o) {
			continue
		}
		if a.reachable(o, journal.Primary) && a.reachable(o, journal.Secondary) {
			a.report.UnavailableWhenQuiet++
			a.violation("%s: answered unavailable, though neither side had a fault from RecoverWithin (%v) before it began to its end", o, a.r.o.RecoverWithin)
		}
	}
}

// reachable reports whether side had no fault (see faultsOf) from
// RecoverWithin before o began to o's end, and o did not run alongside a probe of side by o's
// instance: a breaker whose timeout has run out lets one call through and
// refuses the others until that call succeeds. The probe is among the
// calls that began from the end of side's last fault to RecoverWithin
// after, or the first call after that.
func (a *analysis) reachable(o *op, side journal.Side) bool {
	d := a.r.o.RecoverWithin
	quiet, lastEnd := quietIn(a.faultsOf(o, side), o.start, o.end, d)
	if !quiet {
		return false
	}
	expired := lastEnd.Add(d)
	spans := o.inst.fence.spansOf(side, lastEnd, o.end)
	for i, x := range spans {
		probe := !x.start.After(expired) || i == 0 || !spans[i-1].start.After(expired)
		overlaps := !x.start.After(o.end) && (x.end.IsZero() || !x.end.Before(o.start))
		if probe && overlaps {
			return false
		}
	}
	return true
}

// overtakenByDelete reports whether o, an IfNotExist write, ran alongside
// an acknowledged delete of its key through the same instance that began
// after it: whether the key was absent just before that delete cannot be
// told, and the write answers unavailable by design (see README,
// Semantics).
func (a *analysis) overtakenByDelete(o *op) bool {
	return o.kind == opPutIfAbsent && a.overtakenBy(o, opDelete)
}

// overtakenBy reports whether an acknowledged operation of kind on o's key,
// through o's instance, began while o ran.
func (a *analysis) overtakenBy(o *op, kind opKind) bool {
	for _, x := range a.ops {
		if x.kind == kind && x.out == outOK && x.key == o.key && x.inst == o.inst && x.call > o.call && x.call < o.ret {
			return true
		}
	}
	return false
}

// overtakenByIfNotExist reports whether o, a write, ran alongside an
// acknowledged IfNotExist write of its key through the same instance that
// began after it.
func (a *analysis) overtakenByIfNotExist(o *op) bool {
	return (o.kind == opPut || o.kind == opCopy) && a.overtakenBy(o, opPutIfAbsent)
}
