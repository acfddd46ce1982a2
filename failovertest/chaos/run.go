package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// run is one seed in progress.
type run struct {
	o           Options
	seed        int64
	open        openFunc
	prefix      string
	keys        []string           // every key the clients use, sorted
	keyInfo     map[string]keyInfo // by key
	changes     [][]string         // by writer: the keys its clients change
	raw         [2]*blob.Bucket
	sides       [2]driver.Bucket          // what every instance's view of a side calls
	in          [2]*failovertest.Injector // nil over the wire
	log         *commitLog
	writers     []*writer
	mirror      bool // Target.Mirror, the same for every instance
	ackBoth     bool // Target.AckBoth, likewise
	strictReads bool // Target.StrictReads, likewise
	sched       *schedule
	pace        pace
	failed      atomic.Int64 // over the wire: calls to a side that failed
	clock       atomic.Int64 // logical time, for the history
	nextOp      atomic.Int64
	mu          sync.Mutex
	ops         []*op
	errs        []error // what kept the seed from running (a restart that failed)
	healAt      time.Time
	settled     time.Duration // time from the last heal to nothing pending
	drains      atomic.Int64  // reconcile passes during the faults

	restarts, crashes atomic.Int64
	closers           sync.WaitGroup // closing crashed instances once their callers are done

	rawPrimary, rawSecondary map[string]rawObject // what the sides hold at the end
}

// keyInfo is what the check knows of a key in advance.
type keyInfo struct {
	owner   int  // the writer whose clients alone change it; -1: every writer's
	refused bool // the sides refuse it
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
	startupMin, startupSpan     time.Duration // how long a restarted process takes to start
}

// virtualPace is the pace of a run in a synctest bubble. Every call to a
// side is bounded by the failover bucket's own timeouts, so an operation
// still running after stuckAfter is stuck.
var virtualPace = pace{
	clock: "virtual", think: 2 * time.Second, reconcileMin: 2 * time.Second, reconcileSpan: 18 * time.Second,
	stuckAfter: 10 * time.Minute, settleWithin: 10 * time.Minute, retry: time.Second,
	startupMin: time.Second, startupSpan: 4 * time.Second,
}

// newRun returns a seed's run in virtual time, over in-memory sides. It is
// called inside the seed's synctest bubble.
func newRun(o Options, seed int64, open openFunc) *run {
	r := newRunAt(o, seed, keyPrefix, virtualPace, open)
	for i := range r.raw {
		r.raw[i] = memblob.OpenBucket(nil)
		rec := &recorder{base: r.raw[i], side: journal.Side(i), log: r.log, lat: &latency{rng: rand.New(rand.NewPCG(uint64(seed), uint64(i)))}, conditional: o.Conditional}
		r.sides[i], r.in[i] = failovertest.NewDriver(blob.NewBucket(rec), &failovertest.Options{Seed: seed*2 + int64(i)})
		r.in[i].Refuse(r.refusal)
	}
	r.sched = newSchedule(seed, r.in)
	return r
}

// newRunAt returns a run whose keys are under prefix, without its sides.
func newRunAt(o Options, seed int64, prefix string, p pace, open openFunc) *run {
	r := &run{o: o, seed: seed, open: open, prefix: prefix, log: newCommitLog(prefix), pace: p, keyInfo: map[string]keyInfo{}}
	r.log.now = r.clock.Load
	r.changes = make([][]string, o.Writers)
	add := func(k string, info keyInfo) {
		r.keys = append(r.keys, k)
		r.keyInfo[k] = info
		for w := range r.changes {
			if info.owner < 0 || info.owner == w {
				r.changes[w] = append(r.changes[w], k)
			}
		}
	}
	if o.Writers == 1 {
		for i := range o.Keys {
			add(fmt.Sprintf("%sk%02d", prefix, i), keyInfo{owner: 0})
		}
	} else {
		shared := max(1, o.Keys/2)
		for i := range shared {
			add(fmt.Sprintf("%sk%02d", prefix, i), keyInfo{owner: -1})
		}
		owned := max(1, (o.Keys-shared)/o.Writers)
		for w := range o.Writers {
			for i := range owned {
				add(fmt.Sprintf("%sw%d-k%02d", prefix, w, i), keyInfo{owner: w})
			}
		}
	}
	for _, name := range o.Refused {
		owner := 0
		if o.Writers > 1 {
			owner = -1
		}
		add(prefix+name, keyInfo{owner: owner, refused: true})
	}
	sort.Strings(r.keys)
	rng := rand.New(rand.NewPCG(uint64(seed), 0xc10c))
	for i := range o.Writers {
		w := &writer{r: r, n: i, id: fmt.Sprintf("writer-%d", i)}
		if o.Writers > 1 && o.MaxClockSkew > 0 {
			w.offset = time.Duration(rng.Int64N(int64(o.MaxClockSkew)+1)) - o.MaxClockSkew/2
		}
		if o.FastClock > 0 && o.Writers > 1 && i == o.Writers-1 {
			w.offset = o.FastClock
		}
		r.writers = append(r.writers, w)
	}
	return r
}

