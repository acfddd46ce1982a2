package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"gocloud.dev/blob"

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

	drainMu sync.Mutex // one Drain at a time

	retractedMu sync.Mutex
	retracted   map[string]bool // journal entries withdrawn by this process

	closeOnce sync.Once
	closed    chan struct{}
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
	var o Options
	if opts != nil {
		o = *opts
	}
	o = o.withDefaults()
	f := &Failover{
		opts:   o,
		clock:  newClock(o.WriterID, o.Now),
		idx:    index{m: map[string]*pendingKey{}},
		closed: make(chan struct{}),

		retracted: map[string]bool{},
	}
	f.locks.init()
	for _, id := range []journal.Side{journal.Primary, journal.Secondary} {
		b := primary
		if id == journal.Secondary {
			b = secondary
		}
		f.sides[id] = newSide(id, b, o.Breaker, o.Logger)
	}
	entries, err := o.Journal.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("failoverblob: reading the journal: %w", err)
	}
	for _, e := range entries {
		v, _ := ParseVersion(e.Version)
		f.clock.Observe(v)
		f.idx.load(e, v)
	}
	f.bucket = blob.NewBucket(&bucket{f: f})
	return f, nil
}

// OpenBucket is New for callers that only need the *blob.Bucket; the
// Failover stays reachable through the bucket's As.
func OpenBucket(ctx context.Context, primary, secondary *blob.Bucket, opts *Options) (*blob.Bucket, error) {
	f, err := New(ctx, primary, secondary, opts)
	if err != nil {
		return nil, err
	}
	return f.Bucket(), nil
}

// Bucket returns the failover bucket: an ordinary *blob.Bucket.
func (f *Failover) Bucket() *blob.Bucket { return f.bucket }

// Primary returns the primary bucket as given to New, for inspection in tests
// and tools. Writing to it directly bypasses versions and the journal.
func (f *Failover) Primary() *blob.Bucket { return f.sides[journal.Primary].b }

// Secondary returns the secondary bucket as given to New; see Primary.
func (f *Failover) Secondary() *blob.Bucket { return f.sides[journal.Secondary].b }

// Close closes the failover bucket and both sides, and makes a running Run
// return. It is the same as closing the bucket.
func (f *Failover) Close() error { return f.bucket.Close() }

func (f *Failover) close() error {
	var err error
	f.closeOnce.Do(func() {
		close(f.closed)
		err = errors.Join(f.sides[0].b.Close(), f.sides[1].b.Close())
		if f.onClose != nil {
			err = errors.Join(err, f.onClose())
		}
	})
	return err
}

// record appends a journal entry saying side missing lacks the change, and
// counts it in the index. Callers hold the key's lock.
func (f *Failover) record(ctx context.Context, key string, op journal.Op, v Version, missing journal.Side, size int64) (string, error) {
	id, err := f.opts.Journal.Append(ctx, journal.Entry{
		Key: key, Op: op, Version: v.String(), Missing: missing, Size: size, Recorded: f.opts.Now(),
	})
	if err != nil {
		return "", fmt.Errorf("failoverblob: recording that the %s is missing %s of %q: %w", missing, op, key, err)
	}
	f.idx.added(key, missing, f.opts.Now())
	return id, nil
}

// retract removes an entry recorded for a change that then failed on every
// side, so a failed delete does not take effect later. Best effort: an entry
// left behind is verified by version before it is applied.
func (f *Failover) retract(key string, missing journal.Side, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.CallTimeout)
	defer cancel()
	f.retractedMu.Lock()
	f.retracted[id] = true // a Drain that listed it before must not apply it
	f.retractedMu.Unlock()
	if err := f.opts.Journal.Ack(ctx, id); err == nil {
		f.idx.acked(key, missing, 1, time.Time{})
	}
}

// isRetracted reports whether the entry was withdrawn after a Drain may have
// listed it. Callers hold the key's lock, which retract also held.
func (f *Failover) isRetracted(id string) bool {
	f.retractedMu.Lock()
	defer f.retractedMu.Unlock()
	return f.retracted[id]
}

// Options returns the bucket's options, with defaults filled in for the
// fields left zero.
func (f *Failover) Options() Options { return f.opts }
