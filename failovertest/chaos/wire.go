package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/internal/bucketconv"
	"github.com/failoverblob/failoverblob/journal"
)

// WireFaultKind is a kind of trouble on a side's network path.
type WireFaultKind int

const (
	// WireReset resets live connections, and each new connection once its
	// request is sent: a request may or may not have reached the service.
	WireReset WireFaultKind = iota + 1
	// WireHang accepts connections and forwards nothing until the fault
	// heals; what was held is forwarded then, so a request its caller gave
	// up on may still reach the service.
	WireHang
	// WireCut lets each connection carry at most CutAfter bytes each way
	// from when the fault starts, then closes it: requests and answers are
	// cut part-way.
	WireCut
	// WireSlow delays every chunk forwarded, either way, by Latency.
	WireSlow
	// WireRefuse refuses connections and drops live ones.
	WireRefuse
	// WireUnavailable makes the service answer every request with HTTP 503,
	// as a cloud shedding load does.
	WireUnavailable
)

var wireFaultNames = map[WireFaultKind]string{
	WireReset: "reset", WireHang: "hang", WireCut: "cut", WireSlow: "slow", WireRefuse: "refuse", WireUnavailable: "unavailable-503",
}

// String returns the kind's name, as fault windows are counted in a
// Report.
func (k WireFaultKind) String() string {
	if s, ok := wireFaultNames[k]; ok {
		return s
	}
	return fmt.Sprintf("WireFaultKind(%d)", int(k))
}

// WireFault is a fault on a side's network path.
type WireFault struct {
	Kind WireFaultKind
	// CutAfter is, for WireCut, how many bytes each direction of a
	// connection may carry before it is closed.
	CutAfter int64
	// Latency is, for WireSlow, the delay added to every chunk forwarded.
	Latency time.Duration
}

func (f WireFault) String() string {
	switch f.Kind {
	case WireCut:
		return fmt.Sprintf("%s after %d bytes", f.Kind, f.CutAfter)
	case WireSlow:
		return fmt.Sprintf("%s by %v", f.Kind, f.Latency)
	}
	return f.Kind.String()
}

// WireFaults switches faults on the network paths of a run's two sides
// (journal.Primary and journal.Secondary), for Options.Sides: a fault proxy
// in front of each side's service, say. The check calls it from one goroutine
// at a time, and heals both sides before it reconciles for the last time.
type WireFaults interface {
	// Fault puts side's path in trouble f until the side's next Heal.
	Fault(side journal.Side, f WireFault)
	// Heal makes side's path healthy again.
	Heal(side journal.Side)
}

// wirePace is the pace of a run over the wire whose longest fault window is
// window (see Options.Window).
func wirePace(window time.Duration) pace {
	return pace{
		clock:         "real",
		think:         max(window/20, 1),
		reconcileMin:  window / 20,
		reconcileSpan: max(window/2-window/20, 1),
		stuckAfter:    30 * time.Second,
		settleWithin:  30 * time.Second,
		retry:         max(window/6, 10*time.Millisecond),
		grace:         4 * window, // past the longest WireSlow delay
		startupMin:    window / 30,
		startupSpan:   window / 6,
	}
}

// wireKinds are the fault windows of a run over the wire, with their
// weights. Every window ends with Heal.
var wireKinds = []struct {
	kind   WireFaultKind
	weight int
	down   bool // the side cannot be reached at all during the window
}{
	{WireReset, 3, true},
	{WireHang, 2, true},
	{WireRefuse, 2, true},
	{WireUnavailable, 2, true},
	{WireCut, 3, false},
	{WireSlow, 2, false},
}

// bothDownWire are the faults of a side in a both-sides-down window.
var bothDownWire = []WireFaultKind{WireHang, WireRefuse, WireReset, WireUnavailable}

