package chaos

import (
	"context"
	"errors"
	"io"
	"sort"
	"sync"
	"time"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/journal"
)

// errKilled is what every call of a crashed instance gets, at once, from its
// sides and its journal: a dead process does no more I/O.
var errKilled = errors.New("chaos: the instance crashed and does no more I/O")

// fence stands between one instance and the sides and journal it shares with
// the others. Until the instance is killed every call passes; afterwards
// every call fails with errKilled without taking effect, except the calls
// already under way, which finish as requests already sent do.
//
// It also keeps the spans of the instance's calls to each side, which tell
// the probes its breakers let through after an outage (see checkAnswers).
type fence struct {
	mu        sync.Mutex
	dead      bool
	inJournal int           // journal calls under way
	drained   chan struct{} // closed once dead with no journal call under way
	spans     [2][]span     // by side: its calls, in the order they began
}

// span is one call to a side, from its start to its end (for a stream, to
// its Close).
type span struct {
	start, end time.Time
	kind       string // a fault window's kind (see faultKinds)
	// failed is when a stream first failed after it opened (a read, a
	// write or its Close failed, other than for its instance's crash);
	// zero if it did not.
	failed time.Time
}

// kill fails every call from now on. The returned channel is closed once no
// journal call is under way, after which the journal may be closed.
func (f *fence) kill() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dead = true
	ch := make(chan struct{})
	if f.inJournal == 0 {
		close(ch)
	} else {
		f.drained = ch
	}
	return ch
}

func (f *fence) isDead() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dead
}

// enterJournal lets a journal call through, counting it, unless the
// instance is dead.
func (f *fence) enterJournal() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return errKilled
	}
	f.inJournal++
	return nil
}

func (f *fence) leaveJournal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inJournal--; f.inJournal == 0 && f.drained != nil {
		close(f.drained)
		f.drained = nil
	}
}

// begin notes the start of a call to side, and returns the call's number
// among side's, for end and fail.
func (f *fence) begin(side journal.Side) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spans[side] = append(f.spans[side], span{start: time.Now()})
	return len(f.spans[side]) - 1
}

// end notes the end of call i to side.
func (f *fence) end(side journal.Side, i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spans[side][i].end = time.Now()
}

// fail notes that call i to side, a stream, failed now, unless it failed
// before.
func (f *fence) fail(side journal.Side, i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if x := &f.spans[side][i]; x.failed.IsZero() {
		x.failed = time.Now()
	}
}

// spansOf returns the spans of the calls to side that began in [from, to].
func (f *fence) spansOf(side journal.Side, from, to time.Time) []span {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.spans[side]
	i := sort.Search(len(s), func(i int) bool { return !s[i].start.Before(from) })
	j := sort.Search(len(s), func(i int) bool { return s[i].start.After(to) })
	return append([]span(nil), s[i:max(i, j)]...)
}

// failedStreams returns the streams the instance opened on side during one
// of faults and that failed, each from its start to when it failed, in the
// order they began.
func (f *fence) failedStreams(side journal.Side, faults []span) []span {
	f.mu.Lock()
	defer f.mu.Unlock()
	var failed []span
	for _, x := range f.spans[side] {
		if !x.failed.IsZero() && during(faults, x.start) {
			failed = append(failed, span{start: x.start, end: x.failed})
		}
	}
	return failed
}

// fencedJournal is an instance's view of its writer's journal.
type fencedJournal struct {
	j journal.Journal
	f *fence
}

var _ journal.Journal = (*fencedJournal)(nil)

func (j *fencedJournal) Append(ctx context.Context, e journal.Entry) (string, error) {
	if err := j.f.enterJournal(); err != nil {
		return "", err
	}
	defer j.f.leaveJournal()
	return j.j.Append(ctx, e)
}

func (j *fencedJournal) List(ctx context.Context) ([]journal.Entry, error) {
	if err := j.f.enterJournal(); err != nil {
		return nil, err
	}
	defer j.f.leaveJournal()
	return j.j.List(ctx)
}

