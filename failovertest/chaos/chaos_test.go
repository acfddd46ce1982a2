package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
	"github.com/failoverblob/failoverblob/journal"
)

func TestValuesDecodeToTheWriteThatMadeThem(t *testing.T) {
	for _, size := range []int64{0, 1, valueHeaderLen, valueHeaderLen + 1, 1000, 1<<16 + 3} {
		want := valueID(size + 7)
		if size == 0 {
			want = 0
		}
		got, err := decodeValue(encodeValue(valueID(size+7), size))
		if err != nil || got != want {
			t.Errorf("size %d: decoded #%d, %v; want #%d", size, got, err, want)
		}
	}
}

func TestTornValuesDoNotDecode(t *testing.T) {
	a, b := encodeValue(1, 1000), encodeValue(2, 1000)
	cases := map[string][]byte{
		"torn between two writes": append(append([]byte{}, a[:500]...), b[500:]...),
		"truncated":               a[:999],
		"padded":                  append(append([]byte{}, a...), 0),
		"not a value":             bytes.Repeat([]byte("x"), 100),
	}
	for name, data := range cases {
		if id, err := decodeValue(data); err == nil {
			t.Errorf("%s: decoded as value #%d, want an error", name, id)
		}
	}
}

// runSeed runs one short seed against open and returns what it found.
func runSeed(t *testing.T, open openFunc) seedResult {
	t.Helper()
	return runSeedWith(t, Options{}, open)
}

// runSeedWith runs one short seed with o against open.
func runSeedWith(t *testing.T, o Options, open openFunc) seedResult {
	t.Helper()
	if o.Ops == 0 {
		o.Ops = 300
	}
	res := checkSeed(t, open, o.withDefaults(), 1)
	if res.err != nil {
		t.Fatal(res.err)
	}
	return res
}

// singleBucket opens no failover bucket at all: the primary alone, with a
// deadline on every call (a minute; a stream's, until its Close), so that
// calls to a side that hangs end as a failover bucket's do.
func singleBucket(_ context.Context, env Env) (Target, error) {
	d := bucketconv.Bucket(env.Primary)
	return Target{Bucket: blob.NewBucket(deadlines{d}), Reconcile: func(context.Context) (int, error) { return 0, nil }}, nil
}

// deadlines puts a deadline of a minute on every call to a bucket.
type deadlines struct{ driver.Bucket }

const callDeadline = time.Minute

func (b deadlines) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	ctx, cancel := context.WithTimeout(ctx, callDeadline)
	defer cancel()
	return b.Bucket.Attributes(ctx, key)
}

func (b deadlines) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	ctx, cancel := context.WithTimeout(ctx, callDeadline)
	defer cancel()
	return b.Bucket.ListPaged(ctx, opts)
}

func (b deadlines) Copy(ctx context.Context, dst, src string, opts *driver.CopyOptions) error {
	ctx, cancel := context.WithTimeout(ctx, callDeadline)
	defer cancel()
	return b.Bucket.Copy(ctx, dst, src, opts)
}

func (b deadlines) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	ctx, cancel := context.WithTimeout(ctx, callDeadline)
	defer cancel()
	return b.Bucket.Delete(ctx, key, opts)
}

func (b deadlines) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	ctx, cancel := context.WithTimeout(ctx, callDeadline)
	r, err := b.Bucket.NewRangeReader(ctx, key, offset, length, opts)
	if err != nil {
		cancel()
		return nil, err
	}
	return deadlineReader{r, cancel}, nil
}

func (b deadlines) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	ctx, cancel := context.WithTimeout(ctx, callDeadline)
	w, err := b.Bucket.NewTypedWriter(ctx, key, contentType, opts)
	if err != nil {
		cancel()
		return nil, err
	}
	return deadlineWriter{w, cancel}, nil
}

type deadlineReader struct {
	driver.Reader
	cancel context.CancelFunc
}

func (r deadlineReader) Close() error { defer r.cancel(); return r.Reader.Close() }

type deadlineWriter struct {
	driver.Writer
	cancel context.CancelFunc
}

func (w deadlineWriter) Close() error { defer w.cancel(); return w.Writer.Close() }

// outageOfSingleBucket tells an outage of a single bucket (every error
// with no code but the sides' refusal of a key) from an answer.
func outageOfSingleBucket(err error) bool {
	return gcerrors.Code(err) == gcerrors.Unknown && !errors.Is(err, errRefusedKey)
}

