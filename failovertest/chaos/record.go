package chaos

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/driverx"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
	"github.com/failoverblob/failoverblob/journal"
)

// The context keys by which the recorder tells who made a call to a side:
// one of the check's clients (and which of its operations), or the
// reconciler.
type (
	opKey         struct{}
	reconcilerKey struct{}
)

// commit is one change that reached a side: an object stored (value is its
// id) or deleted (value is zero). Over the wire, where a side's state is not
// always known, a value may be valueUnknown, and a change whose call failed
// is logged as uncertain: it may have reached the side, or may yet.
type commit struct {
	side       journal.Side
	key        string
	value      valueID // what the side holds afterwards; 0: nothing
	prev       valueID // what it held before; 0: nothing
	prevOp     int64   // the client operation that made the state before; 0: none or unknown
	op         int64   // the client operation that made it; 0: none
	reconciler bool    // made by a reconcile pass
	by         reconcilerOf
	uncertain  bool      // the call failed: the change may or may not take effect
	at         int64     // logical time of the history when it was made
	when       time.Time // the run's time (virtual, or real over the wire) when it was made
}

// reconcilerOf names the reconcile pass behind a call to a side: its
// writer and the writer's instance.
type reconcilerOf struct{ writer, instance int }

// valueUnknown is a side's state that the log cannot know: a change whose
// call failed may land at any time, and changes that ran at once landed in
// an unknown order.
const valueUnknown valueID = -1

// commitLog is the ground truth of both sides: every change to a key the
// check owns, in the order the sides applied it. Changes are applied under
// its lock, so each side's current state is exact.
type commitLog struct {
	mu      sync.Mutex
	now     func() int64 // the history's logical time
	prefix  string
	current [2]map[string]valueID
	madeBy  [2]map[string]int64 // the client operation behind each current state
	commits []commit
	flights [2]map[string]*keyFlights // over the wire: changes in flight, by side and key
	// entries are the journal's entries of the check's keys that reached
	// a side, and their removals (a journal kept on the sides).
	entries []entryChange
}

// entryChange is a journal entry of a key the check owns stored on a side
// (an append), or removed from it (an acknowledgement, or a withdrawal).
type entryChange struct {
	side       journal.Side
	entry      journal.Entry
	removed    bool
	op         int64 // the client operation that made it; 0: none
	reconciler bool
	by         reconcilerOf
	when       time.Time
}

func newCommitLog(prefix string) *commitLog {
	return &commitLog{prefix: prefix, current: [2]map[string]valueID{{}, {}}, madeBy: [2]map[string]int64{{}, {}}}
}

// apply runs change, which mutates key on side, and logs its effect if it
// succeeds. value reports what the side holds afterwards.
// value is nil for a delete. A change to a journal entry of a key the
// check owns is logged as an entryChange.
func (l *commitLog) apply(ctx context.Context, side journal.Side, key string, change func() error, value func() valueID) error {
	if e, _, ok := journal.EntryInName(key); ok && strings.HasPrefix(e.Key, l.prefix) {
		if err := change(); err != nil {
			return err
		}
		c := entryChange{side: side, entry: e, removed: value == nil, when: time.Now()}
		c.op, _ = ctx.Value(opKey{}).(int64)
		c.by, c.reconciler = ctx.Value(reconcilerKey{}).(reconcilerOf)
		l.mu.Lock()
		l.entries = append(l.entries, c)
		l.mu.Unlock()
		return nil
	}
	if !strings.HasPrefix(key, l.prefix) {
		return change()
	}
	if value == nil {
		value = func() valueID { return 0 }
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := change(); err != nil {
		return err
	}
	c := commit{side: side, key: key, value: value(), prev: l.current[side][key], at: l.now()}
	c.op, _ = ctx.Value(opKey{}).(int64)
	c.by, c.reconciler = ctx.Value(reconcilerKey{}).(reconcilerOf)
	c.when = time.Now()
	c.prevOp = l.madeBy[side][key]
	l.madeBy[side][key] = c.op
	if c.value == 0 {
		delete(l.current[side], key)
	} else {
		l.current[side][key] = c.value
	}
	l.commits = append(l.commits, c)
	return nil
}

func (l *commitLog) snapshot() []commit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]commit(nil), l.commits...)
}

// entriesOf returns the changes to the journal entries of key.
func (l *commitLog) entriesOf(key string) []entryChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []entryChange
	for _, c := range l.entries {
		if c.entry.Key == key {
			out = append(out, c)
		}
	}
	return out
}

// latency draws the virtual time each call to a side takes, so that calls
// overlap in time the way requests to a remote store do.
type latency struct {
	mu  sync.Mutex
	rng *rand.Rand
}

