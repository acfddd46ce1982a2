// Package failovertest helps tests rehearse outages without a cloud.
//
// Wrap puts a fault injector in front of any *blob.Bucket, typically an
// in-memory one from gocloud.dev/blob/memblob, and returns an ordinary
// *blob.Bucket together with the Injector that controls it. The test then
// makes that bucket refuse connections, hang, slow down, fail part-way
// through a stream, or apply a write and still report an error:
//
//	primary, in := failovertest.Wrap(memblob.OpenBucket(nil), nil)
//	in.Outage(nil)   // every call now fails with ErrOutage
//	...
//	in.Heal()        // and works again
//
// A failed call never reaches the wrapped bucket, unless its Fault says
// Applied, and a failed write is never committed there; so the wrapped bucket
// is the ground truth a test checks its expectations against.
//
// The package needs nothing beyond gocloud. Package failovertest/chaos
// builds a seeded chaos check of a whole failover configuration on it.
package failovertest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"
)

// Op names a kind of bucket call that faults are set for.
type Op int

const (
	OpAttributes Op = iota // Attributes
	OpList                 // ListPaged
	OpRead                 // NewRangeReader and the reads from the returned reader
	OpWrite                // NewTypedWriter, Write and Close
	OpCopy                 // Copy
	OpDelete               // Delete
	OpSignedURL            // SignedURL
	numOps
)

// AllOps lists every Op.
var AllOps = []Op{OpAttributes, OpList, OpRead, OpWrite, OpCopy, OpDelete, OpSignedURL}

var opNames = [numOps]string{"Attributes", "List", "Read", "Write", "Copy", "Delete", "SignedURL"}

func (o Op) String() string {
	if o < 0 || o >= numOps {
		return fmt.Sprintf("Op(%d)", int(o))
	}
	return opNames[o]
}

// ErrOutage is the error injected when a Fault has no Err. It unwraps to
// syscall.ECONNREFUSED so outage classifiers see a refused connection, and its
// code (gcerrors.Code of the error returned through the bucket) is
// gcerrors.Unknown, as gocloud's drivers report a refused connection.
var ErrOutage error = fmt.Errorf("failovertest: injected outage: %w", syscall.ECONNREFUSED)

// Fault describes how the calls for one Op fail. The zero Fault fails every
// call with ErrOutage.
type Fault struct {
	// Err is the error a call returns when the fault fires. If nil, it is
	// ErrOutage, unless Latency is the only field set that shapes the failure
	// (Err, Hang, AfterBytes and Applied all zero): such a fault slows the
	// call down and does not fail it. An outage classifier (circuit's
	// DefaultClassifier) counts Err as an outage only if it shows one: wrap
	// ErrOutage or a transport errno such as syscall.ECONNRESET, or carry an
	// HTTP status of 5xx. A plain error stands for the side refusing the
	// request, an answer.
	Err error

	// Latency delays the call by this much before it proceeds or fails. The
	// delay waits on a timer, so it follows virtual time under
	// testing/synctest; if the call's context is done first, the call
	// returns ctx.Err() without reaching the wrapped bucket.
	Latency time.Duration

	// Hang makes the call block until its context is done and then return
	// ctx.Err(), as a request to an unresponsive server does. It waits on
	// the context alone, so synctest sees the goroutine as durably blocked.
	Hang bool

	// AfterBytes, for OpRead and OpWrite, makes the call that opens the
	// stream succeed and the stream itself fail once AfterBytes bytes have
	// passed, with Err (or by hanging, if Hang is set). A Read that would go
	// past that point returns the bytes up to it, and the next Read fails; a
	// Write that would go past it writes the bytes up to it and returns their
	// count with the failure. A writer that fails this way is aborted: its
	// Close reports the failure again, the object is not committed, and any
	// previous object remains. A stream that ends before reaching AfterBytes
	// is not failed. Zero or negative means the failure is not part-way.
	// Other ops ignore AfterBytes: their calls fail when made.
	AfterBytes int64

	// Applied, for OpWrite, OpCopy and OpDelete, applies the operation to
	// the wrapped bucket first and then reports the failure: the ambiguous
	// outcome of a request that reached the server but whose answer was
	// lost. For OpWrite the object is committed when Close reports the
	// error. If the wrapped bucket itself fails the operation, that error is
	// returned instead. With Hang, the call blocks after applying. Other ops,
	// and OpWrite with AfterBytes set, ignore Applied.
	Applied bool

	// Probability is the chance that the fault fires on each call, drawn
	// from the Injector's seeded source. Zero, negative or one or more means
	// it always fires.
	Probability float64

	// Times is how many times the fault fires before it clears itself. Zero
	// or negative means no limit.
	Times int
}