// everything is a fleet that restarts and crashes, on sides that refuse
// keys, with the checks of unavailable answers on.
var everything = Options{
	Ops: 600, RestartEvery: 30 * time.Second, Crashes: 0.5,
	Refused:       []string{"bad.attrs", strings.Repeat("long", 275)},
	RecoverWithin: time.Second, Unavailable: outageOfSingleBucket,
	RepeatDeletes: true,
}

// A single bucket, with no failover at all, loses nothing: it is only
// unavailable while it is down. The check must pass it, and the checks must
// have had something to check.
func TestCheckPassesASingleBucket(t *testing.T) {
	res := runSeedWith(t, Options{RepeatDeletes: true}, singleBucket)
	if len(res.violations) > 0 {
		t.Errorf("a single bucket: %d violations, want none; first: %s", len(res.violations), res.violations[0])
	}
	if res.report.KeysLinearizable == 0 || res.report.WritesAcked == 0 || res.report.RepeatedDeletes == 0 {
		t.Errorf("nothing was checked: %+v", res.report)
	}
}

// A single bucket passes when it is restarted and crashed, with its journal
// in memory or in a file, refuses some keys, and has its unavailable answers
// checked; and when two writers share it, one with a clock an hour fast.
func TestCheckPassesASingleBucketInEveryFleet(t *testing.T) {
	fleets := map[string]Options{
		"restarts":         everything,
		"journal files":    func() Options { o := everything; o.JournalFile = true; return o }(),
		"writers":          func() Options { o := everything; o.Writers, o.MaxClockSkew = 3, time.Second; return o }(),
		"fast clock":       func() Options { o := everything; o.Writers, o.FastClock = 2, time.Hour; return o }(),
		"writers restarts": func() Options { o := everything; o.Writers = 2; return o }(),
	}
	for name, o := range fleets {
		t.Run(name, func(t *testing.T) {
			res := runSeedWith(t, o, singleBucket)
			if len(res.violations) > 0 {
				t.Errorf("%d violations, want none; first: %s", len(res.violations), res.violations[0])
			}
			rep := res.report
			if rep.RefusedKeyOps == 0 || rep.WritesAcked == 0 || (o.RestartEvery > 0 && (rep.Restarts == 0 || rep.Crashes == 0)) || rep.Writers != o.withDefaults().Writers {
				t.Errorf("nothing was checked: %+v", rep)
			}
		})
	}
}

// A crash stops an instance's calls: a bucket that kept a write in its own
// memory until Close would lose it, and every instance reads and writes
// the sides only through the fenced views it was given.
func TestCrashStopsTheInstancesCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		r := newRun((&Options{Keys: 1}).withDefaults(), 1, singleBucket)
		defer func() {
			for _, b := range r.raw {
				_ = b.Close()
			}
		}()
		w := r.writers[0]
		if err := w.start(ctx); err != nil {
			t.Fatal(err)
		}
		old := w.acquire()
		b := old.target.Bucket
		wr, err := b.NewWriter(ctx, "chaos/k00", &blob.WriterOptions{ContentType: "text/plain"})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = wr.Write([]byte("in flight"))
		done := make(chan error)
		go func() { done <- w.restart(ctx, true, time.Second) }()
		synctest.Wait() // killed; the new instance is starting
		if err := wr.Close(); !errors.Is(err, errKilled) {
			t.Errorf("a write in flight at the crash: Close = %v, want errKilled", err)
		}
		if err := b.WriteAll(ctx, "chaos/k00", []byte("after"), nil); !errors.Is(err, errKilled) {
			t.Errorf("a write by the crashed instance: %v, want errKilled", err)
		}
		old.release() // the crashed instance is closed now
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if ok, _ := r.raw[0].Exists(ctx, "chaos/k00"); ok {
			t.Error("the crashed instance's write reached the side")
		}
		inst := w.acquire()
		if err := inst.target.Bucket.WriteAll(ctx, "chaos/k00", []byte("new"), nil); err != nil {
			t.Errorf("the next instance: %v", err)
		}
		inst.release()
		if err := r.closeWriters(); err != nil {
			t.Error(err)
		}
	})
}

// wrapped opens a Target whose bucket is the primary behind wrap.
func wrapped(wrap func(d driver.Bucket) driver.Bucket) openFunc {
	return func(_ context.Context, env Env) (Target, error) {
		d := bucketconv.Bucket(env.Primary)
		return Target{Bucket: blob.NewBucket(wrap(d)), Reconcile: func(context.Context) (int, error) { return 0, nil }}, nil
	}
}

