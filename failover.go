package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/journal"
)

// Failover is the control surface of a failover bucket: its status, its
// reconciler, and Close. Reach it from New, or from the bucket with
// bucket.As(&f) where f is a *Failover.
type Failover struct {
	opts   Options
	sides  [2]*side
	clock  *clock
	idx    index
	locks  keyLocks
	bucket *blob.Bucket
	tel    *telemetry

	drainMu sync.Mutex // one Drain at a time
	// learning lets one learn at a time read the journal; a channel, so
	// that a read waiting for another's reading gives up with its context
	// (and waits durably under testing/synctest).
	learning chan struct{}
	// readingsBegun counts the readings of the journal begun; readingsTaken
	// is the number of the last one begun whose listing the index took in.
	readingsBegun, readingsTaken atomic.Int64
	instance                     string    // this instance's name in reconcile leases and probe canaries
	opened                       time.Time // when New was called, by Options.Now

	alongsideMu  sync.Mutex
	alongside    map[string]alongsideSeen // see alongsideHeld
	running      atomic.Int32             // Runs running
	journalTries retries                  // journalKnown's readings of the journal
	unsureTries  retries                  // state's readings of the journal for keys it is unsure of
	passes       atomic.Int64             // Drain passes completed
	lastPass     atomic.Int64             // when the last one completed, in Unix nanoseconds
	force        atomic.Int32             // the ForceMode (Force)
	// warnedNoRun and lastNoRunCheck pace the warning that work is pending
	// with no Run running (warnIfUnreconciled).
	warnedNoRun    atomic.Bool
	lastNoRunCheck atomic.Int64
	distinct       atomic.Bool  // the sides were found to be distinct storage (checkDistinct)
	leftBehind     atomic.Bool  // reconcile leases or delete markers may be left behind (tidyLeftovers)
	markersWritten atomic.Int64 // delete markers this instance began to write (tidyLeftovers)

	hedges hedgeBudget // hedged reads (hedge.go)
	stale  *staleCache // Options.Cache (stale.go); nil without one

	retractedMu sync.Mutex
	retracted   map[string]retraction // journal entries withdrawn by this process

	fastMu sync.Mutex
	fast   ClockStatus // versions from clocks that ran fast (see seen)

	closeOnce sync.Once
	closed    chan struct{}
	// stopRun, if set, stops the Run started by runInBackground and waits
	// for it.
	stopRun func()
	// onClose, if set, runs after the sides are closed: the URL opener
	// closes the journal file it opened.
	onClose func() error
}

// New returns a failover bucket over primary and secondary. It reads the
// journal once to learn which keys have pending work. The failover bucket
// owns both buckets from then on: closing it closes them. nil opts is the
// zero Options.
func New(ctx context.Context, primary, secondary *blob.Bucket, opts *Options) (*Failover, error) {
	if primary == nil || secondary == nil {
		return nil, errors.New("failoverblob: New needs a primary and a secondary bucket")
	}
	if primary == secondary {
		return nil, fmt.Errorf("%w: New was given the same bucket twice", ErrSameStorage)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.WriterID != "" {
		if err := checkWriterID(o.WriterID); err != nil {
			return nil, err
		}
	}
	o = o.withDefaults()
	if o.Journal == nil {
		o.Journal = journal.NewBucket(primary, secondary, &journal.BucketOptions{CallTimeout: o.CallTimeout})
	}
	f := &Failover{
		opts:   o,
		clock:  newClock(o.WriterID, o.Now),
		idx:    index{m: newPackedMap(0), skew: o.MaxClockSkew},
		closed: make(chan struct{}),

		learning: make(chan struct{}, 1),

		retracted: map[string]retraction{},
	}
	f.locks.init()
	f.hedges.fraction, f.hedges.floor = o.HedgeBudget, int64(o.HedgeFloor)
	f.stale = newStaleCache(o)
	f.leftBehind.Store(true)
	f.instance = newInstanceID(f.clock.writer)
	f.opened = o.Now()
	// Options reports what is in effect: the writer id chosen, and the
	// breakers' settings with their defaults (the caller's are not changed).
	f.opts.WriterID = f.clock.writer
	var bs circuit.Settings
	if o.Breaker != nil {
		bs = *o.Breaker
	}
	bs = bs.WithDefaults()
	f.opts.Breaker = &bs
	f.sides[journal.Primary] = newSide(journal.Primary, primary, o.Breaker, o.Logger)
	f.sides[journal.Secondary] = newSide(journal.Secondary, secondary, o.Breaker, o.Logger)
	f.Force(o.Force)
	// The journal tells which keys have pending work. A journal kept on
	// the sides that cannot list one of them is taken as far as it goes:
	// keys pending on the other are unknown until a pass lists it.
	if _, err := f.refresh(ctx); err != nil {
		if !errors.Is(err, journal.ErrPartial) {
			return nil, err
		}
		o.Logger.Warn("failoverblob: the journal could be read only in part", "err", err)
	}
	f.instrument() // once New cannot fail: Close unregisters what it registers
	f.bucket = blob.NewBucket(&bucket{f: f})
	return f, nil
}

// OpenBucket is New for callers that only need the *blob.Bucket, and, as
// a bucket opened by URL does, it runs the reconciler (Run) in the
// background until the bucket is closed; closing it stops Run and waits
// for it. The Failover stays reachable through the bucket's As. Use New to
// run Run yourself.
func OpenBucket(ctx context.Context, primary, secondary *blob.Bucket, opts *Options) (*blob.Bucket, error) {
	f, err := New(ctx, primary, secondary, opts)
	if err != nil {
		return nil, err
	}
	f.runInBackground()
	return f.Bucket(), nil
}

// runInBackground runs Run until the bucket is closed; Close stops it and
// waits for it before closing the sides.
func (f *Failover) runInBackground() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	f.stopRun = func() {
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
}

// Bucket returns the failover bucket: an ordinary *blob.Bucket.
func (f *Failover) Bucket() *blob.Bucket { return f.bucket }

// Close closes the failover bucket and both sides, and makes a running Run
// return. It is the same as closing the bucket.
func (f *Failover) Close() error { return f.bucket.Close() }

func (f *Failover) close() error {
	var err error
	f.closeOnce.Do(func() {
		close(f.closed)
		if f.stopRun != nil {
			f.stopRun()
		}
		err = errors.Join(f.sides[0].b.Close(), f.sides[1].b.Close(), f.tel.stop())
		if f.onClose != nil {
			err = errors.Join(err, f.onClose())
		}
	})
	return err
}

// Options returns the options in effect: those given to New with defaults
// filled in for the fields left zero, among them the writer id in use, the
// journal in use, and the breakers' settings with circuit's defaults (a nil
// Classifier there means each side classifies its errors as its bucket
// offers, or with circuit.DefaultClassifier).
func (f *Failover) Options() Options { return f.opts }
