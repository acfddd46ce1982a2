package failoverblob

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failoverblob/failoverblob/journal"
)

// Hedged reads (Options.HedgeAfter): a read whose first side has produced
// nothing after HedgeAfter is made on the other side as well, when that side
// holds the same version of the key, and the first complete answer is
// taken. The other call is cancelled; its breaker does not count it.

// sideRead is a read of a key made on one side at a time, or, hedged, on
// both at once.
type sideRead struct {
	// op is the read's kind, as telemetry names it.
	op sideOp
	// call makes the read on s for a caller whose context is ctx and
	// returns its answer.
	call func(ctx context.Context, s *side) (any, error)
	// hedged says the read may be made on both sides at once; release then
	// releases an answer that was not taken (closes a reader), or is nil
	// if answers need no release. A download into the caller's writer
	// cannot be hedged.
	hedged  bool
	release func(any)
	// got, if set, receives the answer taken.
	got *answer
}

// answer is the answer a read took, from side s. stop, if set, ends the
// context the answer was made under, once the caller is done with it (a
// reader's Close).
type answer struct {
	v    any
	s    *side
	stop context.CancelFunc
}

// on makes the read on s, in the caller's goroutine.
func (op sideRead) on(ctx context.Context, s *side) error {
	v, err := op.call(ctx, s)
	if err == nil && op.got != nil {
		*op.got = answer{v: v, s: s}
	}
	return err
}

// hedgeBudget bounds the hedges in flight to a fraction of the reads in
// flight (Options.HedgeBudget), or to a floor when that is more
// (Options.HedgeFloor), so that a slow side does not double the load on
// the other; and counts hedges for Status.
type hedgeBudget struct {
	fraction float64
	floor    int64

	reads   atomic.Int64 // reads in flight, while hedging is on
	hedging atomic.Int64 // hedges in flight

	hedged, won, refused atomic.Uint64
}