// deleteSaysNil answers every delete with nil, whatever the bucket said.
type deleteSaysNil struct{ driver.Bucket }

func (b deleteSaysNil) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	_ = b.Bucket.Delete(ctx, key, opts)
	return nil
}

// A bucket that acknowledges every delete acknowledges a repeated delete
// and a delete of a key its side refuses.
func TestCheckCatchesDeletesOfNothingAcknowledged(t *testing.T) {
	o := everything
	o.RestartEvery = 0
	res := runSeedWith(t, o, wrapped(func(d driver.Bucket) driver.Bucket { return deleteSaysNil{d} }))
	if res.report.RepeatedDeletesAcked == 0 || res.report.RefusedAcked == 0 {
		t.Errorf("a bucket whose deletes all say nil: %d repeated and %d refused deletes acknowledged, want both > 0", res.report.RepeatedDeletesAcked, res.report.RefusedAcked)
	}
}

// staleReads serves every other read of a key that has been read before
// from the attributes it first saw, as a cache that is never refreshed
// would.
type staleReads struct {
	driver.Bucket
	mu    sync.Mutex
	first map[string]*driver.Attributes
	n     int
}

func (b *staleReads) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	a, err := b.Bucket.Attributes(ctx, key)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	if old, ok := b.first[key]; ok && b.n%2 == 0 {
		return old, nil
	}
	if err == nil && b.first[key] == nil {
		b.first[key] = a
	}
	return a, err
}

// A bucket whose reads go back to an old value is caught going back in
// time.
func TestCheckCatchesReadsGoingBack(t *testing.T) {
	res := runSeedWith(t, Options{Ops: 1000}, wrapped(func(d driver.Bucket) driver.Bucket {
		return &staleReads{Bucket: d, first: map[string]*driver.Attributes{}}
	}))
	if res.report.NonMonotonicReads == 0 {
		t.Errorf("a bucket serving stale attributes: no read going back found in %q", res.violations)
	}
}

// flaky fails one call in ten as unavailable, with no outage behind it.
type flaky struct {
	driver.Bucket
	n atomic.Int64
}

func (b *flaky) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	if b.n.Add(1)%10 == 0 {
		return nil, errors.New("flaky: unavailable")
	}
	return b.Bucket.Attributes(ctx, key)
}

// A bucket that answers unavailable with both sides up is caught.
func TestCheckCatchesUnavailableAnswersWhileQuiet(t *testing.T) {
	o := everything
	o.RestartEvery, o.Refused = 0, nil
	res := runSeedWith(t, o, wrapped(func(d driver.Bucket) driver.Bucket { return &flaky{Bucket: d} }))
	if res.report.UnavailableWhenQuiet == 0 {
		t.Errorf("a bucket unavailable with no outage: none found in %q", res.violations)
	}
}

// A stream opened on a side during a fault window carries the fault the
// Injector decided as it opened, past the heal: a write whose commit came
// after the heal (a Mirror-mode write waits on its journal entry first)
// hangs then, and a failover bucket's breaker rightly counts that against
// the side and stays open for its timeout. The side was quiet only from
// that failure on, so an answer of unavailable within RecoverWithin of it
// is no violation; with the same stream committing, it is one.
func TestCheckCountsAStreamThatFailsAfterTheHealAsPartOfTheFault(t *testing.T) {
	cases := []struct {
		name  string
		fault failovertest.Fault // set on the window's writes
		want  int                // unavailable answers while quiet
	}{
		{"its commit hangs", failovertest.Fault{Applied: true, Hang: true}, 0},
		{"it commits", failovertest.Fault{AfterBytes: 1 << 20}, 1}, // armed, but the stream ends first
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const recoverWithin, idle = 9 * time.Second, 3 * time.Second
				r, inst := startedRun(t, recoverWithin)
				r.sched.troubleBegins(journal.Primary, "write-applied-then-hang")
				r.in[journal.Primary].Set(failovertest.OpWrite, c.fault)
				// A hanging commit waits for the stream's context: the
				// failover bucket's idle watchdog.
				ctx, cancel := context.WithTimeout(context.Background(), idle)
				defer cancel()
				wr, err := inst.target.Bucket.NewWriter(ctx, "chaos/k00", &blob.WriterOptions{ContentType: "text/plain"})
				if err != nil {
					t.Fatal(err)
				}
				r.sched.healSide(journal.Primary)
				healed := time.Now()
				_, _ = wr.Write([]byte("value"))
				time.Sleep(idle / 2) // the commit waits
				_ = wr.Close()
				inst.release()
				time.Sleep(healed.Add(recoverWithin + time.Second).Sub(time.Now()))
				o := &op{index: 1, inst: inst, kind: opGet, key: "chaos/k00", start: time.Now(), end: time.Now(), out: outUnavailable}
				a := &analysis{r: r, ops: []*op{o}}
				a.checkAnswers()
				if got := a.report.UnavailableWhenQuiet; got != c.want {
					t.Errorf("a read answered unavailable RecoverWithin (%v) and a second after the heal: %d unavailable answers while quiet, want %d (violations %q)", recoverWithin, got, c.want, a.violations)
				}
				if err := r.closeWriters(); err != nil {
					t.Error(err)
				}
			})
		})
	}
}

