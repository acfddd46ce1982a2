package chaos

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Each key of the failover bucket is one register: a Put sets it, a Delete
// clears it, a Copy sets it to some value its source held. The model below
// is that register for porcupine. A Copy's value is pinned by the first read
// that sees it.

type regKind uint8

const (
	regAbsent regKind = iota
	regValue          // id is the value
	regCopy           // id is the Copy operation; pin is the value once a read saw it
)

// pinEmpty pins a copied value to "some empty value", which an empty read
// shows without naming.
const pinEmpty = -1

type regState struct {
	kind regKind
	id   int64
	pin  int64
}

type linKind uint8

const (
	linPut linKind = iota
	linPutIfAbsent
	linPutIfAbsentMaybe // failed IfNotExist write that reached a side
	linDelete
	linCopy
	linSee
)

type linInput struct {
	kind  linKind
	id    int64 // the value of a Put, the operation of a Copy
	seen  sighting
	label string
}

// registerModel returns the model of one key.
func (a *analysis) registerModel() porcupine.Model {
	size := func(v int64) int64 { return a.size(valueID(v)) }
	// see steps a state by a sighting: ok, and the state with any pin made.
	see := func(s regState, in sighting) (bool, regState) {
		if in.kind == seenAbsent {
			return s.kind == regAbsent, s
		}
		if s.kind == regAbsent {
			return false, s
		}
		fits := func(v int64) bool {
			switch in.kind {
			case seenValue:
				return v == int64(in.value)
			case seenEmpty:
				return size(v) == 0
			default:
				return in.size < 0 || size(v) == in.size
			}
		}
		if s.kind == regValue {
			return fits(s.id), s
		}
		switch {
		case s.pin > 0:
			return fits(s.pin), s
		case s.pin == pinEmpty:
			if in.kind == seenValue && size(int64(in.value)) == 0 && a.cand[s.id][in.value] {
				s.pin = int64(in.value)
				return true, s
			}
			return in.kind == seenEmpty || (in.kind == seenExists && in.size <= 0), s
		}
		switch in.kind {
		case seenValue:
			if a.cand[s.id][in.value] {
				s.pin = int64(in.value)
				return true, s
			}
		case seenEmpty:
			for v := range a.cand[s.id] {
				if size(int64(v)) == 0 {
					s.pin = pinEmpty
					return true, s
				}
			}
		default:
			for v := range a.cand[s.id] {
				if fits(int64(v)) {
					return true, s
				}
			}
		}
		return false, s
	}
	return porcupine.Model{
		Init: func() any { return regState{} },
		Step: func(state, input, _ any) (bool, any) {
			s, in := state.(regState), input.(linInput)
			switch in.kind {
			case linPut:
				return true, regState{kind: regValue, id: in.id}
			case linPutIfAbsent:
				return s.kind == regAbsent, regState{kind: regValue, id: in.id}
			case linPutIfAbsentMaybe:
				if s.kind == regAbsent {
					return true, regState{kind: regValue, id: in.id}
				}
				return true, s
			case linDelete:
				return true, regState{}
			case linCopy:
				return true, regState{kind: regCopy, id: in.id}
			}
			return see(s, in.seen)
		},
		Hash: func(state any) uint64 {
			s := state.(regState)
			return uint64(s.kind)<<60 ^ uint64(s.id)*0x9e3779b97f4a7c15 ^ uint64(s.pin)
		},
		DescribeOperation: func(input, _ any) string { return input.(linInput).label },
		DescribeState: func(state any) string {
			s := state.(regState)
			switch s.kind {
			case regAbsent:
				return "absent"
			case regValue:
				return fmt.Sprintf("#%d", s.id)
			}
			return fmt.Sprintf("copy by op #%d (pinned %d)", s.id, s.pin)
		},
	}
}

