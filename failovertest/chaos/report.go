package chaos

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is what Check did and found, summed over its seeds.
// Times are virtual (testing/synctest), or real for a run over the wire.
type Report struct {
	Seeds       int     // seeds run
	FailedSeeds []int64 // seeds that found a violation or could not run
	// OverTheWire says the seeds ran over Options.Sides, in real time.
	OverTheWire bool

	// Writers is the number of writers (failover buckets at once) per
	// seed; Restarts and Crashes count the clean restarts and the crashes
	// of their instances, and OpsCutByCrash the operations a crash cut off
	// (taken as failed, whatever they returned).
	Writers                          int
	Restarts, Crashes, OpsCutByCrash int

	Ops        int            // client operations, final reads excluded
	OpsByKind  map[string]int // client operations by kind (Put, Get, ...)
	FinalReads int            // reads of the final state, after convergence

	// FaultWindows counts the fault windows of the schedule by kind, over
	// both sides; "both-sides-down" windows take both sides down at once.
	FaultWindows map[string]int
	// BothSidesDown counts windows in which both sides were unreachable at
	// once, planned or by overlap.
	BothSidesDown int
	// CallsFaulted counts the calls to a side that a fault failed, slowed
	// or cut (Injector.Fired, summed); over the wire, the calls to a side
	// that failed (NotFound and FailedPrecondition answers aside).
	CallsFaulted int64

	// Writes are Puts (IfNotExist ones included): acknowledged; failed and
	// never stored on a side; or failed after the value reached a side
	// (ambiguous: they may or may not appear). Over the wire, a write is
	// ambiguous if a call that sent it to a side failed.
	WritesAcked, WritesFailed, WritesAmbiguous int
	// Deletes: acknowledged; answered NotFound; failed (may have taken
	// effect).
	DeletesAcked, DeletesNotFound, DeletesFailed int
	// Copies, sorted like writes, and those whose source was not found.
	CopiesAcked, CopiesFailed, CopiesAmbiguous, CopiesNotFound int
	// Reads are Gets, Attributes and Lists, by outcome.
	ReadsOK, ReadsNotFound, ReadsUnavailable, ReadsFailed int

	// RepeatedDeletes counts second deletes of a key in a row by one
	// client; RefusedKeyOps the operations on keys the sides refuse.
	RepeatedDeletes, RefusedKeyOps int

	ReconcilePasses     int // reconcile passes made while the faults went on
	RepairsByReconciler int // changes the reconciler made to a side

	// The promise. Each of these is a violation and fails the seed.
	LostWrites         int // acknowledged writes unreadable (or hidden by older values) though nothing replaced them
	ResurrectedDeletes int // values read again after an acknowledged delete
	StaleOverwrites    int // reconciler changes that replaced a newer object with an older one
	// NonMonotonicReads are reads that showed a client an older state than
	// it had seen; RepeatedDeletesAcked second deletes acknowledged with
	// nothing to delete; RefusedAcked operations on refused keys that
	// succeeded; UnavailableWhenQuiet operations answered unavailable with
	// the sides free of faults (see Options.RecoverWithin).
	NonMonotonicReads, RepeatedDeletesAcked, RefusedAcked, UnavailableWhenQuiet int
	Violations                                                                  int // every violation, those above included

	// Linearizability verdicts of the per-key histories (porcupine). Unknown
	// means the check ran out of time, or was not run because the seed had
	// failed already; it does not fail the seed.
	KeysLinearizable, KeysNotLinearizable, KeysUnknown int
	// LinearizabilityTime is the real time the linearizability checks took.
	LinearizabilityTime time.Duration

	// Settle is the total, and SettleMax the longest, time from the last
	// fault healing (over the wire, and the requests held on the network
	// landing) to nothing pending.
	Settle, SettleMax time.Duration
}