func (j *fencedJournal) Ack(ctx context.Context, ids ...string) error {
	if err := j.f.enterJournal(); err != nil {
		return err
	}
	defer j.f.leaveJournal()
	return j.j.Ack(ctx, ids...)
}

// fencedSide is an instance's view of a side. Closing it leaves the side
// open; As reaches the side's (its conditional writes, say).
type fencedSide struct {
	driver.Bucket
	f    *fence
	side journal.Side
}

var (
	_ driver.Bucket = (*fencedSide)(nil)
	_ driver.Reader = (*fencedReader)(nil)
	_ driver.Writer = (*fencedWriter)(nil)
)

// Close leaves the side open for the other instances.
func (s *fencedSide) Close() error { return nil }

func (s *fencedSide) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	if s.f.isDead() {
		return nil, errKilled
	}
	defer s.f.end(s.side, s.f.begin(s.side))
	return s.Bucket.Attributes(ctx, key)
}

func (s *fencedSide) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	if s.f.isDead() {
		return nil, errKilled
	}
	defer s.f.end(s.side, s.f.begin(s.side))
	return s.Bucket.ListPaged(ctx, opts)
}

func (s *fencedSide) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	if s.f.isDead() {
		return errKilled
	}
	defer s.f.end(s.side, s.f.begin(s.side))
	return s.Bucket.Copy(ctx, dstKey, srcKey, opts)
}

func (s *fencedSide) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	if s.f.isDead() {
		return errKilled
	}
	defer s.f.end(s.side, s.f.begin(s.side))
	return s.Bucket.Delete(ctx, key, opts)
}

func (s *fencedSide) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	if s.f.isDead() {
		return nil, errKilled
	}
	i := s.f.begin(s.side)
	r, err := s.Bucket.NewRangeReader(ctx, key, offset, length, opts)
	if err != nil {
		s.f.end(s.side, i)
		return nil, err
	}
	return &fencedReader{Reader: r, f: s.f, side: s.side, i: i}, nil
}

// NewTypedWriter opens a writer whose write a crash abandons: the writer
// below gets a context of its own, cancelled (which aborts a gocloud
// driver's write) if the instance dies before the write is committed.
func (s *fencedSide) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	if s.f.isDead() {
		return nil, errKilled
	}
	i := s.f.begin(s.side)
	wctx, cancel := context.WithCancel(ctx)
	w, err := s.Bucket.NewTypedWriter(wctx, key, contentType, opts)
	if err != nil {
		cancel()
		s.f.end(s.side, i)
		return nil, err
	}
	return &fencedWriter{Writer: w, f: s.f, side: s.side, i: i, cancel: cancel}, nil
}

type fencedReader struct {
	driver.Reader
	f    *fence
	side journal.Side
	i    int // its call's number among side's
	once sync.Once
}

func (r *fencedReader) Read(p []byte) (int, error) {
	if r.f.isDead() {
		return 0, errKilled
	}
	n, err := r.Reader.Read(p)
	if err != nil && err != io.EOF {
		r.f.fail(r.side, r.i)
	}
	return n, err
}

func (r *fencedReader) Close() error {
	r.once.Do(func() { r.f.end(r.side, r.i) })
	return r.Reader.Close()
}

type fencedWriter struct {
	driver.Writer
	f      *fence
	side   journal.Side
	i      int // its call's number among side's
	cancel context.CancelFunc
	once   sync.Once
}

func (w *fencedWriter) Write(p []byte) (int, error) {
	if w.f.isDead() {
		return 0, w.abort()
	}
	n, err := w.Writer.Write(p)
	if err != nil {
		w.f.fail(w.side, w.i)
	}
	return n, err
}

func (w *fencedWriter) Close() error {
	defer w.once.Do(func() { w.f.end(w.side, w.i) })
	if w.f.isDead() {
		return w.abort()
	}
	err := w.Writer.Close()
	w.cancel()
	if err != nil {
		w.f.fail(w.side, w.i)
	}
	return err
}

// abort drops the write without committing it.
func (w *fencedWriter) abort() error {
	w.cancel()
	_ = w.Writer.Close()
	return errKilled
}