// Options configures an Injector. The zero value is ready to use.
type Options struct {
	// Seed seeds the source that Fault.Probability is drawn from: the same
	// seed and the same sequence of calls give the same faults. Zero is a
	// seed like any other.
	Seed int64
}

// window is an outage switched on for every op at once.
type window int

const (
	windowNone window = iota
	windowOutage
	windowHang
)

// armed is a fault set for one op, with the firings it has left.
type armed struct {
	f    Fault
	left int // firings left when f.Times > 0
}

// Injector controls the faults of one wrapped bucket. Changes take effect on
// the next call. It is safe for concurrent use.
//
// Faults set for an op with Set are decided when a call is made; for a
// stream, when it is opened. An Outage or Hang also reaches streams that are
// already open: their next Read, Write or Close fails or hangs, the way an
// outage cuts a transfer in flight. A hanging call waits for its context
// only; Heal does not release it.
type Injector struct {
	mu        sync.Mutex
	rng       *rand.Rand
	faults    [numOps]*armed
	window    window
	windowErr error
	refuse    func(key string) error
	calls     [numOps]int64
	fired     [numOps]int64
	refused   [numOps]int64
}

func newInjector(opts *Options) *Injector {
	var seed int64
	if opts != nil {
		seed = opts.Seed
	}
	return &Injector{rng: rand.New(rand.NewPCG(uint64(seed), uint64(seed)))}
}

