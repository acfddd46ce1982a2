package failoverblob

import (
	"context"
	"io"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
)

var _ driver.DownloaderAt = (*bucket)(nil)

// DownloadAt implements driver.DownloaderAt, so that a Download into an
// io.WriterAt with blob.ReaderOptions.AllowParallelDownload keeps the
// serving side's parallel download (the S3 and GCS transfer managers;
// Azure's needs the *os.File itself, which is not handed on, so Azure
// streams) instead of becoming one stream. The side is
// chosen as for any read, and a side that fails before any byte reached w
// is fallen over from as a read is.
//
// A side that fails, or loses the object, after bytes reached w is not
// followed by the other side, whose copy could differ in size and leave
// bytes of the first in w: the download fails with ErrUnavailable, and the
// caller downloads again. An error from w itself is returned as it is and
// is not counted against the side.
func (b *bucket) DownloadAt(ctx context.Context, key string, w io.WriterAt, opts *driver.ReaderOptions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	ro := &blob.ReaderOptions{
		BeforeRead:            guardHook(opts.BeforeRead, false),
		AllowParallelDownload: true,
		BufferSize:            opts.BufferSize,
		MaxConcurrency:        opts.MaxConcurrency,
	}
	f := b.f
	var cut error
	err := f.read(ctx, key, sideRead{op: opDownload, call: func(ctx context.Context, s *side) (any, error) {
		wrote, err := f.download(ctx, s, key, w, ro)
		if err != nil && wrote && (isNotFound(err) || s.outage(ctx, err)) {
			// Settled here: nil stops read from trying the other side.
			cut = unavailable(err, "the %s failed while %q was downloaded; download it again", s.id, key)
			return nil, nil
		}
		return nil, err
	}})
	if cut != nil {
		return cut
	}
	return err
}

// download runs one side's Download of key into w under the side's
// breaker. The first byte must arrive within FirstByteTimeout and each
// later one within IdleTimeout of the last; time spent in w's own methods
// does not count. wrote reports whether any byte reached w.
func (f *Failover) download(ctx context.Context, s *side, key string, w io.WriterAt, opts *blob.ReaderOptions) (wrote bool, err error) {
	t, err := s.allow(ctx, opDownload)
	if err != nil {
		return false, err
	}
	dctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	dst := &downloadDst{w: io.NewOffsetWriter(w, 0), wd: newWatchdog(f.opts.FirstByteTimeout, cancel), idle: f.opts.IdleTimeout}
	err = s.b.Download(dctx, key, dst, opts)
	dst.wd.stop()
	if dst.failed != nil && err != nil {
		// The caller's destination failed: its answer, not the side's.
		err = &hookError{err}
	}
	t.finish(err)
	return dst.wrote, err
}

// downloadDst is a Download destination that records whether anything was
// written to it and keeps a side's watchdog stopped while the caller's
// writer works. Parallel downloads call WriteAt concurrently.
type downloadDst struct {
	w    *io.OffsetWriter
	wd   watchdog
	idle time.Duration

	mu      sync.Mutex
	writing int // calls in progress
	wrote   bool
	failed  error // the first error from w
}

func (d *downloadDst) Write(p []byte) (int, error) {
	d.begin()
	n, err := d.w.Write(p)
	d.end(err)
	return n, err
}

func (d *downloadDst) WriteAt(p []byte, off int64) (int, error) {
	d.begin()
	n, err := d.w.WriteAt(p, off)
	d.end(err)
	return n, err
}

func (d *downloadDst) begin() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writing++
	d.wrote = true // a zero-length write leaves w as it was, but counts: it is rare
	d.wd.stop()
}

func (d *downloadDst) end(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writing--
	if err != nil && d.failed == nil {
		d.failed = err
	}
	if d.writing == 0 {
		d.wd.kick(d.idle)
	}
}