func (r *Report) add(o Report) {
	addMap := func(dst *map[string]int, src map[string]int) {
		if *dst == nil {
			*dst = map[string]int{}
		}
		for k, v := range src {
			(*dst)[k] += v
		}
	}
	r.Seeds += o.Seeds
	r.Writers = max(r.Writers, o.Writers)
	r.Restarts += o.Restarts
	r.Crashes += o.Crashes
	r.OpsCutByCrash += o.OpsCutByCrash
	r.RepeatedDeletes += o.RepeatedDeletes
	r.RefusedKeyOps += o.RefusedKeyOps
	r.NonMonotonicReads += o.NonMonotonicReads
	r.RepeatedDeletesAcked += o.RepeatedDeletesAcked
	r.RefusedAcked += o.RefusedAcked
	r.UnavailableWhenQuiet += o.UnavailableWhenQuiet
	r.FailedSeeds = append(r.FailedSeeds, o.FailedSeeds...)
	r.OverTheWire = r.OverTheWire || o.OverTheWire
	r.Ops += o.Ops
	addMap(&r.OpsByKind, o.OpsByKind)
	r.FinalReads += o.FinalReads
	addMap(&r.FaultWindows, o.FaultWindows)
	r.BothSidesDown += o.BothSidesDown
	r.CallsFaulted += o.CallsFaulted
	r.WritesAcked += o.WritesAcked
	r.WritesFailed += o.WritesFailed
	r.WritesAmbiguous += o.WritesAmbiguous
	r.DeletesAcked += o.DeletesAcked
	r.DeletesNotFound += o.DeletesNotFound
	r.DeletesFailed += o.DeletesFailed
	r.CopiesAcked += o.CopiesAcked
	r.CopiesFailed += o.CopiesFailed
	r.CopiesAmbiguous += o.CopiesAmbiguous
	r.CopiesNotFound += o.CopiesNotFound
	r.ReadsOK += o.ReadsOK
	r.ReadsNotFound += o.ReadsNotFound
	r.ReadsUnavailable += o.ReadsUnavailable
	r.ReadsFailed += o.ReadsFailed
	r.ReconcilePasses += o.ReconcilePasses
	r.RepairsByReconciler += o.RepairsByReconciler
	r.LostWrites += o.LostWrites
	r.ResurrectedDeletes += o.ResurrectedDeletes
	r.StaleOverwrites += o.StaleOverwrites
	r.Violations += o.Violations
	r.KeysLinearizable += o.KeysLinearizable
	r.KeysNotLinearizable += o.KeysNotLinearizable
	r.KeysUnknown += o.KeysUnknown
	r.LinearizabilityTime += o.LinearizabilityTime
	r.Settle += o.Settle
	r.SettleMax = max(r.SettleMax, o.SettleMax)
}

// Add adds the figures of o to r, for callers that sum several
// Check runs (one per configuration, say).
func (r *Report) Add(o Report) { r.add(o) }

// String returns the figures as a few lines of text.
func (r Report) String() string {
	var b strings.Builder
	kv := func(m map[string]int) string {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
		return strings.Join(parts, ", ")
	}
	total := 0
	for _, n := range r.FaultWindows {
		total += n
	}
	fmt.Fprintf(&b, "seeds: %d (failed: %d)\n", r.Seeds, len(r.FailedSeeds))
	fmt.Fprintf(&b, "operations: %d (%s), plus %d final reads; %d repeated deletes, %d on refused keys\n", r.Ops, kv(r.OpsByKind), r.FinalReads, r.RepeatedDeletes, r.RefusedKeyOps)
	if r.Writers > 1 || r.Restarts+r.Crashes > 0 {
		fmt.Fprintf(&b, "writers per seed: %d; restarts: %d clean, %d crashes (%d operations cut off)\n", r.Writers, r.Restarts, r.Crashes, r.OpsCutByCrash)
	}
	faulted, clock, ambiguous := "calls faulted", "virtual", "failed but stored"
	if r.OverTheWire {
		faulted, clock, ambiguous = "calls to a side failed", "real", "failed, may be stored"
	}
	fmt.Fprintf(&b, "fault windows: %d (%s); both sides unreachable at once: %d; %s: %d\n", total, kv(r.FaultWindows), r.BothSidesDown, faulted, r.CallsFaulted)
	fmt.Fprintf(&b, "writes: %d acknowledged, %d failed, %d ambiguous (%s)\n", r.WritesAcked, r.WritesFailed, r.WritesAmbiguous, ambiguous)
	fmt.Fprintf(&b, "deletes: %d acknowledged, %d not found, %d failed; copies: %d acknowledged, %d source not found, %d failed, %d ambiguous\n", r.DeletesAcked, r.DeletesNotFound, r.DeletesFailed, r.CopiesAcked, r.CopiesNotFound, r.CopiesFailed, r.CopiesAmbiguous)
	fmt.Fprintf(&b, "reads: %d ok, %d not found, %d unavailable, %d other errors\n", r.ReadsOK, r.ReadsNotFound, r.ReadsUnavailable, r.ReadsFailed)
	fmt.Fprintf(&b, "reconcile passes during faults: %d; changes made by the reconciler: %d\n", r.ReconcilePasses, r.RepairsByReconciler)
	fmt.Fprintf(&b, "lost writes: %d; resurrected deletes: %d; stale overwrites: %d; reads gone back: %d; repeated deletes acknowledged: %d; refused keys acknowledged: %d; unavailable while quiet: %d; violations in all: %d\n",
		r.LostWrites, r.ResurrectedDeletes, r.StaleOverwrites, r.NonMonotonicReads, r.RepeatedDeletesAcked, r.RefusedAcked, r.UnavailableWhenQuiet, r.Violations)
	fmt.Fprintf(&b, "per-key histories: %d linearizable, %d not, %d unknown (timed out, or the seed failed already); checked in %v\n", r.KeysLinearizable, r.KeysNotLinearizable, r.KeysUnknown, r.LinearizabilityTime.Round(time.Millisecond))
	mean := time.Duration(0)
	if r.Seeds > 0 {
		mean = r.Settle / time.Duration(r.Seeds)
	}
	fmt.Fprintf(&b, "convergence after the last fault (%s): mean %v, max %v", clock, mean.Round(time.Millisecond), r.SettleMax.Round(time.Millisecond))
	return b.String()
}
