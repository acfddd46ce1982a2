package failovertest

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"
)

// Target is a failover bucket for CheckFailover to put through an outage
// rehearsal: the bucket, how to reconcile it, and what its mode promises
// about where objects end up.
type Target struct {
	// Bucket is the failover bucket. CheckFailover closes it when the seed
	// is done.
	Bucket *blob.Bucket

	// Reconcile makes one reconcile pass and reports how many repairs are
	// still pending afterwards. For a *failoverblob.Failover f:
	//
	//	func(ctx context.Context) (int, error) {
	//		r, err := f.Drain(ctx)
	//		return r.Remaining, err
	//	}
	Reconcile func(ctx context.Context) (pending int, err error)

	// Mirror says every object must end up on both sides (Mirror mode).
	// Otherwise (Redirect mode) every object must end up on the primary and
	// none on the secondary, which holds only temporary copies.
	Mirror bool
}

// CheckOptions configures CheckFailover. A nil *CheckOptions, and every zero
// field, mean the documented default: a short check that suits a unit test.
type CheckOptions struct {
	// Seeds lists the seeds to run, one subtest each, in parallel. A seed
	// decides the clients' operations, the fault schedule and the values
	// written. Nil means 1, 2 and 3.
	Seeds []int64
	// Ops is the number of operations per seed. Zero means 300.
	Ops int
	// Clients is the number of concurrent clients. Zero means 4.
	Clients int
	// Keys is the size of the key space the clients share, small so that
	// they collide. Zero means 8.
	Keys int
	// MaxSize is the largest object written. Most objects are under 16 KiB
	// (one write in 13 is empty); 16 KiB to 1 MiB is one write in 100, and
	// 1 MiB to MaxSize one in 1,000, since the bytes moved are most of what
	// a check costs. Zero means 1 MiB.
	MaxSize int64
	// PartialLists says the bucket may list only part of its objects while
	// a side is down (failoverblob's BestEffortList), so that a key missing
	// from a listing proves nothing.
	PartialLists bool
	// Unavailable reports whether an error means that the bucket could not
	// answer (for failoverblob: errors.Is(err, failoverblob.ErrUnavailable)).
	// It only sorts errors for the report. Nil means a gcerrors code of
	// Unknown.
	Unavailable func(error) bool
	// Replay returns what to run to replay one seed; failure messages show
	// it. Nil means a description of the CheckOptions to use.
	Replay func(seed int64) string
	// LinearizabilityTimeout bounds the linearizability check of each key's
	// history (in real time); a check that runs out is reported as unknown,
	// not as a failure. Zero means 30 seconds.
	LinearizabilityTimeout time.Duration

	// Sides, if not nil, runs the check over the wire, in real time: the
	// sides are the two buckets Sides returns, and the faults are switched
	// on their network paths through faults, rather than injected in front
	// of in-memory buckets in virtual time. Sides is called once per seed,
	// with the seed's subtest, and must return buckets and fault switches
	// of that seed's own (fresh emulators behind their own fault proxies,
	// say), since seeds run in parallel and every seed switches faults on
	// its own schedule; t's Cleanup is the place to stop them. The check
	// writes only under a prefix of its own for each seed, closes both
	// buckets when the seed is done, and reads them directly at the end to
	// check convergence, once every fault has healed.
	//
	// A call that fails over the wire may still have taken effect, at its
	// side or later (a request held up on the network can land after its
	// caller gave up), so the check takes every failed change to a side as
	// one that may land at any time; an answer of NotFound or
	// FailedPrecondition is taken as no change, so the sides' clients should
	// make one attempt per call.
	//
	// Over the wire a seed fixes the clients' operations, the values written
	// and the fault schedule, but not how they interleave in real time: a
	// replay runs the same plan, and may take a few runs to meet a failure
	// again.
	Sides func(t *testing.T) (primary, secondary *blob.Bucket, faults WireFaults)
	// Window is, for a run over Sides, the longest fault window: each
	// window lasts from a sixth of Window to Window, and the clients and the
	// reconcile passes keep pace with it (a client waits up to Window/20
	// between operations; a reconcile pass runs every Window/20 to
	// Window/2). WireSlow delays reach three times Window. The sides'
	// timeouts should be of the order of Window. Zero means 300 ms. Runs in
	// virtual time ignore it.
	Window time.Duration
}