// history returns the porcupine history of one key.
func (a *analysis) history(h *keyHistory) []porcupine.Operation {
	var ops []porcupine.Operation
	for _, m := range h.muts {
		in := linInput{id: m.op.index}
		switch {
		case m.kind == mutDelete:
			in.kind = linDelete
		case m.kind == mutCopy:
			in.kind = linCopy
		case m.op.kind == opPutIfAbsent && m.acked:
			in.kind = linPutIfAbsent
		case m.op.kind == opPutIfAbsent:
			in.kind = linPutIfAbsentMaybe
		default:
			in.kind = linPut
		}
		in.label = m.op.String()
		ops = append(ops, porcupine.Operation{ClientId: m.op.client, Input: in, Call: m.call, Return: m.ret})
	}
	for _, s := range h.seen {
		if !s.strict {
			continue
		}
		in := linInput{kind: linSee, seen: s.sighting, label: fmt.Sprintf("%s: %s", s.op, s.sighting)}
		if s.op.kind == opList {
			// A listing's sizes of keys with pending work come from what the
			// bucket recorded, which cannot know whether a write that failed
			// took effect: they are checked against the writes that may be
			// current (explain), and only the key's presence linearizably.
			in.seen.size = -1
		}
		ops = append(ops, porcupine.Operation{ClientId: s.op.client, Input: in, Call: s.op.call, Return: s.op.ret})
	}
	return ops
}

// checkLinearizable checks each key's history with porcupine. A history
// that is not linearizable is drawn to an HTML file named in the failure.
// Each key's search is bounded by LinearizabilityTimeout, and the seed's by
// three times that: keys left when it runs out are reported unknown, as are
// all of a seed's keys when the other checks have failed it already.
func (a *analysis) checkLinearizable() {
	start := time.Now()
	defer func() { a.report.LinearizabilityTime += time.Since(start) }()
	model := a.registerModel()
	failed := len(a.violations) > 0
	keys := make([]string, 0, len(a.keys))
	for k := range a.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if info := a.keys[k].info; info.refused || (len(a.r.writers) > 1 && info.owner < 0) {
			continue // never stored (see checkRefused), or changed by every writer (see Check)
		}
		if failed || time.Since(start) > 3*a.r.o.LinearizabilityTimeout {
			// The seed has failed already, or its histories take this long
			// (a history that is not linearizable can take the search long
			// to refute): the keys left are not searched.
			a.report.KeysUnknown++
			a.unknown = append(a.unknown, k)
			continue
		}
		ops := a.history(a.keys[k])
		if a.linearizableWithout(model, ops) {
			a.report.KeysLinearizable++
			continue
		}
		// One search, verbose so that a history that is not linearizable can
		// be drawn without searching again.
		result, info := porcupine.CheckOperationsVerbose(model, ops, a.r.o.LinearizabilityTimeout)
		switch result {
		case porcupine.Ok:
			a.report.KeysLinearizable++
		case porcupine.Unknown:
			a.report.KeysUnknown++
			a.unknown = append(a.unknown, k)
		default:
			a.report.KeysNotLinearizable++
			where := ""
			name := fmt.Sprintf("chaos-seed%d-%s.html", a.r.seed, strings.ReplaceAll(k, "/", "_"))
			path := filepath.Join(os.TempDir(), name)
			if err := porcupine.VisualizePath(model, info, path); err == nil {
				where = "; drawn in " + path
			}
			a.violation("the history of %s (%d operations) is not linearizable%s%s", k, len(ops), where, a.firstFailure(model, ops))
		}
	}
}