// call returns the time a small call takes: 1 to 20 ms.
func (l *latency) call() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Millisecond + time.Duration(l.rng.Int64N(int64(19*time.Millisecond)))
}

// transferQuantum is how many bytes a stream moves between two waits for
// their transfer time: every wait makes the whole synctest bubble settle,
// so waiting for each small chunk would cost far more than the bytes.
const transferQuantum = 256 << 10

// transfer adds n bytes to the count of a stream, and returns the time to
// wait for those moved since the last wait, at about 100 MB/s, once there
// are transferQuantum of them.
func (l *latency) transfer(count *int64, n int) time.Duration {
	*count += int64(n)
	if *count < transferQuantum {
		return 0
	}
	d := time.Duration(*count) * 10 * time.Nanosecond
	*count = 0
	return d
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recorder is a side as the check sees it: base with latency, and every
// change logged. It sits below the Injector, so a failed call that the
// Injector stops never reaches it, and an Applied one does.
//
// With conditional set it offers conditional writes and deletes (see
// Options.Conditional): a condition is checked against base and the change
// applied under mu, which every change to the side takes.
type recorder struct {
	base        *blob.Bucket
	side        journal.Side
	log         *commitLog
	lat         *latency
	conditional bool
	mu          sync.Mutex // held across a change, and the check of its condition
}

// errConditionFailed is a conditional write or delete whose object is no
// longer the one it was made on; its code is gcerrors.FailedPrecondition, as
// S3's 412 and GCS's generation mismatch are.
var errConditionFailed = errors.New("chaos: the object is not the one the condition names")

// condition is what a conditional write's or delete's hook (see
// conditions) hands the recorder: the object the change is conditional on,
// nil for none.
type condition struct {
	set   bool
	prior *driver.Attributes
}

// conditions are a recorder's conditional writes and deletes: each hook
// hands its condition to the recorder through the hook's asFunc.
type conditions struct{}

var (
	_ driverx.ConditionalWriter  = conditions{}
	_ driverx.ConditionalDeleter = conditions{}
)

func (conditions) hook(prior *driver.Attributes) func(func(any) bool) error {
	return func(as func(any) bool) error {
		var c *condition
		if as(&c) {
			c.set, c.prior = true, prior
		}
		return nil
	}
}

func (c conditions) WriteIf(prior *driver.Attributes) func(func(any) bool) error {
	return c.hook(prior)
}

func (c conditions) DeleteIf(prior *driver.Attributes) func(func(any) bool) error {
	if prior == nil {
		return nil
	}
	return c.hook(prior)
}

// conditionOf runs a change's hook (nil: none) with an asFunc that takes a
// condition, and returns the hook's error and the condition it set.
func conditionOf(hook func(func(any) bool) error) (condition, error) {
	var c condition
	if hook == nil {
		return c, nil
	}
	err := hook(func(i any) bool {
		p, ok := i.(**condition)
		if ok {
			*p = &c
		}
		return ok
	})
	return c, err
}

// check returns errConditionFailed unless key on base is still the object
// c names (absent, for a nil prior). Objects are told apart by ETag, MD5
// and metadata (each change writes a value and a version of its own). r.mu
// is held.
func (r *recorder) check(ctx context.Context, key string, c condition) error {
	if !c.set {
		return nil
	}
	a, err := r.base.Attributes(ctx, key)
	switch {
	case gcerrors.Code(err) == gcerrors.NotFound:
		if c.prior == nil {
			return nil
		}
		return errConditionFailed
	case err != nil:
		return err
	case c.prior == nil:
		return errConditionFailed
	}
	if a.ETag != c.prior.ETag || !bytes.Equal(a.MD5, c.prior.MD5) || !maps.Equal(a.Metadata, c.prior.Metadata) {
		return errConditionFailed
	}
	return nil
}

var (
	_ driver.Bucket = (*recorder)(nil)
	_ driver.Writer = (*recordingWriter)(nil)
)

func valueOf(md map[string]string) valueID {
	id, _ := strconv.ParseInt(md[valueMetadataKey], 10, 64)
	return valueID(id)
}

func (r *recorder) ErrorCode(err error) gcerrors.ErrorCode {
	if errors.Is(err, errConditionFailed) {
		return gcerrors.FailedPrecondition
	}
	return gcerrors.Code(err)
}

// As implements driver.Bucket: with conditional set, a
// *driverx.ConditionalWriter or *driverx.ConditionalDeleter reaches the
// recorder's conditions; any other type is base's.
func (r *recorder) As(i any) bool {
	if r.conditional {
		switch p := i.(type) {
		case *driverx.ConditionalWriter:
			*p = conditions{}
			return true
		case *driverx.ConditionalDeleter:
			*p = conditions{}
			return true
		}
	}
	return r.base.As(i)
}

func (r *recorder) ErrorAs(err error, i any) bool { return r.base.ErrorAs(err, i) }
func (r *recorder) Close() error                  { return nil }

func (r *recorder) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	if err := sleep(ctx, r.lat.call()); err != nil {
		return nil, err
	}
	a, err := r.base.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	return bucketconv.Attributes(a), nil
}

