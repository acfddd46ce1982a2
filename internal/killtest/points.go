//go:build unix

package killtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
	"github.com/failoverblob/failoverblob/journal"
)

// points counts the kill points a child passes and kills the child at the
// chosen one.
//
// A kill point is a moment between two changes to storage: just before and
// just after a commit or a delete on a side, after the first bytes of a
// stream have gone into a side's temporary file, and before and after a
// journal append or acknowledgement. What a new process finds depends only
// on which changes were made, so these points reach the states a kill can
// leave in the buckets and the journal; what a kill inside one journal
// call could leave (the file journal's compaction, which needs thousands
// of entries) is not reached.
//
// A kill never lands inside a call to a side: storage calls hold mu for
// reading, and the kill takes it for writing. A cloud provider's PUT or
// DELETE happens whole or not at all; fileblob's do not (a commit writes the
// attributes file before renaming the data into place), and a kill inside
// one would tear the stand-in, not the library.
//
// The kill point is the killAt-th point on path (any path if path is
// empty), or, should the child not get that far on that path, the
// fallback-th point of all.
type points struct {
	path     string
	killAt   int64
	fallback int64
	steps    atomic.Int64 // points passed
	onPath   atomic.Int64 // points passed on path
	mu       sync.RWMutex
	log      *opLog
}

// pathKey tags a context with the path of the library a call is on
// (write, delete, read, repair, open), for naming kill points.
type pathKey struct{}

func onPath(ctx context.Context, path string) context.Context {
	return context.WithValue(ctx, pathKey{}, path)
}

func pathOf(ctx context.Context) string {
	if p, ok := ctx.Value(pathKey{}).(string); ok {
		return p
	}
	return "background" // a call the library makes with a context of its own
}

// at counts a kill point and kills the process if it is the chosen one.
func (p *points) at(ctx context.Context, what string) {
	path := pathOf(ctx)
	hit := p.steps.Add(1) == p.fallback
	if p.path == "" || p.path == path {
		hit = hit || p.onPath.Add(1) == p.killAt
	}
	if hit {
		p.kill(path + ": " + what)
	}
}

// kill logs the point and sends SIGKILL to the process, once no call to a
// side is in progress. It does not return.
func (p *points) kill(point string) {
	p.mu.Lock()
	p.log.killed(point)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}

// object names what a key is for kill points: a user object, a journal
// entry, a reconcile lease, the marker that checks the sides are distinct
// storage, an active probe's canary, or another reserved object.
func object(key string) string {
	switch {
	case strings.HasPrefix(key, journal.BucketPrefix):
		return "journal entry"
	case strings.HasPrefix(key, failoverblob.ReservedPrefix+"leases/"):
		return "lease"
	case strings.HasPrefix(key, failoverblob.ReservedPrefix+"identity/"):
		return "identity marker"
	case strings.HasPrefix(key, failoverblob.ReservedPrefix+"probe/"):
		return "probe canary"
	case strings.HasPrefix(key, failoverblob.ReservedPrefix):
		return "reserved object"
	}
	return "object"
}

// pointed is a driver.Bucket over one side's storage with kill points
// around every change to it.
type pointed struct {
	p    *points
	side string
	d    driver.Bucket
}

// bucket returns b, the storage of side, with kill points. Closing
// the result does not close b.
func (p *points) bucket(side journal.Side, b *blob.Bucket) *blob.Bucket {
	return blob.NewBucket(&pointed{p: p, side: side.String(), d: bucketconv.Bucket(b)})
}

var _ driver.Bucket = (*pointed)(nil)

func (b *pointed) ErrorCode(err error) gcerrors.ErrorCode { return b.d.ErrorCode(err) }
func (b *pointed) As(i any) bool                          { return b.d.As(i) }
func (b *pointed) ErrorAs(err error, i any) bool          { return b.d.ErrorAs(err, i) }
func (b *pointed) Close() error                           { return nil }

func (b *pointed) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	return b.d.Attributes(ctx, key)
}

func (b *pointed) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	return b.d.ListPaged(ctx, opts)
}

func (b *pointed) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	return b.d.NewRangeReader(ctx, key, offset, length, opts)
}

func (b *pointed) SignedURL(ctx context.Context, key string, opts *driver.SignedURLOptions) (string, error) {
	return b.d.SignedURL(ctx, key, opts)
}

// change runs fn, a change to storage, between the kill points before and
// after it.
func (b *pointed) change(ctx context.Context, what string, fn func() error) error {
	b.p.at(ctx, fmt.Sprintf("before %s %s", b.side, what))
	b.p.mu.RLock()
	err := fn()
	b.p.mu.RUnlock()
	b.p.at(ctx, fmt.Sprintf("after %s %s", b.side, what))
	return err
}

func (b *pointed) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	return b.change(ctx, "delete of "+object(key), func() error { return b.d.Delete(ctx, key, opts) })
}

func (b *pointed) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	return b.change(ctx, "copy to "+object(dstKey), func() error { return b.d.Copy(ctx, dstKey, srcKey, opts) })
}

func (b *pointed) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	b.p.mu.RLock()
	w, err := b.d.NewTypedWriter(ctx, key, contentType, opts)
	b.p.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	return &pointedWriter{b: b, ctx: ctx, what: object(key), w: w}, nil
}

// pointedWriter is a write to a side with a kill point after its first
// bytes and around its commit.
type pointedWriter struct {
	b       *pointed
	ctx     context.Context
	what    string
	w       driver.Writer
	written bool
}

func (w *pointedWriter) Write(p []byte) (int, error) {
	w.b.p.mu.RLock()
	n, err := w.w.Write(p)
	w.b.p.mu.RUnlock()
	if !w.written && n > 0 {
		w.written = true
		w.b.p.at(w.ctx, fmt.Sprintf("%s write of %s part-way", w.b.side, w.what))
	}
	return n, err
}

func (w *pointedWriter) Close() error {
	return w.b.change(w.ctx, "commit of "+w.what, w.w.Close)
}

// pointedJournal is a journal with kill points around its appends and
// acknowledgements.
type pointedJournal struct {
	p *points
	j journal.Journal
}

var _ journal.Journal = (*pointedJournal)(nil)

func (j *pointedJournal) Append(ctx context.Context, e journal.Entry) (string, error) {
	j.p.at(ctx, "before journal append")
	id, err := j.j.Append(ctx, e)
	j.p.at(ctx, "after journal append")
	return id, err
}

func (j *pointedJournal) List(ctx context.Context) ([]journal.Entry, error) { return j.j.List(ctx) }

func (j *pointedJournal) Ack(ctx context.Context, ids ...string) error {
	j.p.at(ctx, "before journal ack")
	err := j.j.Ack(ctx, ids...)
	j.p.at(ctx, "after journal ack")
	return err
}