// linearizableWithout tries cheaper sub-histories first, briefly. An
// operation that failed returns at infinity, so it can always be placed
// after everything else: if a history is linearizable without some of them,
// it is with them. The search is exponential in the failed deletes that may
// take effect at any time, so the sub-histories keep few of them: none, then
// for each sighting of an absent key the failed delete that began last
// before it.
func (a *analysis) linearizableWithout(model porcupine.Model, ops []porcupine.Operation) bool {
	var settled, failedDeletes []porcupine.Operation
	for _, op := range ops {
		switch {
		case op.Return != math.MaxInt64:
			settled = append(settled, op)
		case op.Input.(linInput).kind == linDelete:
			failedDeletes = append(failedDeletes, op)
		}
	}
	if len(settled) == len(ops) {
		return false // nothing to leave out: the caller checks the history
	}
	// A sub-history that is not linearizable can take porcupine long to
	// refute; these are shortcuts only, so they get a thirtieth of the time.
	timeout := a.r.o.LinearizabilityTimeout / 30
	if porcupine.CheckOperationsTimeout(model, settled, timeout) == porcupine.Ok {
		return true
	}
	if len(failedDeletes) == 0 {
		return false
	}
	chosen := map[int]bool{}
	for _, op := range settled {
		if in := op.Input.(linInput); in.kind != linSee || in.seen.kind != seenAbsent {
			continue
		}
		best := -1
		for i, d := range failedDeletes {
			if d.Call < op.Return && (best < 0 || d.Call > failedDeletes[best].Call) {
				best = i
			}
		}
		if best >= 0 {
			chosen[best] = true
		}
	}
	sub := append([]porcupine.Operation(nil), settled...)
	for i := range chosen {
		sub = append(sub, failedDeletes[i])
	}
	return porcupine.CheckOperationsTimeout(model, sub, timeout) == porcupine.Ok
}

// firstFailure describes where a history that is not linearizable first
// fails: the shortest prefix of it (its operations by call time) that is
// not linearizable ends with an operation that no order of the others
// explains. It names that operation and the ones that overlap it or came
// just before. A prefix of a linearizable history is linearizable, so the
// shortest failing prefix is found by bisection; the search is bounded by
// the linearizability timeout, and gives up quietly when that runs out.
func (a *analysis) firstFailure(model porcupine.Model, ops []porcupine.Operation) string {
	sorted := append([]porcupine.Operation(nil), ops...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
	deadline := time.Now().Add(a.r.o.LinearizabilityTimeout)
	lo, hi := 1, len(sorted) // sorted[:hi] fails; sorted[:lo-1] passes
	for lo < hi {
		if time.Now().After(deadline) {
			return ""
		}
		mid := (lo + hi) / 2
		switch porcupine.CheckOperationsTimeout(model, sorted[:mid], time.Until(deadline)) {
		case porcupine.Illegal:
			hi = mid
		case porcupine.Ok:
			lo = mid + 1
		default:
			return ""
		}
	}
	last := sorted[hi-1]
	var b strings.Builder
	show := func(op porcupine.Operation) {
		ret := "fails"
		if op.Return != math.MaxInt64 {
			ret = fmt.Sprint(op.Return)
		}
		fmt.Fprintf(&b, "\n\t\t[%d, %s] %s", op.Call, ret, op.Input.(linInput).label)
	}
	from := max(0, hi-12)
	// The changes just before the window, which the sightings in it may
	// be about.
	var changes []porcupine.Operation
	for i := from - 1; i >= 0 && len(changes) < 6; i-- {
		if sorted[i].Input.(linInput).kind != linSee {
			changes = append(changes, sorted[i])
		}
	}
	fmt.Fprintf(&b, "; it first fails at %s, with these before or overlapping it:", last.Input.(linInput).label)
	for i := len(changes) - 1; i >= 0; i-- {
		show(changes[i])
	}
	if len(changes) > 0 {
		b.WriteString("\n\t\t...")
	}
	for i := from; i < hi; i++ {
		show(sorted[i])
	}
	for _, op := range sorted[hi:] {
		if op.Call < last.Return && op.Return > last.Call {
			fmt.Fprintf(&b, "\n\t\t[%d, ...] (overlapping, later) %s", op.Call, op.Input.(linInput).label)
		}
	}
	return b.String()
}