func (r *recorder) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	if err := sleep(ctx, r.lat.call()); err != nil {
		return nil, err
	}
	return bucketconv.ListPage(ctx, r.base, opts)
}

func (r *recorder) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	if err := sleep(ctx, r.lat.call()); err != nil {
		return nil, err
	}
	br, err := r.base.NewRangeReader(ctx, key, offset, length, bucketconv.ReaderOptions(opts))
	if err != nil {
		return nil, err
	}
	return &recordingReader{r: br, ctx: ctx, lat: r.lat, attrs: driver.ReaderAttributes{ContentType: br.ContentType(), ModTime: br.ModTime(), Size: br.Size()}}, nil
}

func (r *recorder) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	if err := sleep(ctx, r.lat.call()); err != nil {
		return nil, err
	}
	wo := bucketconv.WriterOptions(contentType, opts)
	wo.ContentMD5 = opts.ContentMD5
	rw := &recordingWriter{rec: r, ctx: ctx, key: key, value: valueOf(opts.Metadata)}
	if r.conditional {
		// The hook hands over its condition at Close; base's writer gets
		// none, and is aborted by cancelling its context.
		rw.before, wo.BeforeWrite = opts.BeforeWrite, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	w, err := r.base.NewWriter(wctx, key, wo)
	if err != nil {
		cancel()
		return nil, err
	}
	rw.w, rw.cancel = w, cancel
	return rw, nil
}

func (r *recorder) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	if err := sleep(ctx, r.lat.call()); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var value valueID
	return r.log.apply(ctx, r.side, dstKey, func() error {
		if err := r.base.Copy(ctx, dstKey, srcKey, bucketconv.CopyOptions(opts)); err != nil {
			return err
		}
		if a, err := r.base.Attributes(ctx, dstKey); err == nil {
			value = valueOf(a.Metadata)
		}
		return nil
	}, func() valueID { return value })
}

func (r *recorder) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	if err := sleep(ctx, r.lat.call()); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	do := bucketconv.DeleteOptions(opts)
	var before func(func(any) bool) error
	if r.conditional && do != nil {
		before, do.BeforeDelete = do.BeforeDelete, nil
	}
	return r.log.apply(ctx, r.side, key, func() error {
		c, err := conditionOf(before)
		if err != nil {
			return err
		}
		if err := r.check(ctx, key, c); err != nil {
			return err
		}
		return r.base.DeleteWithOptions(ctx, key, do)
	}, nil)
}

func (r *recorder) SignedURL(ctx context.Context, key string, opts *driver.SignedURLOptions) (string, error) {
	return r.base.SignedURL(ctx, key, bucketconv.SignedURLOptions(opts))
}

type recordingReader struct {
	r     *blob.Reader
	ctx   context.Context
	lat   *latency
	moved int64 // bytes read since the last wait
	attrs driver.ReaderAttributes
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if serr := sleep(r.ctx, r.lat.transfer(&r.moved, n)); serr != nil && err == nil {
		return n, serr
	}
	return n, err
}

func (r *recordingReader) Close() error                         { return r.r.Close() }
func (r *recordingReader) Attributes() *driver.ReaderAttributes { return &r.attrs }
func (r *recordingReader) As(i any) bool                        { return r.r.As(i) }

type recordingWriter struct {
	rec    *recorder
	w      *blob.Writer
	cancel context.CancelFunc // aborts w
	before func(func(any) bool) error
	ctx    context.Context
	key    string
	value  valueID
	moved  int64 // bytes written since the last wait
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if err := sleep(w.ctx, w.rec.lat.transfer(&w.moved, len(p))); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

// Close commits the object, unless the writer's context is done (as the
// Injector does to abort a write), in which case nothing is committed.
func (w *recordingWriter) Close() error {
	defer w.cancel()
	if err := sleep(w.ctx, w.rec.lat.call()); err != nil {
		w.cancel()
		_ = w.w.Close()
		return err
	}
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	return w.rec.log.apply(w.ctx, w.rec.side, w.key, func() error {
		c, err := conditionOf(w.before)
		if err == nil {
			err = w.rec.check(w.ctx, w.key, c)
		}
		if err != nil {
			w.cancel()
			_ = w.w.Close()
			return err
		}
		return w.w.Close()
	}, func() valueID { return w.value })
}
