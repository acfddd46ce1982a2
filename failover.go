package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/journal"
)

// ReservedPrefix starts every key the library keeps for itself (journal
// entries, probe canaries). Keys under it are invisible in listings and
// refused as user keys.
const ReservedPrefix = ".failover/"

// Mode says where writes go.
type Mode int

const (
	// Redirect (the default) writes to the primary, and to the secondary only
	// while the primary is down. The secondary holds temporary copies that the
	// reconciler moves to the primary and then removes.
	Redirect Mode = iota
	// Mirror writes every object to both sides in one pass over the stream.
	Mirror
)

// String returns "redirect" or "mirror".
func (m Mode) String() string {
	if m == Mirror {
		return "mirror"
	}
	return "redirect"
}

// AckPolicy says, in Mirror mode, when a write is acknowledged.
type AckPolicy int

const (
	// AckEither (the default) acknowledges a write once one side holds it and
	// a repair for the other side is recorded in the journal.
	AckEither AckPolicy = iota
	// AckBoth acknowledges a write only once both sides hold it. While one
	// side is down, writes fail with ErrUnavailable; a write that reached only
	// one side fails too, with a repair recorded so the sides converge.
	AckBoth
)

// String returns "either" or "both".
func (a AckPolicy) String() string {
	if a == AckBoth {
		return "both"
	}
	return "either"
}

var (
	// ErrUnavailable is returned (wrapped) when a call cannot be answered
	// because the side that could answer it is down: both sides failed, the
	// side holding a key's newest version is down, or a key missing from the
	// secondary while the primary is down in Redirect mode (a miss there is
	// not proof of absence). Test with errors.Is.
	ErrUnavailable = errors.New("failoverblob: unavailable")
	// ErrReservedKey is returned (wrapped, with code gcerrors.InvalidArgument)
	// for a key under ReservedPrefix.
	ErrReservedKey = errors.New("failoverblob: key is under the reserved prefix " + ReservedPrefix)
)

// Options configures a failover bucket. The zero value is ready to use and
// every field's zero value is documented.
type Options struct {
	// Mode says where writes go. The zero value is Redirect.
	Mode Mode
	// Ack is the acknowledgement policy in Mirror mode. The zero value is
	// AckEither. Ignored in Redirect mode.
	Ack AckPolicy

	// Journal records what each side is missing. Nil means an in-memory
	// journal, which is lost with the process: use a durable one in
	// production.
	Journal journal.Journal

	// Breaker configures the breaker of each side (its Name is set to
	// "primary" or "secondary"). Nil means circuit's documented defaults.
	Breaker *circuit.Settings

	// CallTimeout bounds each small call to a side (attributes, a list page,
	// delete, copy). Zero means 10 seconds.
	CallTimeout time.Duration
	// FirstByteTimeout bounds the time from opening a read on a side to its
	// first byte. Zero means 10 seconds.
	FirstByteTimeout time.Duration
	// IdleTimeout bounds the time a streamed read or write to a side may go
	// without progress (including the final commit of a write). Zero means
	// 30 seconds.
	IdleTimeout time.Duration

	// SpoolMemory is how many bytes of each streamed write in Redirect mode
	// are kept in memory so the write can be replayed to the secondary if the
	// primary fails part-way; bytes past it go to a temporary file. Zero
	// means 4 MiB; a negative value keeps nothing in memory.
	SpoolMemory int64
	// SpoolDir is where spool files are created. Empty means os.TempDir().
	SpoolDir string

	// WriterID names this writer in the versions it stamps. Empty means a
	// random id chosen when the bucket is opened.
	WriterID string

	// BestEffortList, in Redirect mode, makes a listing while the primary is
	// down return the secondary's objects merged with pending work instead of
	// failing with ErrUnavailable. The result may be partial.
	BestEffortList bool

	// ReconcileInterval is how often Run looks for pending work. Zero means
	// 10 seconds.
	ReconcileInterval time.Duration
	// ReconcileConcurrency is how many keys Drain repairs at once. Zero
	// means 4.
	ReconcileConcurrency int
	// OnRepair, if set, is called after each key the reconciler settles.
	// Calls are serialized, but repairs go on while one runs.
	OnRepair func(Repair)

	// Logger receives failovers, breaker changes and repairs. Nil discards
	// them.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.CallTimeout, 10*time.Second)
	def(&o.FirstByteTimeout, 10*time.Second)
	def(&o.IdleTimeout, 30*time.Second)
	def(&o.ReconcileInterval, 10*time.Second)
	switch {
	case o.SpoolMemory == 0:
		o.SpoolMemory = 4 << 20
	case o.SpoolMemory < 0:
		o.SpoolMemory = 0
	}
	if o.SpoolDir == "" {
		o.SpoolDir = os.TempDir()
	}
	if o.ReconcileConcurrency <= 0 {
		o.ReconcileConcurrency = 4
	}
	if o.Journal == nil {
		o.Journal = journal.NewMemory()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

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

	closeOnce sync.Once
	closed    chan struct{}
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
		clock:  newClock(o.WriterID),
		idx:    index{m: map[string]*pendingKey{}},
		closed: make(chan struct{}),
	}
	f.locks.m = map[string]*keyLock{}
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
	})
	return err
}