func (o *CheckOptions) withDefaults() CheckOptions {
	var c CheckOptions
	if o != nil {
		c = *o
	}
	if c.Seeds == nil {
		c.Seeds = []int64{1, 2, 3}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Ops, 300)
	def(&c.Clients, 4)
	def(&c.Keys, 8)
	if c.MaxSize <= 0 {
		c.MaxSize = 1 << 20
	}
	if c.Unavailable == nil {
		c.Unavailable = func(err error) bool { return gcerrors.Code(err) == gcerrors.Unknown }
	}
	if c.Replay == nil {
		c.Replay = func(seed int64) string {
			return fmt.Sprintf("CheckFailover with CheckOptions{Seeds: []int64{%d}, Ops: %d, Clients: %d, Keys: %d, MaxSize: %d}", seed, c.Ops, c.Clients, c.Keys, c.MaxSize)
		}
	}
	if c.LinearizabilityTimeout <= 0 {
		c.LinearizabilityTimeout = 30 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 300 * time.Millisecond
	}
	return c
}

// CheckFailover rehearses outages against a failover configuration and
// checks that it keeps its promise: nothing acknowledged is lost, a deleted
// object never comes back, the reconciler never replaces a newer object with
// an older one, and both sides converge once the faults heal.
//
// For each seed, in a subtest run in parallel and in virtual time
// (testing/synctest), CheckFailover wraps two in-memory buckets in
// fault-injecting wrappers and calls open to build the failover bucket over
// them, with the caller's own options and journal. open is called inside the
// synctest bubble, once per seed, and must build everything afresh;
// anything it starts must end when the bucket is closed. Concurrent clients
// then put, get, delete, copy, list and read the attributes of a few keys,
// each value unique and traceable to the write that made it, while a seeded
// schedule takes the sides down (errors, hangs, latency, streams cut
// part-way, writes and deletes applied but reported as failed, both sides at
// once) and heals them, and Target.Reconcile runs now and then. Finally
// every fault heals, Reconcile runs until nothing is pending, and every key
// is read once more.
//
// The history is then checked: every read is explained by a write or delete
// that could still be current, per-key histories must be linearizable
// (github.com/anishathalye/porcupine; an operation that failed may have
// taken effect), every change the reconciler made to a side is checked
// against the operations that wrote what it replaced, and the sides must
// hold exactly the final state as Target.Mirror promises. Each failure
// names the seed, the operation and how to replay it.
//
// With CheckOptions.Sides the same clients, checks and report run over the
// wire and in real time: the sides are buckets the caller provides (real
// SDK clients talking to emulators through fault proxies, say), open gets
// them as they are except that the check logs the changes made to them, and
// a seeded schedule of WireFault windows (connections reset, hung, cut,
// slowed or refused, 503 answers) runs on their network paths. The run is
// as long as the clients take to make their operations; at the end every
// fault heals, the check waits four times Window more for requests held on
// the network to land, and reconciles and checks as above.
//
// CheckFailover returns the figures of the run; it fails t if any seed
// fails.
func CheckFailover(t *testing.T, open func(ctx context.Context, primary, secondary *blob.Bucket) (Target, error), opts *CheckOptions) CheckReport {
	t.Helper()
	o := opts.withDefaults()
	var (
		mu     sync.Mutex
		report CheckReport
	)
	t.Run("seeds", func(t *testing.T) {
		for _, seed := range o.Seeds {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Parallel()
				res := checkSeed(t, open, o, seed)
				mu.Lock()
				report.add(res.report)
				mu.Unlock()
				if res.err != nil {
					t.Errorf("seed %d: %v\nreplay: %s", seed, res.err, o.Replay(seed))
					return
				}
				if len(res.unknown) > 0 {
					t.Logf("seed %d: the linearizability check of %s ran out of time (%v); not a failure", seed, strings.Join(res.unknown, ", "), o.LinearizabilityTimeout)
				}
				if len(res.violations) == 0 {
					return
				}
				var b strings.Builder
				fmt.Fprintf(&b, "seed %d: %d violations of the failover promise", seed, len(res.violations))
				for i, v := range res.violations {
					if i == 20 {
						fmt.Fprintf(&b, "\n  ... and %d more", len(res.violations)-i)
						break
					}
					fmt.Fprintf(&b, "\n  - %s", v)
				}
				fmt.Fprintf(&b, "\nreplay: %s", o.Replay(seed))
				t.Error(b.String())
			})
		}
	})
	sort.Slice(report.FailedSeeds, func(i, j int) bool { return report.FailedSeeds[i] < report.FailedSeeds[j] })
	return report
}

