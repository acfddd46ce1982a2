package failoverblob

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"

	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"
)

// copyObject streams key from src to dst, keeping its attributes and its
// version. attrs is what src reported for key when the copy was decided.
// Where it carries an MD5, the bytes read are verified against it before
// they are committed (and it is handed to dst, so a provider verifies what
// arrives): the copy is then of the very object attrs describes, or
// nothing, and source (a reader of key on src opened when attrs was read;
// nil: none) can be used. Where it does not, src's attributes are read again
// and must still show attrs' version before the object is opened, and the
// MD5 dst reports after the copy is compared with the bytes sent. If src
// changed since attrs was read, the copy is abandoned. prior is what dst
// held when the copy was decided (nil: nothing); where dst's provider can,
// the write is conditional on it. source is closed.
func (f *Failover) copyObject(ctx context.Context, src, dst *side, key string, attrs, prior *driver.Attributes, source *reader) (int64, error) {
	var srcMD5 []byte
	if len(attrs.MD5) == md5.Size {
		srcMD5 = attrs.MD5
	}
	r, err := f.openSource(ctx, src, key, attrs, srcMD5 != nil, source)
	if err != nil {
		return 0, err
	}
	defer func() { _ = r.Close() }()
	w := &writer{f: f, ctx: ctx, key: key, contentType: attrs.ContentType, opts: &driver.WriterOptions{
		CacheControl:       attrs.CacheControl,
		ContentDisposition: attrs.ContentDisposition,
		ContentEncoding:    attrs.ContentEncoding,
		ContentLanguage:    attrs.ContentLanguage,
		ContentMD5:         srcMD5,
		Metadata:           attrs.Metadata,
		BeforeWrite:        dst.writeIf(prior),
	}}
	if err := w.open(ctx, dst); err != nil {
		return 0, err
	}
	n, sum, err := transfer(w.sw[dst.id], r, src, attrs.Size, srcMD5)
	if err != nil || srcMD5 != nil {
		return n, err
	}
	return n, f.verifyStored(ctx, dst, key, sum)
}

// openSource returns a reader of key on src for a copy of the object attrs
// describes. With verified set (the bytes will be checked against attrs'
// MD5) source, if not nil, is that reader; otherwise source is closed, and
// the object is opened once its attributes show attrs' version again.
func (f *Failover) openSource(ctx context.Context, src *side, key string, attrs *driver.Attributes, verified bool, source *reader) (*reader, error) {
	if verified && source != nil {
		return source, nil
	}
	if source != nil {
		_ = source.Close()
	}
	if !verified {
		now, err := src.attributes(ctx, f.opts.CallTimeout, key)
		if err != nil {
			return nil, err
		}
		if got, want := versionOf(now.Metadata), versionOf(attrs.Metadata); got.Compare(want) != 0 {
			return nil, fmt.Errorf("the %s's copy changed during repair (version %s, expected %s)", src.id, got, want)
		}
	}
	return f.openReader(ctx, src, key, 0, -1, &driver.ReaderOptions{})
}

// transfer streams r, read from src, into sw, and commits it if what was
// read is size bytes with the MD5 srcMD5 (nil: unknown). It returns the
// bytes read and their MD5; a write that is not committed is aborted.
func transfer(sw *sideWriter, r io.Reader, src *side, size int64, srcMD5 []byte) (n int64, sum []byte, err error) {
	h := md5.New()
	n, rerr, werr := copyTo(io.MultiWriter(sw, h), r)
	sum = h.Sum(nil)
	switch {
	case rerr != nil || werr != nil:
		err = errors.Join(rerr, werr)
	case n != size:
		err = fmt.Errorf("read %d bytes of %d from the %s", n, size, src.id)
	case srcMD5 != nil && !bytes.Equal(sum, srcMD5):
		err = fmt.Errorf("MD5 of the bytes read from the %s is %x, it reports %x", src.id, sum, srcMD5)
	}
	if err != nil {
		sw.abort(nil)
		return n, sum, err
	}
	err = sw.commit()
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return n, sum, fmt.Errorf("the %s's copy changed during repair (conditional write refused): %w", sw.s.id, err)
	}
	return n, sum, err
}

// verifyStored compares the MD5 dst reports for key, if any, with sum, the
// MD5 of the bytes sent. A bad copy is removed, so that the next pass
// copies again rather than taking it for the newest version.
func (f *Failover) verifyStored(ctx context.Context, dst *side, key string, sum []byte) error {
	got, err := dst.attributes(ctx, f.opts.CallTimeout, key)
	if err != nil {
		return err
	}
	if len(got.MD5) == md5.Size && !bytes.Equal(got.MD5, sum) {
		_ = dst.delete(ctx, f.opts.CallTimeout, key, nil)
		return fmt.Errorf("MD5 mismatch after copying to the %s: stored %x, sent %x", dst.id, got.MD5, sum)
	}
	return nil
}