// side is one of the two buckets with its breaker and what the status
// reports about it.
type side struct {
	id journal.Side
	b  *blob.Bucket
	br *circuit.Breaker

	mu        sync.Mutex
	since     time.Time
	lastErr   string
	lastErrAt time.Time
}

func newSide(id journal.Side, b *blob.Bucket, tmpl *circuit.Settings, log *slog.Logger) *side {
	s := &side{id: id, b: b, since: time.Now()}
	var st circuit.Settings
	if tmpl != nil {
		st = *tmpl
	}
	st.Name = id.String()
	user := st.OnStateChange
	st.OnStateChange = func(name string, from, to circuit.State) {
		s.mu.Lock()
		s.since = time.Now()
		s.mu.Unlock()
		log.Warn("failoverblob: breaker changed state", "side", name, "from", from.String(), "to", to.String())
		if user != nil {
			user(name, from, to)
		}
	}
	s.br = circuit.New(&st)
	return s
}

// allow asks the side's breaker for a call on behalf of a caller whose
// context is ctx. The returned done records the call's outcome; it also keeps
// the last outage for the status.
func (s *side) allow(ctx context.Context) (func(error), error) {
	done, err := s.br.Allow(ctx)
	if err != nil {
		return nil, fmt.Errorf("failoverblob: %w", err) // names the side
	}
	return func(err error) {
		var he *hookError
		if errors.As(err, &he) {
			err = nil // the side did not fail; the caller's hook did
		}
		if err != nil && s.br.IsOutage(ctx, err) {
			s.mu.Lock()
			s.lastErr, s.lastErrAt = redactURLs(err.Error()), time.Now()
			s.mu.Unlock()
		}
		done(err)
	}, nil
}

// urlQuery matches the query string of a URL in an error message, where a
// signature or token would be.
var urlQuery = regexp.MustCompile(`(https?://[^\s?"']*)\?[^\s"']*`)

// redactURLs drops query strings from URLs in s, so that an error kept for
// the status never carries a signature.
func redactURLs(s string) string { return urlQuery.ReplaceAllString(s, "$1?REDACTED") }

// outage reports whether err, from a call to s for a caller whose context is
// ctx, means s is down (including its breaker being open).
func (s *side) outage(ctx context.Context, err error) bool {
	var he *hookError
	return err != nil && !errors.As(err, &he) && (errors.Is(err, circuit.ErrOpen) || s.br.IsOutage(ctx, err))
}

// hookError marks an error returned by one of the caller's Before* hooks:
// the caller's answer, never an outage.
type hookError struct{ err error }

func (e *hookError) Error() string { return e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

// guardHook wraps a caller's Before* hook so its errors are not taken for
// outages. With once set (calls that reach both sides in Mirror mode) the
// hook runs only for the first side the call reaches, as a caller of a single
// bucket expects.
func guardHook(fn func(func(any) bool) error, once bool) func(func(any) bool) error {
	if fn == nil {
		return nil
	}
	var called atomic.Bool
	return func(as func(any) bool) error {
		if once && called.Swap(true) {
			return nil
		}
		if err := fn(as); err != nil {
			return &hookError{err}
		}
		return nil
	}
}

// call runs fn against s under the breaker and a deadline of timeout.
func (s *side) call(ctx context.Context, timeout time.Duration, fn func(ctx context.Context) error) error {
	done, err := s.allow(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	err = fn(cctx)
	cancel()
	done(err)
	return err
}

// unavailableError is what a caller gets when no side could answer. It
// matches ErrUnavailable and wraps the failure that caused it.
type unavailableError struct {
	msg   string
	cause error
}

func (e *unavailableError) Error() string {
	if e.cause == nil {
		return "failoverblob: " + e.msg
	}
	return "failoverblob: " + e.msg + ": " + e.cause.Error()
}

func (e *unavailableError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrUnavailable}
	}
	return []error{ErrUnavailable, e.cause}
}

func unavailable(cause error, format string, args ...any) error {
	return &unavailableError{msg: fmt.Sprintf(format, args...), cause: cause}
}

// checkKey refuses keys the library reserves, and keys that are not valid
// UTF-8 (which the portable layer already refuses for most calls).
func checkKey(key string) error {
	if strings.HasPrefix(key, ReservedPrefix) {
		return fmt.Errorf("%w: %q", ErrReservedKey, key)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("failoverblob: key is not valid UTF-8: %q", key)
	}
	return nil
}