// A bucket that keeps its objects in the memory of the instance loses them
// on every restart.
func TestCheckCatchesABucketThatForgetsOnRestart(t *testing.T) {
	o := Options{RestartEvery: 30 * time.Second, Ops: 600}
	res := runSeedWith(t, o, func(ctx context.Context, env Env) (Target, error) {
		return singleBucket(ctx, Env{Primary: memblob.OpenBucket(nil)})
	})
	if res.report.Restarts == 0 || res.report.LostWrites == 0 {
		t.Errorf("a bucket that forgets on restart: %d restarts, %d lost writes; want both > 0", res.report.Restarts, res.report.LostWrites)
	}
}

// A single bucket that claims to mirror leaves the secondary empty.
func TestCheckCatchesSidesThatDoNotConverge(t *testing.T) {
	res := runSeed(t, func(_ context.Context, env Env) (Target, error) {
		primary := env.Primary
		return Target{Bucket: primary, Reconcile: func(context.Context) (int, error) { return 0, nil }, Mirror: true}, nil
	})
	if !anyViolation(res, "does not hold it") {
		t.Errorf("a mirror that never writes the secondary: no convergence violation in %q", res.violations)
	}
}

// A reconciler that deletes what it finds loses acknowledged writes.
func TestCheckCatchesAReconcilerThatLosesWrites(t *testing.T) {
	res := runSeed(t, func(_ context.Context, env Env) (Target, error) {
		primary := env.Primary
		return Target{Bucket: primary, Reconcile: func(ctx context.Context) (int, error) {
			for i := range 8 {
				_ = primary.Delete(ctx, keyPrefix+"k0"+string(rune('0'+i)))
			}
			return 0, nil
		}}, nil
	})
	if res.report.LostWrites == 0 || res.report.StaleOverwrites == 0 {
		t.Errorf("a reconciler deleting everything: lost writes %d, stale overwrites %d; want both > 0", res.report.LostWrites, res.report.StaleOverwrites)
	}
}

// restoringOldValues opens the primary alone, with a reconciler that puts
// back the first value it saw of each key keys lists.
func restoringOldValues(keys func(ctx context.Context, primary *blob.Bucket) []string) openFunc {
	return func(_ context.Context, env Env) (Target, error) {
		primary := env.Primary
		// Each restore is recorded first, as a repair the secondary's
		// journal says the primary is missing.
		j := journal.NewBucket(env.Primary, env.Secondary, nil)
		var mu sync.Mutex
		first := map[string][]byte{}
		attrs := map[string]*blob.Attributes{}
		return Target{Bucket: primary, Reconcile: func(ctx context.Context) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, k := range keys(ctx, primary) {
				if old, ok := first[k]; ok {
					v := failoverblob.Version{Wall: env.Now().UnixNano(), Writer: "restorer"}
					_, _ = j.Append(ctx, journal.Entry{Key: k, Op: journal.Put, Version: v.String(), Missing: journal.Primary, Recorded: env.Now()})
					_ = primary.WriteAll(ctx, k, old, &blob.WriterOptions{Metadata: attrs[k].Metadata})
					continue
				}
				if data, err := primary.ReadAll(ctx, k); err == nil {
					if a, err := primary.Attributes(ctx, k); err == nil {
						first[k], attrs[k] = data, a
					}
				}
			}
			return 0, nil
		}}, nil
	}
}