// newWireSchedule returns the timeline of a run over the wire: slots of
// window/6 to window, each side's trouble switched by faults.
func newWireSchedule(seed int64, faults WireFaults, window time.Duration) *schedule {
	s := &schedule{
		rng:  rand.New(rand.NewPCG(uint64(seed), 0x5eed)),
		heal: faults.Heal,
		takeDown: func(side journal.Side, rng *rand.Rand) {
			faults.Fault(side, WireFault{Kind: bothDownWire[rng.IntN(len(bothDownWire))]})
		},
		slotMin: window / 6, slotSpan: max(window-window/6, 1),
		healthy: 0.45, bothDown: 0.08, windows: map[string]int{},
	}
	for _, k := range wireKinds {
		kind := k.kind
		s.kinds = append(s.kinds, windowKind{name: kind.String(), weight: k.weight, down: k.down, apply: func(side journal.Side, rng *rand.Rand) {
			f := WireFault{Kind: kind}
			switch kind {
			case WireCut:
				// Half the cuts fall within a small request or answer, the
				// others anywhere in the first 256 KiB.
				if rng.IntN(2) == 0 {
					f.CutAfter = 1 + rng.Int64N(2<<10)
				} else {
					f.CutAfter = 1 + rng.Int64N(256<<10)
				}
			case WireSlow:
				// From a nuisance to well past a side's attempt timeout
				// (of the order of window): a request held that long may
				// land after its caller gave up, and after newer ones.
				f.Latency = time.Millisecond + time.Duration(rng.Int64N(int64(3*window)))
			}
			faults.Fault(side, f)
		}})
	}
	return s
}

// wireRuns tells apart the runs of one seed in a process.
var wireRuns atomic.Int64

// newWireRun returns a seed's run over the sides Options.Sides
// provides. Its keys are under a prefix of its own, so that seeds and runs
// sharing a bucket do not meet.
func newWireRun(t *testing.T, o Options, seed int64, open openFunc) (*run, error) {
	prefix := fmt.Sprintf("%sseed%d-%d-%08x/", keyPrefix, seed, wireRuns.Add(1), rand.Uint32())
	r := newRunAt(o, seed, prefix, wirePace(o.Window), open)
	primary, secondary, faults := o.Sides(t)
	if primary == nil || secondary == nil || faults == nil {
		for _, b := range []*blob.Bucket{primary, secondary} {
			if b != nil {
				_ = b.Close()
			}
		}
		return nil, errors.New("Options.Sides returned no primary, no secondary or no WireFaults")
	}
	r.raw = [2]*blob.Bucket{primary, secondary}
	for i, b := range r.raw {
		r.sides[i] = &wireSide{Bucket: bucketconv.Bucket(b), side: journal.Side(i), log: r.log, failed: &r.failed}
	}
	r.sched = newWireSchedule(seed, faults, o.Window)
	return r, nil
}

// wireSide is a side reached over the wire, as the check sees it: every
// call goes to the side's bucket, so that the failover bucket finds what it
// would find there (As passes on its conditional writes), and every
// change is logged as well as can be known. A side applies a change at some
// moment between the call and its answer, so changes whose calls do not
// overlap land in order; a call that fails may have applied its change, or
// may yet (a request held up on the network can land after its caller gave
// up), and from then on the log cannot know what the side holds.
type wireSide struct {
	driver.Bucket
	side   journal.Side
	log    *commitLog
	failed *atomic.Int64
}

var (
	_ driver.Bucket = (*wireSide)(nil)
	_ driver.Writer = (*wireWriter)(nil)
	_ driver.Reader = (*wireReader)(nil)
)

// Close leaves the side open: the check reads it at the end, then closes it.
func (s *wireSide) Close() error { return nil }

// landing is what became of a change sent to a side.
type landing int

const (
	landed  landing = iota // the side answered that it made the change
	refused                // the side answered that it changed nothing
	unsure                 // the call failed: the change may land at any time
)

// outcome sorts the answer to a call, and counts the calls that failed. A
// NotFound or FailedPrecondition answer is the side's own and changed
// nothing.
func (s *wireSide) outcome(err error) landing {
	if err == nil {
		return landed
	}
	switch s.Bucket.ErrorCode(err) {
	case gcerrors.NotFound, gcerrors.FailedPrecondition:
		return refused
	}
	s.failed.Add(1)
	return unsure
}

func (s *wireSide) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	a, err := s.Bucket.Attributes(ctx, key)
	s.outcome(err)
	return a, err
}

func (s *wireSide) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	p, err := s.Bucket.ListPaged(ctx, opts)
	s.outcome(err)
	return p, err
}