// seedResult is what one seed found.
type seedResult struct {
	report     CheckReport
	violations []string
	unknown    []string // keys whose linearizability check timed out
	err        error    // the seed could not run
}

// checkSeed runs one seed in a synctest bubble (or over the wire, in real
// time) and checks its history outside it, where the linearizability
// checker's timeout runs in real time.
func checkSeed(t *testing.T, open func(ctx context.Context, primary, secondary *blob.Bucket) (Target, error), o CheckOptions, seed int64) seedResult {
	var (
		r   *run
		err error
	)
	if o.Sides != nil {
		if r, err = newWireRun(t, o, seed); err == nil {
			err = r.exercise(open)
		}
	} else {
		r = newRun(o, seed)
		synctest.Test(t, func(t *testing.T) { err = r.exercise(open) })
	}
	if err != nil {
		return seedResult{err: err, report: CheckReport{Seeds: 1, FailedSeeds: []int64{seed}}}
	}
	return r.check()
}

// The outcome of an operation, as the check sorts it.
type outcome int

const (
	outOK outcome = iota
	outNotFound
	outPrecondition // FailedPrecondition: an IfNotExist write found the key
	outUnavailable
	outFailed // any other error
)

var outcomeNames = [...]string{"ok", "not found", "precondition failed", "unavailable", "failed"}

func (c outcome) String() string { return outcomeNames[c] }

// opKind is a kind of client operation.
type opKind int

const (
	opPut opKind = iota
	opPutIfAbsent
	opGet
	opAttributes
	opDelete
	opList
	opCopy
	numOpKinds
)

var opKinds = [numOpKinds]struct {
	name   string
	weight int
}{
	opPut:         {"Put", 30},
	opPutIfAbsent: {"PutIfNotExist", 3},
	opGet:         {"Get", 24},
	opAttributes:  {"Attributes", 10},
	opDelete:      {"Delete", 13},
	opList:        {"List", 6},
	opCopy:        {"Copy", 7},
}

func (k opKind) String() string { return opKinds[k].name }

// op is one client operation and what it returned.
type op struct {
	index  int64 // numbers the operations of a seed from 1; a Put's value id
	client int
	kind   opKind
	key    string // the key written, read or deleted; for Copy, the destination
	src    string // Copy: the source key
	size   int64  // Put: the size of the value written
	style  string // Put: how the value was written
	final  bool   // a read of the final state, after every fault healed
	call   int64  // logical time of the call
	ret    int64  // logical time of the return
	out    outcome
	err    error
	seen   []sighting // what a read, a listing or an answer showed
	faults []string   // what the operation saw that is wrong in itself
}

func (o *op) String() string {
	s := fmt.Sprintf("op #%d (client %d, %s %s", o.index, o.client, o.kind, o.key)
	switch o.kind {
	case opPut, opPutIfAbsent:
		s += fmt.Sprintf(" = value #%d, %d bytes, %s", o.index, o.size, o.style)
	case opCopy:
		s += " from " + o.src
	case opList:
		s = fmt.Sprintf("op #%d (client %d, %s", o.index, o.client, o.kind)
	}
	if o.final {
		s += ", final read"
	}
	s += ") -> " + o.out.String()
	if o.err != nil && o.out != outNotFound {
		s += fmt.Sprintf(" (%v)", o.err)
	}
	return s
}

// seenKind is what a sighting says about a key.
type seenKind int

const (
	seenAbsent seenKind = iota
	seenValue           // a value, identified by its id
	seenEmpty           // some empty value (an empty read names no id)
	seenExists          // some value, of a size if size >= 0
)

// sighting is what an operation showed about one key.
type sighting struct {
	key   string
	kind  seenKind
	value valueID
	size  int64
}