// A reconciler that puts back the first value it saw of each key replaces
// newer objects with older ones.
func TestCheckCatchesAReconcilerThatRestoresOldValues(t *testing.T) {
	res := runSeed(t, restoringOldValues(func(context.Context, *blob.Bucket) []string {
		keys := make([]string, 8)
		for i := range keys {
			keys[i] = keyPrefix + "k0" + string(rune('0'+i))
		}
		return keys
	}))
	if res.report.StaleOverwrites == 0 {
		t.Errorf("a reconciler restoring old values: no stale overwrite found in %q", res.violations)
	}
	// The seed's story tells the first key the violations name: the
	// operations on it, the changes its sides took and who made them, the
	// journal entries of it stored and removed, and the fault windows, in
	// time order.
	key := regexp.MustCompile(keyPrefix + `k\d+`).FindString(res.violations[0])
	for _, want := range []string{"story of " + key, "op #", "primary: #", "by reconciler of writer 0 instance 0", " begins", " ends",
		"journal on the secondary: put of restorer's version at "} {
		if !strings.Contains(res.story, want) {
			t.Errorf("the story of a failed seed does not say %q:%s", want, res.story)
		}
	}
	if !storySorted(res.story) {
		t.Errorf("the story of a failed seed is not in time order:%s", res.story)
	}
}

// A story follows a long key that messages shorten to its first 60
// bytes.
func TestStoryFollowsAKeyTheMessagesShorten(t *testing.T) {
	long := keyPrefix + "k91-" + strings.Repeat("long", 275)
	a := &analysis{r: &run{prefix: keyPrefix, keys: []string{keyPrefix + "k00", long}, keyInfo: map[string]keyInfo{keyPrefix + "k00": {}, long: {}}}}
	o := &op{index: 7, key: long, kind: opDelete}
	if got := a.fullKey(regexp.MustCompile(keyPrefix + `[A-Za-z0-9._/-]+`).FindString(o.String())); got != long {
		t.Errorf("the key a message about %s names: %.80s..., want the whole key", o, got)
	}
	if got := a.fullKey(keyPrefix + "k00"); got != keyPrefix+"k00" {
		t.Errorf("fullKey(k00) = %q", got)
	}
}

// storySorted reports whether the times at the start of a story's lines
// never go back.
func storySorted(story string) bool {
	last := -1.0
	for _, line := range strings.Split(story, "\n") {
		var secs float64
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "%fs", &secs); err != nil {
			if strings.HasPrefix(line, "story of") {
				last = -1 // a new key's story
			}
			continue
		}
		if secs < last {
			return false
		}
		last = secs
	}
	return true
}

func anyViolation(res seedResult, substr string) bool {
	for _, v := range res.violations {
		if strings.Contains(v, substr) {
			return true
		}
	}
	return false
}

// An IfNotExist write overtaken by an acknowledged delete of its key
// through the same instance answers unavailable by design: the check does
// not count that answer as unavailable while quiet, but counts the same
// answer with no such delete, or with a delete that began before it.
func TestCheckExemptsAnIfNotExistWriteOvertakenByADelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, inst := startedRun(t, 9*time.Second)
		inst.release()
		time.Sleep(time.Minute) // no fault at all
		now := time.Now()
		put := func() *op {
			return &op{index: 1, inst: inst, kind: opPutIfAbsent, key: "chaos/k00", call: 10, ret: 20, start: now, end: now, out: outUnavailable}
		}
		del := func(call int64) *op {
			return &op{index: 2, inst: inst, kind: opDelete, key: "chaos/k00", call: call, ret: call + 1, start: now, end: now, out: outOK}
		}
		for _, c := range []struct {
			name string
			ops  []*op
			want int
		}{
			{"overtaken by a delete", []*op{put(), del(12)}, 0},
			{"no delete", []*op{put()}, 1},
			{"a delete begun before it", []*op{put(), del(5)}, 1},
		} {
			a := &analysis{r: r, ops: c.ops}
			a.checkAnswers()
			if got := a.report.UnavailableWhenQuiet; got != c.want {
				t.Errorf("%s: %d unavailable answers while quiet, want %d (violations %q)", c.name, got, c.want, a.violations)
			}
		}
		if err := r.closeWriters(); err != nil {
			t.Error(err)
		}
	})
}

// startedRun returns a run of one key over a single bucket, checked with
// recoverWithin, its writer started, and that writer's instance acquired.
// Its sides are closed when t ends; the caller closes the writers.
func startedRun(t *testing.T, recoverWithin time.Duration) (*run, *instance) {
	t.Helper()
	r := newRun((&Options{Keys: 1, RecoverWithin: recoverWithin}).withDefaults(), 1, singleBucket)
	t.Cleanup(func() {
		for _, b := range r.raw {
			_ = b.Close()
		}
	})
	w := r.writers[0]
	if err := w.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, w.acquire()
}