// admit takes a place for a hedge, if the budget has one.
func (b *hedgeBudget) admit() bool {
	for {
		n := b.hedging.Load()
		if n >= max(b.floor, int64(b.fraction*float64(b.reads.Load()))) {
			return false
		}
		if b.hedging.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// HedgeStatus counts hedged reads (Options.HedgeAfter).
type HedgeStatus struct {
	// After is Options.HedgeAfter; zero when reads are not hedged.
	After time.Duration `json:"after"`
	// Hedged counts the reads made on the second side because the first
	// had not answered after After; Won, those whose answer was taken
	// (it came first, or the first side failed);
	// Refused, those the budget (Options.HedgeBudget, HedgeFloor) did not
	// let through.
	Hedged  uint64 `json:"hedged"`
	Won     uint64 `json:"won"`
	Refused uint64 `json:"refused"`
}

func (b *hedgeBudget) status(after time.Duration) HedgeStatus {
	return HedgeStatus{After: after, Hedged: b.hedged.Load(), Won: b.won.Load(), Refused: b.refused.Load()}
}

// race is one read's hedging: the read on first (the primary), and the
// hedge on alt (the secondary) if it had to be made. A read that cannot be
// hedged has no alt, and its calls go straight to the sides.
type race struct {
	f          *Failover
	ctx        context.Context
	op         sideRead
	first, alt *side
	counted    bool // among the reads in flight
	ran        bool
	hedge      *attempt // the call on alt, until its answer is taken or released
}

// hedge returns the hedging of a read whose first side is the primary.
// both says the secondary holds the version the primary would serve.
// Callers defer its release.
func (f *Failover) hedge(ctx context.Context, op sideRead, both bool) race {
	h := race{f: f, ctx: ctx, op: op}
	if f.opts.HedgeAfter <= 0 {
		return h
	}
	f.hedges.reads.Add(1)
	h.counted = true
	if both && op.hedged {
		h.first, h.alt = f.sides[journal.Primary], f.sides[journal.Secondary]
	}
	return h
}

// on makes the read on s, for a caller whose context is ctx (the read's,
// or marked as a failover): the race, for the first side; the hedge's
// answer, for the side a hedge went to (it is the fallback the caller
// would otherwise call); otherwise a call of its own.
func (h *race) on(ctx context.Context, s *side) error {
	switch {
	case h.alt == nil:
		return h.op.on(ctx, s)
	case s == h.first && !h.ran:
		h.ran = true
		return h.run()
	case s == h.alt && h.hedge != nil:
		a := h.hedge
		h.hedge = nil
		err := a.take(h.op)
		if err == nil {
			h.f.hedges.won.Add(1)
		}
		return err
	}
	return h.op.on(ctx, s)
}

// run makes the read on the first side and, if that has produced nothing
// after HedgeAfter, alt's breaker is not open and the budget allows, on
// alt too. The first side's
// answer (success, or an answer such as NotFound) is taken if it comes
// first; alt's only if it is a success, since a miss or an error there
// says less than the first side would. If the first side fails with an
// outage, run returns its error and the hedge stays, for on(alt).
func (h *race) run() error {
	a := startAttempt(h.ctx, h.op, h.first, nil)
	t := time.NewTimer(h.f.opts.HedgeAfter)
	defer t.Stop()
	select {
	case <-a.done:
		return a.take(h.op)
	case <-t.C:
	}
	if h.alt.refusing() {
		// Its breaker would refuse the hedge: no call to make.
		return a.take(h.op)
	}
	if !h.f.hedges.admit() {
		h.f.hedges.refused.Add(1)
		<-a.done
		return a.take(h.op)
	}
	h.f.hedges.hedged.Add(1)
	budget := &h.f.hedges
	b := startAttempt(h.ctx, h.op, h.alt, func() { budget.hedging.Add(-1) })
	h.hedge = b
	bDone := b.done
	for {
		select {
		case <-a.done:
			if a.err == nil || !h.first.outage(h.ctx, a.err) {
				h.releaseHedge()
			}
			return a.take(h.op)
		case <-bDone:
			if b.err == nil {
				h.f.hedges.won.Add(1)
				a.lose(h.op)
				h.hedge = nil
				return b.take(h.op)
			}
			bDone = nil // wait for the first side's answer
		}
	}
}

// release ends the read's part in the race: a hedge whose answer was not
// taken is cancelled and released.
func (h *race) release() {
	h.releaseHedge()
	if h.counted {
		h.counted = false
		h.f.hedges.reads.Add(-1)
	}
}

func (h *race) releaseHedge() {
	if h.hedge != nil {
		h.hedge.lose(h.op)
		h.hedge = nil
	}
}

// attempt is a read made on one side in a goroutine of its own, under a
// context of its own, so that it can be cancelled if it loses.
type attempt struct {
	s      *side
	cancel context.CancelFunc
	done   chan struct{} // closed once err (and v) are set

	mu       sync.Mutex
	v        any
	err      error
	finished bool // v and err are set
	lost     bool
}

// startAttempt makes op's read on s. ended, if set, is called once the call
// has returned.
func startAttempt(ctx context.Context, op sideRead, s *side, ended func()) *attempt {
	ctx, cancel := context.WithCancel(ctx)
	a := &attempt{s: s, cancel: cancel, done: make(chan struct{})}
	go func() {
		v, err := op.call(ctx, s)
		a.mu.Lock()
		a.v, a.err, a.finished = v, err, true
		lost := a.lost
		a.mu.Unlock()
		if lost {
			a.dispose(op)
		}
		close(a.done)
		if ended != nil {
			ended()
		}
	}()
	return a
}

// take waits for the attempt's answer and takes it: the caller's from
// then on, with the end of its context.
func (a *attempt) take(op sideRead) error {
	<-a.done
	if a.err != nil {
		a.cancel()
		return a.err
	}
	if op.got != nil {
		*op.got = answer{v: a.v, s: a.s, stop: a.cancel}
	} else {
		a.cancel()
	}
	return nil
}

// lose cancels the attempt and releases its answer, now or when it comes.
// The side's breaker does not count a call whose context was cancelled.
func (a *attempt) lose(op sideRead) {
	a.cancel()
	a.mu.Lock()
	a.lost = true
	finished := a.finished
	a.mu.Unlock()
	if finished {
		a.dispose(op)
	} // else the attempt's goroutine disposes of it
}

// dispose releases the answer of an attempt that lost.
func (a *attempt) dispose(op sideRead) {
	if a.err == nil && op.release != nil {
		op.release(a.v)
	}
}