func (s sighting) String() string {
	switch s.kind {
	case seenAbsent:
		return "absent"
	case seenValue:
		return fmt.Sprintf("value #%d", s.value)
	case seenEmpty:
		return "an empty value"
	}
	if s.size < 0 {
		return "present"
	}
	return fmt.Sprintf("present with %d bytes", s.size)
}

// run is one seed in progress.
type run struct {
	o       CheckOptions
	seed    int64
	prefix  string
	keys    []string
	raw     [2]*blob.Bucket
	sides   [2]*blob.Bucket
	in      [2]*Injector // nil over the wire
	log     *commitLog
	target  Target
	sched   *schedule
	pace    pace
	failed  atomic.Int64 // over the wire: calls to a side that failed
	clock   atomic.Int64 // logical time, for the history
	nextOp  atomic.Int64
	mu      sync.Mutex
	ops     []*op
	healAt  time.Time
	settled time.Duration // time from the last heal to nothing pending
	drains  int           // reconcile passes during the faults

	rawPrimary, rawSecondary map[string]rawObject // what the sides hold at the end
}

const keyPrefix = "chaos/"

// pace is the timing of a run: in virtual time in a synctest bubble, or in
// real time over the wire.
type pace struct {
	clock                       string        // "virtual" or "real", for messages
	think                       time.Duration // the longest a client waits between operations
	reconcileMin, reconcileSpan time.Duration // between reconcile passes during the faults
	stuckAfter                  time.Duration // an operation still running after this long is stuck
	settleWithin                time.Duration // reconcile converges within this long of the heal
	retry                       time.Duration // between reconcile passes after the heal, and tries of a final read
	grace                       time.Duration // after the heal, for requests held on the network to land
}

// virtualPace is the pace of a run in a synctest bubble. Every call to a
// side is bounded by the failover bucket's own timeouts, so an operation
// still running after stuckAfter is stuck.
var virtualPace = pace{
	clock: "virtual", think: 2 * time.Second, reconcileMin: 2 * time.Second, reconcileSpan: 18 * time.Second,
	stuckAfter: 10 * time.Minute, settleWithin: time.Hour, retry: time.Second,
}

// newRun returns a seed's run in virtual time, over in-memory sides.
func newRun(o CheckOptions, seed int64) *run {
	r := newRunAt(o, seed, keyPrefix, virtualPace)
	for i := range r.raw {
		r.raw[i] = memblob.OpenBucket(nil)
		rec := &recorder{base: r.raw[i], side: i, log: r.log, lat: &latency{rng: rand.New(rand.NewPCG(uint64(seed), uint64(i)))}}
		r.sides[i], r.in[i] = Wrap(blob.NewBucket(rec), &Options{Seed: seed*2 + int64(i)})
	}
	r.sched = newSchedule(seed, r.in)
	return r
}

// newRunAt returns a run whose keys are under prefix, without its sides.
func newRunAt(o CheckOptions, seed int64, prefix string, p pace) *run {
	r := &run{o: o, seed: seed, prefix: prefix, log: newCommitLog(prefix), pace: p}
	r.log.now = r.clock.Load
	for i := range o.Keys {
		r.keys = append(r.keys, fmt.Sprintf("%sk%02d", prefix, i))
	}
	return r
}

// exercise runs the seed in the bubble: clients, faults and reconcile
// passes, then healing, convergence and the final reads.
func (r *run) exercise(open func(ctx context.Context, primary, secondary *blob.Bucket) (Target, error)) (err error) {
	ctx := context.Background()
	defer func() {
		for _, b := range r.raw {
			_ = b.Close()
		}
	}()
	r.target, err = open(ctx, r.sides[0], r.sides[1])
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	if r.target.Bucket == nil || r.target.Reconcile == nil {
		return errors.New("open returned a Target without a Bucket or a Reconcile")
	}
	defer func() {
		if cerr := r.target.Bucket.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing the failover bucket: %w", cerr)
		}
	}()

	faultsCtx, stopFaults := context.WithCancel(ctx)
	var background sync.WaitGroup
	background.Go(func() { r.sched.run(faultsCtx) })
	background.Go(func() { r.reconcileNowAndThen(faultsCtx) })

	var clients sync.WaitGroup
	for c := range r.o.Clients {
		n := r.o.Ops / r.o.Clients
		if c < r.o.Ops%r.o.Clients {
			n++
		}
		clients.Go(func() { r.client(ctx, c, n) })
	}
	clients.Wait()
	stopFaults()
	background.Wait()

	// Every fault is healed: reconcile until nothing is pending. Over the
	// wire, requests held on the network land first.
	time.Sleep(r.pace.grace)
	r.healAt = time.Now()
	rctx := context.WithValue(ctx, reconcilerKey{}, true)
	for {
		pending, err := r.target.Reconcile(rctx)
		if err == nil && pending == 0 {
			break
		}
		if time.Since(r.healAt) > r.pace.settleWithin {
			r.finalFault(fmt.Sprintf("reconcile did not converge within %v (%s) of the last fault: %d pending, last error: %v", r.pace.settleWithin, r.pace.clock, pending, err))
			break
		}
		time.Sleep(r.pace.retry)
	}
	r.settled = time.Since(r.healAt)
	r.finalReads(ctx)
	r.rawPrimary, r.rawSecondary, err = r.snapshotSides(ctx)
	return err
}