// errRefusedKey is wrapped by the sides' answer to a key they refuse, in a
// run in virtual time.
var errRefusedKey = errors.New("the side refuses the key (as fileblob refuses a name it cannot store)")

// refusal is the sides' answer to a key they refuse, in a run in virtual
// time: an error without a gcerrors code, as fileblob gives.
func (r *run) refusal(key string) error {
	if r.keyInfo[key].refused {
		return fmt.Errorf("chaos: %.60q: %w", key, errRefusedKey)
	}
	return nil
}

// failSeed records what kept the seed from running as it should.
func (r *run) failSeed(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

// exercise runs the seed: clients, faults, restarts and reconcile passes,
// then healing, convergence and the final reads.
func (r *run) exercise(t *testing.T) (err error) {
	ctx := context.Background()
	defer func() {
		for _, b := range r.raw {
			_ = b.Close()
		}
	}()
	if r.o.JournalFile {
		dir := t.TempDir()
		for _, w := range r.writers {
			w.journalPath = fmt.Sprintf("%s/writer-%d.journal", dir, w.n)
		}
	}
	defer func() { err = errors.Join(err, r.closeWriters()) }()
	for _, w := range r.writers {
		if err := w.start(ctx); err != nil {
			return err
		}
	}

	faultsCtx, stopFaults := context.WithCancel(ctx)
	var background sync.WaitGroup
	background.Go(func() { r.sched.run(faultsCtx) })
	for _, w := range r.writers {
		background.Go(func() { r.reconcileNowAndThen(faultsCtx, w) })
	}
	if r.o.RestartEvery > 0 {
		background.Go(func() { r.restartNowAndThen(faultsCtx) })
	}

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
	if err := errors.Join(r.errs...); err != nil {
		return err
	}

	// Every fault is healed: reconcile until nothing is pending on any
	// writer. Over the wire, requests held on the network land first.
	time.Sleep(r.pace.grace)
	r.healAt = time.Now()
	r.settle(ctx)
	r.settled = time.Since(r.healAt)
	r.finalReads(ctx)
	r.rawPrimary, r.rawSecondary, err = r.snapshotSides(ctx)
	return err
}

// settle runs reconcile passes on every writer until none has anything
// pending, waiting longer after each pass that leaves work (from
// pace.retry up to 32 times it), so that a run that does not converge
// stays cheap.
func (r *run) settle(ctx context.Context) {
	wait := r.pace.retry
	for {
		pending, errs := 0, []error(nil)
		for _, w := range r.writers {
			n, err := w.reconcile(ctx)
			pending += n
			if err != nil {
				errs = append(errs, fmt.Errorf("writer %d: %w", w.n, err))
			}
		}
		err := errors.Join(errs...)
		if err == nil && pending == 0 {
			return
		}
		if time.Since(r.healAt) > r.pace.settleWithin {
			r.finalFault(fmt.Sprintf("reconcile did not converge within %v (%s) of the last fault: %d pending, last error: %v", r.pace.settleWithin, r.pace.clock, pending, err))
			return
		}
		time.Sleep(wait)
		wait = min(2*wait, 32*r.pace.retry)
	}
}

// finalFault records a problem found after the faults, as a failed final
// operation.
func (r *run) finalFault(msg string) {
	o := &op{index: r.nextOp.Add(1), client: r.o.Clients, kind: opList, final: true, out: outFailed}
	o.call, o.ret = r.clock.Add(1), r.clock.Add(1)
	o.faults = append(o.faults, msg)
	r.record(o)
}

// reconcileNowAndThen runs a reconcile pass of w every 2 to 20 virtual
// seconds (over the wire, every Window/20 to Window/2) while the faults go
// on, as Run would, racing the clients.
func (r *run) reconcileNowAndThen(ctx context.Context, w *writer) {
	rng := rand.New(rand.NewPCG(uint64(r.seed), 0xdea1+uint64(w.n)))
	for sleep(ctx, r.pace.reconcileMin+time.Duration(rng.Int64N(int64(r.pace.reconcileSpan)))) == nil {
		_, _ = w.reconcile(ctx)
		r.drains.Add(1)
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

// do runs one operation through its writer's current instance, with its
// own context and logical timestamps. An operation waits for an instance
// being restarted before it begins.
func (r *run) do(ctx context.Context, o *op, call func(ctx context.Context, b *blob.Bucket) error) {
	inst := r.writers[o.writer].acquire()
	defer inst.release()
	o.inst = inst
	o.index = r.nextOp.Add(1)
	ctx = context.WithValue(ctx, opKey{}, o.index)
	ctx, cancel := context.WithTimeout(ctx, r.pace.stuckAfter)
	defer cancel()
	o.start = time.Now()
	o.call = r.clock.Add(1)
	o.err = call(ctx, inst.target.Bucket)
	o.ret = r.clock.Add(1)
	o.end = time.Now()
	o.out = r.classify(o.err)
	o.stuck = errors.Is(ctx.Err(), context.DeadlineExceeded)
	r.record(o)
}
