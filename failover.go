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
	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
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
	// Now is the wall clock that versions and journal entries are stamped
	// from. Nil means time.Now. Tests set it to give writers skewed clocks.
	Now func() time.Time

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
	if o.Now == nil {
		o.Now = time.Now
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

// side is one of the two buckets with its breaker and what the status
// reports about it.
type side struct {
	id journal.Side
	b  *blob.Bucket  // as given to New; closed by Close
	d  driver.Bucket // b's driver, which calls go to (see bucketconv.DriverOf)
	br *circuit.Breaker

	mu        sync.Mutex
	since     time.Time
	lastErr   string
	lastErrAt time.Time
}

func newSide(id journal.Side, b *blob.Bucket, tmpl *circuit.Settings, log *slog.Logger) *side {
	d, _ := bucketconv.DriverOf(b)
	s := &side{id: id, b: b, d: d, since: time.Now()}
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
// context is ctx. The returned ticket's finish records the call's outcome.
func (s *side) allow(ctx context.Context) (ticket, error) {
	done, err := s.br.Allow(ctx)
	if err != nil {
		return ticket{}, fmt.Errorf("failoverblob: %w", err) // names the side
	}
	return ticket{s: s, ctx: ctx, done: done}, nil
}

// ticket is a call a side's breaker let through.
type ticket struct {
	s    *side
	ctx  context.Context
	done func(error)
}

// finish reports the call's outcome to the breaker, and keeps the last
// outage for the status. An error from the caller's own hook is the caller's
// answer: the side did not fail.
func (t ticket) finish(err error) {
	if err != nil {
		var he *hookError
		if errors.As(err, &he) {
			err = nil
		} else if t.s.br.IsOutage(t.ctx, err) {
			t.s.mu.Lock()
			t.s.lastErr, t.s.lastErrAt = redactURLs(err.Error()), time.Now()
			t.s.mu.Unlock()
		}
	}
	t.done(err)
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

// call runs fn against s's driver under the breaker and a deadline of
// timeout. The error carries the gcerrors code s's driver gives it.
func (s *side) call(ctx context.Context, timeout time.Duration, fn func(ctx context.Context) error) error {
	t, err := s.allow(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	err = s.coded(fn(cctx))
	cancel()
	t.finish(err)
	return err
}

// coded gives an error from s's driver the gcerrors code the driver means.
func (s *side) coded(err error) error { return bucketconv.Coded(s.d, err) }

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

// Unwrap returns ErrUnavailable only: the cause's gcerrors code (a
// watchdog's cancellation, a miss on the other side) must not become the
// error's code, which is Unknown. Cause returns the cause.
func (e *unavailableError) Unwrap() error { return ErrUnavailable }

// Cause returns the failure that made the call unavailable.
func (e *unavailableError) Cause() error { return e.cause }

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
	settled  bool      // holder was confirmed by reading both sides' versions
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
	// flights follows the keys with writes in flight, pending or not.
	flights map[string]*flight
	// committing counts, in Mirror mode, the changes of each key being
	// committed to the sides, which the sides may show apart meanwhile.
	committing map[string]int
}

// commitStarts counts a Mirror-mode change of key starting to commit to the
// sides; the returned function counts it done.
func (x *index) commitStarts(key string) func() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.committing == nil {
		x.committing = map[string]int{}
	}
	x.committing[key]++
	return func() {
		x.mu.Lock()
		defer x.mu.Unlock()
		if x.committing[key]--; x.committing[key] == 0 {
			delete(x.committing, key)
		}
	}
}

// flight is what the index follows of a key while writes of it are in
// flight: the newest change committed since the first of them opened.
type flight struct {
	writers     int
	latest      Version
	deleted     bool // latest is a delete
	conditional bool // latest is an IfNotExist write, which found the key absent
}

// begin counts a write of key opening. It is called before the write's
// version is stamped, so that every change committed after the stamp is
// seen by overtaken.
func (x *index) begin(key string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.flights == nil {
		x.flights = map[string]*flight{}
	}
	fl := x.flights[key]
	if fl == nil {
		fl = &flight{}
		x.flights[key] = fl
	}
	fl.writers++
}

// end counts a write of key closing.
func (x *index) end(key string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if fl := x.flights[key]; fl != nil {
		if fl.writers--; fl.writers == 0 {
			delete(x.flights, key)
		}
	}
}

// overtaken reports whether a change to key newer than v, a version stamped
// by a write in flight, has committed (in this process), and which. Such a
// change was stamped after the write began, so it committed while the
// write's flight was followed.
func (x *index) overtaken(key string, v Version) (newer bool, by flight) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if fl := x.flights[key]; fl != nil && fl.latest.Compare(v) > 0 {
		return true, *fl
	}
	return false, flight{}
}

// conditional records that the change of key at version v, just committed,
// was an IfNotExist write.
func (x *index) conditional(key string, v Version) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if fl := x.flights[key]; fl != nil && fl.latest.Compare(v) == 0 {
		fl.conditional = true
	}
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

// pending reports whether key has pending work.
func (x *index) pending(key string) bool {
	_, ok := x.get(key)
	return ok
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

// settle records that side holds the newest version of key that exists, as
// read from both sides, if the index still knows the key only from the
// journal as it did when latest was its newest change.
func (x *index) settle(key string, latest Version, side journal.Side) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p := x.m[key]; p != nil && p.known && !p.verified && !p.deleted && p.latest.Compare(latest) == 0 {
		p.holder, p.settled = side, true
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
	if fl := x.flights[key]; fl != nil && v.Compare(fl.latest) > 0 {
		fl.latest, fl.deleted, fl.conditional = v, deleted, false
	}
	p := x.m[key]
	if p == nil || (p.known && v.Compare(p.latest) < 0) {
		return
	}
	p.known, p.verified, p.latest, p.deleted, p.holder = true, true, v, deleted, holder
	p.size, p.modTime = size, time.Now()
}

// moved records that side to holds version v of key, the newest there is,
// before the reconciler removes the copy on the other side, so that reads
// that followed the index to that copy go to to instead.
func (x *index) moved(key string, v Version, to journal.Side) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p := x.m[key]; p != nil && p.known && !p.deleted && p.latest.Compare(v) <= 0 {
		p.latest, p.holder = v, to
	}
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

// unsettled returns the keys under prefix that may read differently on the
// two sides without the index knowing which is right: they have pending
// work of unknown outcome (changes that failed and may or may not have
// taken effect), or a change being committed.
func (x *index) unsettled(prefix string) map[string]bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	keys := map[string]bool{}
	for k, p := range x.m {
		if !p.known && strings.HasPrefix(k, prefix) {
			keys[k] = true
		}
	}
	for k := range x.committing {
		if strings.HasPrefix(k, prefix) {
			keys[k] = true
		}
	}
	return keys
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
// deletes with its repair. Keys share a fixed set of locks by hash, so
// locking allocates nothing; two keys that share one only wait for each
// other's commit. The locks are channels rather than mutexes because a
// commit holds its key's lock while it waits on a side: a goroutine waiting
// for a channel is durably blocked for testing/synctest, so tests in virtual
// time see the wait and move the clock on to the side's timeout, where a
// mutex wait would freeze the bubble.
type keyLocks [256]keyLock

// keyLock is one lock: a channel holding a token while locked.
type keyLock chan struct{}

// Unlock unlocks the lock.
func (k keyLock) Unlock() { <-k }

func (l *keyLocks) init() {
	for i := range l {
		l[i] = make(keyLock, 1)
	}
}

// lock locks key and returns the lock to unlock.
func (l *keyLocks) lock(key string) keyLock {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	k := l[h%uint32(len(l))]
	k <- struct{}{}
	return k
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