func (s *wireSide) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	r, err := s.Bucket.NewRangeReader(ctx, key, offset, length, opts)
	if s.outcome(err); err != nil {
		return nil, err
	}
	return &wireReader{Reader: r, s: s}, nil
}

func (s *wireSide) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	f := s.log.begin(s.side, key)
	w, err := s.Bucket.NewTypedWriter(ctx, key, contentType, opts)
	if err != nil {
		s.outcome(err)
		s.log.end(ctx, f, refused, 0) // nothing was sent
		return nil, err
	}
	return &wireWriter{Writer: w, s: s, ctx: ctx, f: f, value: valueOf(opts.Metadata)}, nil
}

func (s *wireSide) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	f := s.log.begin(s.side, dstKey)
	err := s.Bucket.Copy(ctx, dstKey, srcKey, opts)
	s.log.end(ctx, f, s.outcome(err), valueUnknown)
	return err
}

func (s *wireSide) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	f := s.log.begin(s.side, key)
	err := s.Bucket.Delete(ctx, key, opts)
	s.log.end(ctx, f, s.outcome(err), 0)
	return err
}

type wireReader struct {
	driver.Reader
	s *wireSide
}

func (r *wireReader) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	if err != nil && err != io.EOF {
		r.s.outcome(err)
	}
	return n, err
}

// wireWriter is a write to a side over the wire: in flight from its start
// (its bytes may go out with the first Write) to the answer to Close.
type wireWriter struct {
	driver.Writer
	s     *wireSide
	ctx   context.Context
	f     *flight
	value valueID
	done  bool
}

func (w *wireWriter) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	if err != nil {
		w.s.outcome(err)
	}
	return n, err
}

func (w *wireWriter) Close() error {
	err := w.Writer.Close()
	if !w.done {
		w.done = true
		w.s.log.end(w.ctx, w.f, w.s.outcome(err), w.value)
	}
	return err
}

// keyFlights is what the log knows of the changes to one key on one side
// over the wire.
type keyFlights struct {
	n      int   // changes sent and not yet answered
	epoch  int64 // bumped as each change starts and ends
	unsure bool  // a change failed and may land at any time: the state stays unknown
}

// flight is one change to a side over the wire, from its call to its answer.
type flight struct {
	side       journal.Side
	key        string
	epoch      int64
	overlapped bool // another change to the key was in flight when it started
}

// begin notes a change to key on side about to be sent. It returns nil for
// a key the check does not own.
func (l *commitLog) begin(side journal.Side, key string) *flight {
	if !strings.HasPrefix(key, l.prefix) {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flights[side] == nil {
		l.flights[side] = map[string]*keyFlights{}
	}
	k := l.flights[side][key]
	if k == nil {
		k = &keyFlights{}
		l.flights[side][key] = k
	}
	k.n++
	k.epoch++
	return &flight{side: side, key: key, epoch: k.epoch, overlapped: k.n > 1}
}

// end logs the outcome of a change begin noted, value being what the side
// holds afterwards if the change landed. A change that ran alongside
// another one to the same key landed in an unknown order with it, and one
// that failed may land at any time: the state they leave is unknown.
func (l *commitLog) end(ctx context.Context, f *flight, how landing, value valueID) {
	if f == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.flights[f.side][f.key]
	overlapped := f.overlapped || k.epoch != f.epoch || k.n > 1
	k.n--
	k.epoch++
	if how == refused {
		return
	}
	c := commit{side: f.side, key: f.key, value: value, prev: l.current[f.side][f.key], prevOp: l.madeBy[f.side][f.key], at: l.now()}
	c.op, _ = ctx.Value(opKey{}).(int64)
	c.by, c.reconciler = ctx.Value(reconcilerKey{}).(reconcilerOf)
	c.when = time.Now()
	if how == unsure {
		c.uncertain = true
		k.unsure = true
	}
	if overlapped || k.unsure {
		c.prev, c.prevOp = valueUnknown, 0
	}
	now, madeBy := value, c.op
	if c.uncertain || overlapped || k.unsure {
		now, madeBy = valueUnknown, 0
	}
	if now == 0 {
		delete(l.current[f.side], f.key)
	} else {
		l.current[f.side][f.key] = now
	}
	l.madeBy[f.side][f.key] = madeBy
	l.commits = append(l.commits, c)
}