// finalFault records a problem found after the faults, as a failed final
// operation.
func (r *run) finalFault(msg string) {
	o := &op{index: r.nextOp.Add(1), client: r.o.Clients, kind: opList, final: true, out: outFailed}
	o.call, o.ret = r.clock.Add(1), r.clock.Add(1)
	o.faults = append(o.faults, msg)
	r.record(o)
}

// reconcileNowAndThen runs a reconcile pass every 2 to 20 virtual seconds
// (over the wire, every Window/20 to Window/2) while the faults go on, as
// Run would, racing the clients.
func (r *run) reconcileNowAndThen(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(r.seed), 0xdea1))
	rctx := context.WithValue(ctx, reconcilerKey{}, true)
	for sleep(ctx, r.pace.reconcileMin+time.Duration(rng.Int64N(int64(r.pace.reconcileSpan)))) == nil {
		_, _ = r.target.Reconcile(rctx)
		r.drains++
	}
}

func (r *run) record(o *op) {
	r.mu.Lock()
	r.ops = append(r.ops, o)
	r.mu.Unlock()
}

func (r *run) classify(err error) outcome {
	switch {
	case err == nil:
		return outOK
	case gcerrors.Code(err) == gcerrors.NotFound:
		return outNotFound
	case gcerrors.Code(err) == gcerrors.FailedPrecondition:
		return outPrecondition
	case r.o.Unavailable(err):
		return outUnavailable
	}
	return outFailed
}

// do runs one operation with its own context and logical timestamps.
func (r *run) do(ctx context.Context, o *op, call func(ctx context.Context) error) {
	o.index = r.nextOp.Add(1)
	ctx = context.WithValue(ctx, opKey{}, o.index)
	ctx, cancel := context.WithTimeout(ctx, r.pace.stuckAfter)
	defer cancel()
	o.call = r.clock.Add(1)
	o.err = call(ctx)
	o.ret = r.clock.Add(1)
	o.out = r.classify(o.err)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		o.faults = append(o.faults, fmt.Sprintf("did not return within %v (%s): a call to a side was not bounded by a timeout", r.pace.stuckAfter, r.pace.clock))
	}
	r.record(o)
}

// client runs n operations, with 0 to 2 virtual seconds (over the wire, 0
// to Window/20) between them.
func (r *run) client(ctx context.Context, c, n int) {
	rng := rand.New(rand.NewPCG(uint64(r.seed), uint64(c)+100))
	total := 0
	for _, k := range opKinds {
		total += k.weight
	}
	for range n {
		time.Sleep(time.Duration(rng.Int64N(int64(r.pace.think))))
		kind := opKind(0)
		for w := rng.IntN(total); w >= opKinds[kind].weight; kind++ {
			w -= opKinds[kind].weight
		}
		o := &op{client: c, kind: kind, key: r.keys[rng.IntN(len(r.keys))]}
		switch kind {
		case opPut, opPutIfAbsent:
			r.put(ctx, o, rng)
		case opGet:
			r.get(ctx, o)
		case opAttributes:
			r.attributes(ctx, o)
		case opDelete:
			r.do(ctx, o, func(ctx context.Context) error { return r.target.Bucket.Delete(ctx, o.key) })
			if o.out == outNotFound {
				o.seen = append(o.seen, sighting{key: o.key, kind: seenAbsent})
			}
		case opList:
			o.key = ""
			r.list(ctx, o, rng)
		case opCopy:
			o.src = r.keys[rng.IntN(len(r.keys))]
			for o.src == o.key {
				o.src = r.keys[rng.IntN(len(r.keys))]
			}
			r.do(ctx, o, func(ctx context.Context) error { return r.target.Bucket.Copy(ctx, o.key, o.src, nil) })
			switch o.out {
			case outOK:
				o.seen = append(o.seen, sighting{key: o.src, kind: seenExists, size: -1})
			case outNotFound:
				o.seen = append(o.seen, sighting{key: o.src, kind: seenAbsent})
			}
		}
	}
}

