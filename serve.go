package failoverblob

import (
	"context"
	"sync/atomic"
	"time"

	"gocloud.dev/blob/driver"
)

// openRead opens a reader of key for NewRangeReader: a side's reader,
// found as read does (hedged, where Options.HedgeAfter says), and copied
// into Options.Cache as it is read when the read is of the whole object;
// or, when no side that could answer is up, the cache's copy, if one may
// be served (see serveStale).
func (f *Failover) openRead(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	var fl *filling
	if f.stale != nil && f.stale.maxAge > 0 {
		fl = &filling{f: f, epoch: f.stale.epoch(key)}
		fl.before, fl.pending = f.idx.get(key)
	}
	var got answer
	var seen [2]atomic.Bool // the sides this read saw down
	err := f.read(ctx, key, sideRead{
		op: opRead,
		call: func(ctx context.Context, s *side) (any, error) {
			r, err := f.openReader(ctx, s, key, offset, length, opts)
			if err != nil {
				if s.outage(ctx, err) {
					seen[s.id].Store(true)
				}
				return nil, err
			}
			return r, nil
		},
		hedged:  true,
		release: func(r any) { _ = r.(*reader).Close() },
		got:     &got,
	})
	if err != nil {
		if sr := f.serveStale(key, offset, length, &seen, err); sr != nil {
			return sr, nil
		}
		return nil, err
	}
	r := got.v.(*reader)
	if fl != nil && !fl.whole(r, offset, length, got.s) {
		fl = nil
	}
	if got.stop == nil && fl == nil {
		return r, nil
	}
	return &servedReader{reader: r, stop: got.stop, fill: fl}, nil
}

// whole reports whether a read from offset of length bytes by r, from side
// s, reads the whole object and the object is small enough to copy; if so
// fl is made ready to copy it.
func (fl *filling) whole(r *reader, offset, length int64, s *side) bool {
	size := r.Attributes().Size
	if offset != 0 || (length >= 0 && length < size) || size > fl.f.stale.maxObject {
		return false
	}
	fl.s, fl.size = s, size
	fl.cp = cachedCopy{key: r.key, contentType: r.Attributes().ContentType, modTime: r.Attributes().ModTime, fetched: time.Now(), data: make([]byte, 0, size)}
	return true
}

// servedReader is a side's reader with what must happen as it is read and
// closed: a copy made for the cache, the end of a hedged read's context.
type servedReader struct {
	*reader
	stop context.CancelFunc // nil for a read that was not hedged
	fill *filling           // nil for a read not copied
}

func (r *servedReader) Read(p []byte) (int, error) {
	n, err := r.reader.Read(p)
	if r.fill != nil {
		r.fill.add(p[:n], err)
	}
	return n, err
}

func (r *servedReader) Close() error {
	err := r.reader.Close()
	if r.fill != nil {
		r.fill.finish()
	}
	if r.stop != nil {
		r.stop()
	}
	return err
}
