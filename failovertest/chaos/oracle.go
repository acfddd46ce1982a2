package chaos

import (
	"context"
	"fmt"
	"math"
	"sort"

	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// rawObject is what a side holds for a key at the end, read directly from
// the bucket under the wrappers.
type rawObject struct {
	metadata valueID // the value named by its metadata
	content  valueID // the value its bytes decode to (0 if empty)
	size     int64
	err      error // the bytes do not decode
}

// snapshotSides reads what each side holds for every key.
func (r *run) snapshotSides(ctx context.Context) (map[string]rawObject, map[string]rawObject, error) {
	var out [2]map[string]rawObject
	for i, b := range r.raw {
		out[i] = map[string]rawObject{}
		for _, k := range r.keys {
			data, err := b.ReadAll(ctx, k)
			if gcerrors.Code(err) == gcerrors.NotFound {
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("reading %q from the %s: %w", k, journal.Side(i), err)
			}
			a, err := b.Attributes(ctx, k)
			if err != nil {
				return nil, nil, fmt.Errorf("reading the attributes of %q from the %s: %w", k, journal.Side(i), err)
			}
			o := rawObject{metadata: valueOf(a.Metadata), size: int64(len(data))}
			o.content, o.err = decodeValue(data)
			out[i][k] = o
		}
	}
	return out[0], out[1], nil
}

type mutKind int

const (
	mutPut mutKind = iota
	mutDelete
	mutCopy
)

// mutation is an operation that changed a key, or may have: acknowledged,
// or failed after its data reached a side (a failed delete always may have
// taken effect). An ambiguous mutation may take effect at any time after its
// call, so for the history its return is at infinity.
type mutation struct {
	op    *op
	kind  mutKind
	acked bool
	call  int64
	ret   int64 // math.MaxInt64 unless acked
}

// keyHistory is everything that happened to one key.
type keyHistory struct {
	key       string
	info      keyInfo
	muts      []*mutation
	byCall    []*mutation // acknowledged mutations by call
	suffixMin []int64     // suffixMin[i]: the earliest return among byCall[i:]
	seen      []seenAt
}

// seenAt is a sighting and the operation that made it. A strict sighting
// is held to every check; with several writers, a sighting of a key through
// a writer other than its owner only to those that hold across writers
// (see Check).
type seenAt struct {
	sighting
	op     *op
	strict bool
}

// strict reports whether what o showed of key is held to every check: with
// one writer always, with several only for a key o's writer alone changes.
func (a *analysis) strict(o *op, key string) bool {
	return len(a.r.writers) == 1 || a.r.keyInfo[key].owner == o.writer
}

// cutOffByCrashes marks the operations that were in flight on an instance
// when it crashed: their answers reached no one, so each is an operation
// that failed, which may or may not have taken effect, and what it read is
// forgotten.
func (a *analysis) cutOffByCrashes() {
	for _, o := range a.ops {
		if o.inst == nil {
			continue
		}
		if k := o.inst.killedAt.Load(); k != 0 && o.ret > k {
			o.crashed, o.out, o.seen, o.faults = true, outFailed, nil, nil
		}
	}
}

// analysis holds the history of a seed, indexed for the checks.
type analysis struct {
	r          *run
	ops        []*op
	byIndex    map[int64]*op
	sizes      []int64        // by value id: the size of the value, -1 if none
	stored     map[int64]bool // client operations whose data reached a side
	mayStore   map[int64]bool // over the wire: client operations whose data may have reached a side
	keys       map[string]*keyHistory
	cand       map[int64]map[valueID]bool // per Copy: the values its source may have held
	report     Report
	violations []string
	unknown    []string                 // keys whose linearizability check timed out
	faults     map[*instance]*[2][]span // by instance (nil: none), a side's faults as it met them (see faultsOf)
}

func (a *analysis) violation(format string, args ...any) {
	a.violations = append(a.violations, fmt.Sprintf(format, args...))
	a.report.Violations++
}

// check analyses the history of the seed.
func (r *run) check() seedResult {
	a := &analysis{r: r, byIndex: map[int64]*op{}, stored: map[int64]bool{}, mayStore: map[int64]bool{}, keys: map[string]*keyHistory{}, cand: map[int64]map[valueID]bool{}}
	a.ops = append(a.ops, r.ops...)
	sort.Slice(a.ops, func(i, j int) bool { return a.ops[i].index < a.ops[j].index })
	a.sizes = make([]int64, len(a.ops)+2)
	for i := range a.sizes {
		a.sizes[i] = -1
	}
	for _, o := range a.ops {
		a.byIndex[o.index] = o
		if (o.kind == opPut || o.kind == opPutIfAbsent) && int(o.index) < len(a.sizes) {
			a.sizes[o.index] = o.size
		}
	}
	for _, k := range r.keys {
		a.keys[k] = &keyHistory{key: k, info: r.keyInfo[k]}
	}
	a.cutOffByCrashes()
	commits := r.log.snapshot()
	for _, c := range commits {
		switch {
		case c.uncertain:
			if c.op != 0 {
				a.mayStore[c.op] = true
			}
			continue
		case c.op != 0:
			a.stored[c.op] = true
		}
		if c.reconciler {
			a.report.RepairsByReconciler++
		}
	}
	a.report.Seeds = 1
	a.report.ReconcilePasses = int(r.drains.Load())
	a.report.Settle = r.settled
	a.report.SettleMax = r.settled
	a.report.FaultWindows = map[string]int{}
	for k, n := range r.sched.windows {
		a.report.FaultWindows[k] = n
	}
	a.report.BothSidesDown = r.sched.overlaps
	for _, in := range r.in {
		if in == nil {
			continue
		}
		for _, op := range failovertest.AllOps {
			a.report.CallsFaulted += in.Fired(op)
		}
	}
	if r.o.Sides != nil {
		a.report.OverTheWire = true
		a.report.CallsFaulted += r.failed.Load()
	}

	a.report.Writers = len(r.writers)
	a.report.Restarts = int(r.restarts.Load())
	a.report.Crashes = int(r.crashes.Load())

	a.collect()
	a.checkStored()
	a.candidates()
	a.index()
	for _, h := range a.keys {
		for _, s := range h.seen {
			a.explain(h, s)
		}
	}
	a.checkMonotonic()
	a.checkRepeatedDeletes()
	a.checkRefused()
	a.checkAnswers()
	a.checkReconciler(commits)
	a.checkConvergence()
	a.checkLinearizable()
	if len(a.violations) > 0 {
		a.report.FailedSeeds = []int64{r.seed}
	}
	return seedResult{report: a.report, violations: a.violations, unknown: a.unknown, story: a.story()}
}

// collect turns operations into mutations and sightings, and counts them.
func (a *analysis) collect() {
	rep := &a.report
	rep.OpsByKind = map[string]int{}
	for _, o := range a.ops {
		for _, f := range o.faults {
			a.violation("%s: %s", o, f)
		}
		if o.stuck {
			a.violation("%s: did not return within %v (%s): a call to a side was not bounded by a timeout", o, a.r.pace.stuckAfter, a.r.pace.clock)
		}
		if o.crashed {
			rep.OpsCutByCrash++
		}
		if o.final {
			rep.FinalReads++
		} else {
			rep.Ops++
			rep.OpsByKind[o.kind.String()]++
		}
		h := a.keys[o.key]
		mut := func(kind mutKind) {
			m := &mutation{op: o, kind: kind, acked: o.out == outOK, call: o.call, ret: o.ret}
			if !m.acked {
				m.ret = math.MaxInt64
			}
			h.muts = append(h.muts, m)
		}
		switch o.kind {
		case opPut, opPutIfAbsent:
			switch {
			case o.out == outOK:
				rep.WritesAcked++
				mut(mutPut)
			case a.stored[o.index] || a.mayStore[o.index]:
				rep.WritesAmbiguous++
				mut(mutPut)
			default:
				rep.WritesFailed++
			}
		case opDelete:
			switch o.out {
			case outOK:
				rep.DeletesAcked++
				mut(mutDelete)
			case outNotFound:
				rep.DeletesNotFound++
			default:
				rep.DeletesFailed++
				mut(mutDelete)
			}
		case opCopy:
			switch {
			case o.out == outOK:
				rep.CopiesAcked++
				mut(mutCopy)
			case o.out == outNotFound:
				rep.CopiesNotFound++
			case a.stored[o.index] || a.mayStore[o.index]:
				rep.CopiesAmbiguous++
				mut(mutCopy)
			default:
				rep.CopiesFailed++
			}
		case opGet, opAttributes, opList:
			switch o.out {
			case outOK:
				rep.ReadsOK++
			case outNotFound:
				rep.ReadsNotFound++
			case outUnavailable:
				rep.ReadsUnavailable++
			default:
				rep.ReadsFailed++
			}
		}
		for _, s := range o.seen {
			a.keys[s.key].seen = append(a.keys[s.key].seen, seenAt{s, o, a.strict(o, s.key)})
		}
	}
}

// checkStored checks that every acknowledged write or copy reached a side.
// The one exception is a write that a concurrent change replaced before it
// committed: the bucket may then order it just before that change and store
// nothing.
func (a *analysis) checkStored() {
	for _, h := range a.keys {
		for _, m := range h.muts {
			if !m.acked || m.kind == mutDelete || a.stored[m.op.index] {
				continue
			}
			concurrent := false
			for _, q := range h.muts {
				if q != m && q.call < m.op.ret && q.op.ret > m.op.call {
					concurrent = true
					break
				}
			}
			if !concurrent {
				a.report.LostWrites++
				a.violation("%s: acknowledged, but it never reached either side and no later change ran alongside it (a lost write)", m.op)
			}
		}
	}
}

// candidates works out, for every Copy, the values its source may have held
// while it ran: every value written to the source, directly or by another
// copy, by an operation that began before the copy returned. It is an
// over-approximation, so it never makes a correct history look wrong.
func (a *analysis) candidates() {
	var copies []*op
	for _, o := range a.ops {
		if o.kind == opCopy && o.out != outNotFound {
			copies = append(copies, o)
			a.cand[o.index] = map[valueID]bool{}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, c := range copies {
			set := a.cand[c.index]
			for _, m := range a.keys[c.src].muts {
				if m.call >= c.ret {
					continue
				}
				switch m.kind {
				case mutPut:
					if !set[valueID(m.op.index)] {
						set[valueID(m.op.index)] = true
						changed = true
					}
				case mutCopy:
					for v := range a.cand[m.op.index] {
						if !set[v] {
							set[v] = true
							changed = true
						}
					}
				}
			}
		}
	}
}

// index sorts each key's acknowledged mutations by call, for superseded.
func (a *analysis) index() {
	for _, h := range a.keys {
		for _, m := range h.muts {
			if m.acked {
				h.byCall = append(h.byCall, m)
			}
		}
		sort.Slice(h.byCall, func(i, j int) bool { return h.byCall[i].call < h.byCall[j].call })
		h.suffixMin = make([]int64, len(h.byCall)+1)
		h.suffixMin[len(h.byCall)] = math.MaxInt64
		for i := len(h.byCall) - 1; i >= 0; i-- {
			h.suffixMin[i] = min(h.byCall[i].ret, h.suffixMin[i+1])
		}
	}
}

// superseded reports whether an acknowledged mutation began after ret and
// returned before at: then whatever took effect by ret is replaced by at.
func (h *keyHistory) superseded(ret, at int64) bool {
	i := sort.Search(len(h.byCall), func(i int) bool { return h.byCall[i].call > ret })
	return h.suffixMin[i] < at
}

// latestBefore returns the acknowledged mutation that returned last before
// at, for failure messages.
func (h *keyHistory) latestBefore(at int64) *mutation {
	var last *mutation
	for _, m := range h.byCall {
		if m.ret < at && (last == nil || m.ret > last.ret) {
			last = m
		}
	}
	return last
}

// size returns the size of value v, or -1 if no Put wrote it.
func (a *analysis) size(v valueID) int64 {
	if v <= 0 || int(v) >= len(a.sizes) {
		return -1
	}
	return a.sizes[v]
}

// produces reports whether m may have left the key as s describes.
func (a *analysis) produces(m *mutation, s sighting) bool {
	values := func(yield func(valueID) bool) {
		switch m.kind {
		case mutPut:
			yield(valueID(m.op.index))
		case mutCopy:
			for v := range a.cand[m.op.index] {
				if !yield(v) {
					return
				}
			}
		}
	}
	if s.kind == seenAbsent {
		return m.kind == mutDelete
	}
	for v := range values {
		switch s.kind {
		case seenValue:
			if v == s.value {
				return true
			}
		case seenEmpty:
			if a.size(v) == 0 {
				return true
			}
		case seenExists:
			if s.size < 0 || a.size(v) == s.size {
				return true
			}
		}
	}
	return false
}

// explain checks that a sighting is explained by a mutation (or, for an
// absent key, the empty start) that began before the sighting ended and was
// not replaced by an acknowledged mutation before it began. A sighting that
// is not strict (another writer's read of a key every writer changes) need
// only show a value written to the key by an operation that began before it
// ended; a final read of such a key is explained in the order across
// writers (see after).
func (a *analysis) explain(h *keyHistory, s seenAt) {
	if s.kind == seenValue && a.size(s.value) >= 0 && s.size != a.size(s.value) {
		a.violation("%s: %s shows %s with %d bytes, but it was written with %d", s.op, h.key, s.sighting, s.size, a.size(s.value))
	}
	if !s.strict && !s.op.final {
		if s.kind != seenValue {
			return
		}
		for _, m := range h.muts {
			if m.call < s.op.ret && a.produces(m, s.sighting) {
				return
			}
		}
		a.violation("%s: %s shows value #%d, which no operation wrote there before the read ended", s.op, h.key, s.value)
		return
	}
	replaced := func(m *mutation) *mutation {
		if s.strict {
			if h.superseded(m.ret, s.op.call) {
				return h.latestBefore(s.op.call)
			}
			return nil
		}
		return a.replacedAcrossWriters(h, m, s.op)
	}
	if s.kind == seenAbsent && replaced(&mutation{}) == nil {
		return // nothing was surely there yet
	}
	anyProducer := false
	for _, m := range h.muts {
		if !a.produces(m, s.sighting) {
			continue
		}
		anyProducer = true
		if m.call < s.op.ret && replaced(m) == nil {
			return
		}
	}
	q := h.latestBefore(s.op.call)
	if !s.strict {
		q = a.replacedAcrossWriters(h, &mutation{}, s.op)
	}
	what := "nothing"
	if q != nil {
		what = q.op.String()
	}
	order := ""
	if !s.strict {
		order = fmt.Sprintf(" (in the order across writers: later by more than MaxClockSkew = %v)", a.r.o.MaxClockSkew)
	}
	switch {
	case s.kind == seenValue && !anyProducer:
		a.violation("%s: %s shows value #%d, which no operation wrote there", s.op, h.key, s.value)
	case s.kind == seenAbsent || (q != nil && q.kind != mutDelete):
		a.report.LostWrites++
		a.violation("%s: %s is %s, but the newest acknowledged change before it%s, %s, says otherwise (a lost write)", s.op, h.key, s.sighting, order, what)
	default:
		a.report.ResurrectedDeletes++
		a.violation("%s: %s shows %s after %s deleted it%s (a resurrected delete)", s.op, h.key, s.sighting, what, order)
	}
}

// after reports whether mutation n comes after mutation m in the order the
// failover bucket promises: n began after m returned, and if the two are
// by different writers, more than MaxClockSkew after (in the time of the
// run, which the writers' clocks are skewed from). A mutation that has not
// returned (it failed, and may take effect at any time) precedes nothing.
func (a *analysis) after(n, m *mutation) bool {
	if m.op == nil {
		return true // the empty start precedes everything
	}
	if !m.acked {
		return false
	}
	if len(a.r.writers) == 1 || n.op.writer == m.op.writer {
		return n.call > m.ret
	}
	return n.op.start.After(m.op.end.Add(a.r.o.MaxClockSkew))
}

// replacedAcrossWriters returns an acknowledged mutation of h that comes
// after m (see after) and returned before s began, the newest such, or nil.
func (a *analysis) replacedAcrossWriters(h *keyHistory, m *mutation, s *op) *mutation {
	var newest *mutation
	for _, n := range h.byCall {
		if n != m && n.ret < s.call && n.op.end.Before(s.start) && a.after(n, m) && (newest == nil || n.ret > newest.ret) {
			newest = n
		}
	}
	return newest
}

// checkReconciler checks every change the reconciler made to a side: it may
// replace a value only with one that is not older, and delete a value only
// for a delete that is not older. One change is older than another if its
// operation returned before the other began; since a copied value may come
// from any of several operations, a change counts as older only if every
// operation that may have made it is older than every one that may have made
// the value replaced. On the secondary in Redirect mode, deletes remove
// temporary copies and are checked by convergence instead. Over the wire,
// changes whose call failed, and those over a state the log cannot know,
// are left to the reads and convergence.
func (a *analysis) checkReconciler(commits []commit) {
	for _, c := range commits {
		h := a.keys[c.key]
		if !c.reconciler || h == nil || c.prev == c.value || c.uncertain || c.prev == valueUnknown || c.value == valueUnknown {
			continue
		}
		if c.prev == 0 {
			// A value written where a delete had left nothing: the delete
			// must not be newer.
			d := a.byIndex[c.prevOp]
			if c.value == 0 || d == nil || d.kind != opDelete {
				continue
			}
			if written := a.producers(h, c.value); len(written) > 0 && a.allBefore(written, []*mutation{{op: d}}) {
				a.report.StaleOverwrites++
				a.report.ResurrectedDeletes++
				a.violation("the reconciler wrote value #%d to %s on the %s after %s had deleted it there, though %s returned before the delete began (a stale overwrite resurrecting a delete)",
					c.value, c.key, c.side, d, written[0].op)
			}
			continue
		}
		replaced := a.producers(h, c.prev)
		if len(replaced) == 0 {
			continue // a value that is foreign to the key is reported by the reads
		}
		if c.value != 0 {
			written := a.producers(h, c.value)
			switch {
			case len(written) == 0:
				a.violation("the reconciler wrote value #%d to %s on the %s, which no operation wrote there", c.value, c.key, c.side)
			case a.allBefore(written, replaced):
				a.report.StaleOverwrites++
				a.violation("the reconciler replaced value #%d of %s on the %s with value #%d, written by %s, which returned before %s began (a stale overwrite)",
					c.prev, c.key, c.side, c.value, written[0].op, replaced[0].op)
			}
			continue
		}
		if c.side == journal.Secondary && !a.r.mirror {
			continue
		}
		var deletes []*mutation
		for _, m := range h.muts {
			if m.kind == mutDelete {
				deletes = append(deletes, m)
			}
		}
		if a.allBefore(deletes, replaced) {
			a.report.StaleOverwrites++
			a.violation("the reconciler deleted value #%d of %s on the %s, but every delete of the key returned before %s began (a stale overwrite)", c.prev, c.key, c.side, replaced[0].op)
		}
	}
}

// allBefore reports whether every mutation of newer comes after every
// mutation of older, in the order of after.
func (a *analysis) allBefore(older, newer []*mutation) bool {
	for _, o := range older {
		for _, n := range newer {
			if !a.after(n, &mutation{op: o.op, acked: true, call: o.op.call, ret: o.op.ret}) {
				return false
			}
		}
	}
	return true
}

// producers returns the mutations of h that may have written value v.
func (a *analysis) producers(h *keyHistory, v valueID) []*mutation {
	var ps []*mutation
	for _, m := range h.muts {
		if m.kind != mutDelete && a.produces(m, sighting{kind: seenValue, value: v}) {
			ps = append(ps, m)
		}
	}
	return ps
}

// checkConvergence compares what the sides hold at the end with the final
// reads through the bucket: the primary must hold exactly what the bucket
// serves; in Mirror mode so must the secondary, and in Redirect mode the
// secondary must hold nothing.
func (a *analysis) checkConvergence() {
	final := map[string]sighting{}
	for _, o := range a.ops {
		if o.final && o.kind == opAttributes && (o.out == outOK || o.out == outNotFound) && len(o.seen) == 1 {
			final[o.key] = o.seen[0]
		}
	}
	sides := [2]map[string]rawObject{a.r.rawPrimary, a.r.rawSecondary}
	for _, k := range a.r.keys {
		f, ok := final[k]
		if !ok {
			continue // the final read failed, which is reported already
		}
		for i, side := range sides {
			obj, held := side[k]
			if held && obj.err != nil {
				a.violation("the %s holds bytes under %s that are not a value: %v", journal.Side(i), k, obj.err)
				continue
			}
			if held && obj.size > 0 && obj.content != obj.metadata {
				a.violation("the %s holds under %s the bytes of value #%d with the metadata of value #%d", journal.Side(i), k, obj.content, obj.metadata)
			}
			switch {
			case i == 1 && !a.r.mirror:
				if held {
					a.violation("after reconcile, a temporary copy of %s (value #%d) is left on the secondary", k, obj.metadata)
				}
			case f.kind == seenAbsent && held:
				a.violation("after reconcile, the bucket reads %s as absent but the %s holds value #%d", k, journal.Side(i), obj.metadata)
			case f.kind == seenValue && !held:
				a.violation("after reconcile, the bucket reads %s as value #%d but the %s does not hold it", k, f.value, journal.Side(i))
			case f.kind == seenValue && obj.metadata != f.value:
				a.violation("after reconcile, the bucket reads %s as value #%d but the %s holds value #%d", k, f.value, journal.Side(i), obj.metadata)
			}
		}
	}
}