// valueSize draws the size of a value: mostly small (bytes moved are what a
// run costs, under the race detector above all), 16 KiB to 1 MiB one write
// in 100, and 1 MiB to MaxSize one in 1,000.
func (r *run) valueSize(rng *rand.Rand) int64 {
	var n int64
	switch p := rng.IntN(1000); {
	case p < 75:
		n = 0
	case p < 550:
		n = valueHeaderLen + rng.Int64N(1<<10)
	case p < 989:
		n = 1<<10 + rng.Int64N(15<<10)
	case p < 999:
		n = 16<<10 + rng.Int64N(1008<<10)
	default:
		n = 1<<20 + rng.Int64N(max(1, r.o.MaxSize-1<<20))
	}
	return min(n, r.o.MaxSize)
}

// putStyles are the ways a client writes a value, so that every write path
// of the bucket is taken: buffered, sniffed, streamed in pieces, uploaded
// from a seekable source or from a plain stream, with a checksum. Values
// over 64 KiB take only the streaming ones, generated as they are sent.
var putStyles = []string{"NewWriter in pieces", "Upload, seekable", "Upload, stream", "WriteAll", "WriteAll, type sniffed", "WriteAll with ContentMD5"}

const streamingStyles = 3 // the first three

func (r *run) put(ctx context.Context, o *op, rng *rand.Rand) {
	size := valueSizeOf(r.valueSize(rng))
	style := rng.IntN(len(putStyles))
	if size > 64<<10 {
		style = rng.IntN(streamingStyles)
	}
	o.style, o.size = putStyles[style], size
	pieces := 1 + rng.IntN(128<<10)
	r.do(ctx, o, func(ctx context.Context) error {
		id := valueID(o.index)
		opts := &blob.WriterOptions{
			ContentType: "application/octet-stream",
			Metadata:    map[string]string{valueMetadataKey: strconv.FormatInt(o.index, 10)},
			IfNotExist:  o.kind == opPutIfAbsent,
		}
		b := r.target.Bucket
		switch style {
		case 0:
			w, err := b.NewWriter(ctx, o.key, opts)
			if err != nil {
				return err
			}
			buf := make([]byte, min(int64(pieces), max(size, 1)))
			for src := newValueReader(id, size); ; {
				n, _ := src.Read(buf)
				if n == 0 {
					break
				}
				if _, err := w.Write(buf[:n]); err != nil {
					_ = w.Close()
					return err
				}
			}
			return w.Close()
		case 1:
			return b.Upload(ctx, o.key, newValueReader(id, size), opts)
		case 2:
			return b.Upload(ctx, o.key, struct{ io.Reader }{newValueReader(id, size)}, opts)
		}
		data := encodeValue(id, size)
		switch style {
		case 4:
			opts.ContentType = ""
		case 5:
			sum := md5.Sum(data)
			opts.ContentMD5 = sum[:]
		}
		return b.WriteAll(ctx, o.key, data, opts)
	})
	if o.out == outPrecondition {
		o.seen = append(o.seen, sighting{key: o.key, kind: seenExists, size: -1})
	}
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// get reads a key, checking the bytes as they stream past.
func (r *run) get(ctx context.Context, o *op) {
	var c valueChecker
	r.do(ctx, o, func(ctx context.Context) error {
		rd, err := r.target.Bucket.NewReader(ctx, o.key, nil)
		if err != nil {
			return err
		}
		// Not io.Copy: blob.Reader.WriteTo allocates 1 MiB for each read.
		bp := readBufs.Get().(*[]byte)
		defer readBufs.Put(bp)
		for err == nil {
			var n int
			n, err = rd.Read(*bp)
			_, _ = c.Write((*bp)[:n])
		}
		if err == io.EOF {
			err = nil
		}
		if cerr := rd.Close(); err == nil {
			err = cerr
		}
		return err
	})
	switch o.out {
	case outNotFound:
		o.seen = append(o.seen, sighting{key: o.key, kind: seenAbsent})
	case outOK:
		id, n, err := c.result()
		switch {
		case err != nil:
			o.faults = append(o.faults, fmt.Sprintf("read %s", err))
		case n == 0:
			o.seen = append(o.seen, sighting{key: o.key, kind: seenEmpty, size: 0})
		default:
			o.seen = append(o.seen, sighting{key: o.key, kind: seenValue, value: id, size: n})
		}
	}
}

func (r *run) attributes(ctx context.Context, o *op) {
	var a *blob.Attributes
	r.do(ctx, o, func(ctx context.Context) (err error) {
		a, err = r.target.Bucket.Attributes(ctx, o.key)
		return err
	})
	switch o.out {
	case outNotFound:
		o.seen = append(o.seen, sighting{key: o.key, kind: seenAbsent})
	case outOK:
		id := valueOf(a.Metadata)
		if id == 0 || len(a.Metadata) != 1 {
			o.faults = append(o.faults, fmt.Sprintf("attributes carry metadata %v, want exactly the metadata written (%s)", a.Metadata, valueMetadataKey))
		}
		if id != 0 {
			o.seen = append(o.seen, sighting{key: o.key, kind: seenValue, value: id, size: a.Size})
		}
	}
}

// list lists the key space in pages of 1 to 7 objects.
func (r *run) list(ctx context.Context, o *op, rng *rand.Rand) {
	pageSize := 1 + rng.IntN(7)
	var objs []*blob.ListObject
	r.do(ctx, o, func(ctx context.Context) error {
		token := blob.FirstPageToken
		for page := 0; len(token) > 0; page++ {
			if page > 10*len(r.keys) {
				return errors.New("listing does not end")
			}
			got, next, err := r.target.Bucket.ListPage(ctx, token, pageSize, &blob.ListOptions{Prefix: r.prefix})
			if err != nil {
				return err
			}
			objs = append(objs, got...)
			token = next
		}
		return nil
	})
	listed := map[string]bool{}
	last := ""
	for _, obj := range objs {
		switch {
		case obj.Key <= last:
			o.faults = append(o.faults, fmt.Sprintf("listing is out of order or repeats a key: %q after %q", obj.Key, last))
		case !r.isKey(obj.Key):
			o.faults = append(o.faults, fmt.Sprintf("listing shows %q, which no client wrote", obj.Key))
		default:
			listed[obj.Key] = true
			o.seen = append(o.seen, sighting{key: obj.Key, kind: seenExists, size: obj.Size})
		}
		last = max(last, obj.Key)
	}
	if o.out != outOK || r.o.PartialLists {
		return
	}
	for _, k := range r.keys {
		if !listed[k] {
			o.seen = append(o.seen, sighting{key: k, kind: seenAbsent})
		}
	}
}

func (r *run) isKey(k string) bool {
	i := sort.SearchStrings(r.keys, k)
	return i < len(r.keys) && r.keys[i] == k
}

// finalReads reads every key once more through the bucket, after
// convergence: its attributes (which name even an empty value) and its
// bytes. They must answer; a read that fails is retried 60 times.
func (r *run) finalReads(ctx context.Context) {
	for _, k := range r.keys {
		for _, kind := range []opKind{opAttributes, opGet} {
			var o *op
			for try := 0; try < 60; try++ {
				o = &op{client: r.o.Clients, kind: kind, key: k, final: true}
				if kind == opAttributes {
					r.attributes(ctx, o)
				} else {
					r.get(ctx, o)
				}
				if o.out == outOK || o.out == outNotFound {
					break
				}
				time.Sleep(r.pace.retry)
			}
			if o.out != outOK && o.out != outNotFound {
				o.faults = append(o.faults, fmt.Sprintf("the final read still fails %v (%s) after reconcile settled", 60*r.pace.retry, r.pace.clock))
			}
		}
	}
}