// Set replaces the fault for op. It panics if op is not one of AllOps.
func (in *Injector) Set(op Op, f Fault) {
	if op < 0 || op >= numOps {
		panic(fmt.Sprintf("failovertest: Set of unknown %v", op))
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults[op] = &armed{f: f, left: f.Times}
}

// Clear removes the fault for op, if any. An Outage or Hang stays on.
func (in *Injector) Clear(op Op) {
	if op < 0 || op >= numOps {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults[op] = nil
}

// Outage makes every call fail with err (ErrOutage if nil) until Heal, like a
// bucket that cannot be reached. While it is on, the faults set with Set are
// not consulted. It replaces a Hang.
func (in *Injector) Outage(err error) {
	if err == nil {
		err = ErrOutage
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.window, in.windowErr = windowOutage, err
}

// Hang makes every call block until its context is done, then return
// ctx.Err(), until Heal, like a bucket that accepts connections and never
// answers. While it is on, the faults set with Set are not consulted. It
// replaces an Outage.
func (in *Injector) Hang() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.window, in.windowErr = windowHang, nil
}

// Refuse makes the wrapped bucket refuse every call about a key for which
// rule returns an error: the call fails with that error at once, before any
// other fault is consulted, and never reaches the wrapped bucket. That is
// how a driver refuses a key it cannot store, before it does any I/O:
// fileblob refuses keys ending in ".attrs", keys too long for a file name
// and keys that escape its directory, with errors that carry no gcerrors
// code. A Copy is refused if either of its keys is; listings and signed URLs
// are not refused. A nil rule refuses nothing. Heal leaves the rule in
// place; Refused counts the calls it refused.
func (in *Injector) Refuse(rule func(key string) error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.refuse = rule
}

// Heal clears every fault and any Outage or Hang. The counts of Calls,
// Fired and Refused are kept, and so is the rule set with Refuse.
func (in *Injector) Heal() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults = [numOps]*armed{}
	in.window, in.windowErr = windowNone, nil
}

// Calls reports how many calls were made for op, failed ones included. A
// stream counts once, when it is opened.
//
// Without a ContentType, the portable blob.Writer opens its stream lazily,
// after sniffing the content type, and if that open fails in a Write it opens
// again in Close. So a failed blob.Bucket.WriteAll of 512 bytes or more
// counts two calls; and if the second is not failed (a Fault with Times: 1),
// the portable layer commits an empty object although WriteAll reported the
// error. Set WriterOptions.ContentType to open the stream in NewWriter.
func (in *Injector) Calls(op Op) int64 {
	if op < 0 || op >= numOps {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.calls[op]
}

// Fired reports how many times a fault fired for op: the calls it failed,
// slowed or armed with a part-way failure, and the open streams an Outage or
// Hang cut.
func (in *Injector) Fired(op Op) int64 {
	if op < 0 || op >= numOps {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.fired[op]
}

// Refused reports how many calls for op the rule set with Refuse refused.
// They count in Calls too.
func (in *Injector) Refused(op Op) int64 {
	if op < 0 || op >= numOps {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.refused[op]
}

// refusal counts a call for op about keys that the rule set with Refuse
// refuses, and returns the rule's error; it returns nil, counting nothing,
// for a call the rule lets through.
func (in *Injector) refusal(op Op, keys ...string) error {
	in.mu.Lock()
	rule := in.refuse
	in.mu.Unlock()
	if rule == nil {
		return nil
	}
	for _, k := range keys {
		if err := rule(k); err != nil {
			in.mu.Lock()
			in.calls[op]++
			in.refused[op]++
			in.mu.Unlock()
			return err
		}
	}
	return nil
}

// call counts a call for op and decides its effect.
func (in *Injector) call(op Op) effect {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.calls[op]++
	if e, ok := in.windowEffect(op); ok {
		return e
	}
	a := in.faults[op]
	if a == nil {
		return effect{}
	}
	if p := a.f.Probability; p > 0 && p < 1 && in.rng.Float64() >= p {
		return effect{}
	}
	in.fired[op]++
	if a.f.Times > 0 {
		a.left--
		if a.left == 0 {
			in.faults[op] = nil
		}
	}
	return a.f.effect(op)
}

// stream decides the effect of an Outage or Hang on the next call of a
// stream for op that is already open.
func (in *Injector) stream(op Op) effect {
	in.mu.Lock()
	defer in.mu.Unlock()
	e, _ := in.windowEffect(op)
	return e
}

func (in *Injector) windowEffect(op Op) (effect, bool) {
	switch in.window {
	case windowOutage:
		in.fired[op]++
		return effect{fails: true, err: in.windowErr}, true
	case windowHang:
		in.fired[op]++
		return effect{fails: true, hang: true}, true
	}
	return effect{}, false
}

// effect is what the Injector decided for one call.
type effect struct {
	latency    time.Duration
	fails      bool  // false: the call proceeds, after latency
	err        error // the error reported when it fails, unless hang
	hang       bool
	afterBytes int64 // > 0: the stream fails after this many bytes
	applied    bool  // the operation is applied before the failure is reported
}

func (f Fault) effect(op Op) effect {
	e := effect{
		latency: f.Latency,
		fails:   f.Err != nil || f.Hang || f.AfterBytes > 0 || f.Applied || f.Latency <= 0,
		err:     f.Err,
		hang:    f.Hang,
	}
	if e.err == nil {
		e.err = ErrOutage
	}
	if f.AfterBytes > 0 && (op == OpRead || op == OpWrite) {
		e.afterBytes = f.AfterBytes
	}
	if f.Applied && e.afterBytes == 0 && (op == OpWrite || op == OpCopy || op == OpDelete) {
		e.applied = true
	}
	return e
}

// failsNow reports whether the call fails without reaching the wrapped bucket.
func (e effect) failsNow() bool {
	return e.fails && e.afterBytes == 0 && !e.applied
}