// pendingKey is what the index knows about a key with unacknowledged journal
// entries: how many there are per missing side, and the newest committed
// change, which decides where the key is read from.
type pendingKey struct {
	entries  [2]int    // unacknowledged entries, by missing side
	oldest   time.Time // when the oldest of them was recorded
	known    bool      // a change below is known (committed, or loaded from the journal)
	verified bool      // the change was committed by this process, not only read from the journal
	latest   Version
	deleted  bool
	holder   journal.Side // the side holding latest, when !deleted
	size     int64
	modTime  time.Time
}

// index is the in-memory view of pending work, so that calls on keys with
// nothing pending cost no journal I/O.
type index struct {
	mu sync.RWMutex
	m  map[string]*pendingKey
}

// get returns a copy of the key's entry.
func (x *index) get(key string) (pendingKey, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	p, ok := x.m[key]
	if !ok {
		return pendingKey{}, false
	}
	return *p, true
}

func (x *index) entry(key string, at time.Time) *pendingKey {
	p := x.m[key]
	if p == nil {
		p = &pendingKey{oldest: at}
		x.m[key] = p
	}
	if at.Before(p.oldest) {
		p.oldest = at
	}
	return p
}

// load adds an entry read from the journal when the bucket opens. The newest
// entry of a key is taken as its state until a commit proves otherwise.
func (x *index) load(e journal.Entry, v Version) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p := x.entry(e.Key, e.Recorded)
	p.entries[e.Missing]++
	if !p.known || v.Compare(p.latest) > 0 {
		p.known, p.latest, p.deleted, p.holder = true, v, e.Op == journal.Delete, e.Missing.Other()
		p.size, p.modTime = e.Size, e.Recorded
	}
}

// added counts an entry just appended.
func (x *index) added(key string, missing journal.Side, at time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.entry(key, at).entries[missing]++
}

// commit records a committed change to a key that has pending entries; keys
// without any are not tracked.
func (x *index) commit(key string, v Version, deleted bool, holder journal.Side, size int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p := x.m[key]
	if p == nil || (p.known && v.Compare(p.latest) < 0) {
		return
	}
	p.known, p.verified, p.latest, p.deleted, p.holder = true, true, v, deleted, holder
	p.size, p.modTime = size, time.Now()
}

// acked drops n acknowledged entries for the key's missing side, and the key
// itself once nothing is pending. Entries that remain were recorded after
// listedAt (when the acknowledged ones were read from the journal), so the
// key's oldest pending time moves up to it.
func (x *index) acked(key string, missing journal.Side, n int, listedAt time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p := x.m[key]
	if p == nil {
		return
	}
	p.entries[missing] = max(0, p.entries[missing]-n)
	if p.entries[0] == 0 && p.entries[1] == 0 {
		delete(x.m, key)
	} else if p.entries[missing.Other()] == 0 && listedAt.After(p.oldest) {
		p.oldest = listedAt
	}
}

// snapshot returns the keys with a known state under prefix, sorted, with
// their state.
func (x *index) snapshot(prefix string) ([]string, map[string]pendingKey) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var keys []string
	states := map[string]pendingKey{}
	for k, p := range x.m {
		if p.known && strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
			states[k] = *p
		}
	}
	sort.Strings(keys)
	return keys, states
}

// stats returns the number of pending entries and when the oldest was
// recorded.
func (x *index) stats() (n int, oldest time.Time) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, p := range x.m {
		n += p.entries[0] + p.entries[1]
		if oldest.IsZero() || p.oldest.Before(oldest) {
			oldest = p.oldest
		}
	}
	return n, oldest
}

// keyLocks serializes, within one process, the commits of a key's writes and
// deletes with its repair.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns the unlock function.
func (l *keyLocks) lock(key string) func() {
	l.mu.Lock()
	k := l.m[key]
	if k == nil {
		k = &keyLock{}
		l.m[key] = k
	}
	k.refs++
	l.mu.Unlock()
	k.mu.Lock()
	return func() {
		k.mu.Unlock()
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
}

// record appends a journal entry saying side missing lacks the change, and
// counts it in the index. Callers hold the key's lock.
func (f *Failover) record(ctx context.Context, key string, op journal.Op, v Version, missing journal.Side, size int64) (string, error) {
	id, err := f.opts.Journal.Append(ctx, journal.Entry{
		Key: key, Op: op, Version: v.String(), Missing: missing, Size: size, Recorded: time.Now(),
	})
	if err != nil {
		return "", fmt.Errorf("failoverblob: recording that the %s is missing %s of %q: %w", missing, op, key, err)
	}
	f.idx.added(key, missing, time.Now())
	return id, nil
}

// retract removes an entry recorded for a change that then failed on every
// side, so a failed delete does not take effect later. Best effort: an entry
// left behind is verified by version before it is applied.
func (f *Failover) retract(key string, missing journal.Side, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.CallTimeout)
	defer cancel()
	if err := f.opts.Journal.Ack(ctx, id); err == nil {
		f.idx.acked(key, missing, 1, time.Time{})
	}
}
