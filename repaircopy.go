package failoverblob

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"hash"
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
// the write is conditional on it. source is closed. gate (nil: none) is
// called once the bytes are streamed, before the write commits: an error
// from it abandons the copy.
func (f *Failover) copyObject(ctx context.Context, src, dst *side, key string, attrs, prior *driver.Attributes, source *reader, gate func() error) (int64, error) {
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
		// A version from a clock that ran fast keeps, in the copy, when
		// it was first stored, which orders it.
		Metadata:    copyMetadata(attrs.Metadata, objectStamp(attrs), f.opts.MaxClockSkew),
		BeforeWrite: dst.writeIf(prior),
	}}
	// Not checked here: the side's portable layer checks srcMD5 (see
	// transfer), so it gets the ContentMD5 whatever its provider takes.
	if err := w.open(ctx, dst, false); err != nil {
		return 0, err
	}
	n, sum, err := transfer(w.sw[dst.id], r, src, attrs.Size, srcMD5, gate)
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
// bytes read and, where srcMD5 is nil, their MD5; a write that is not
// committed is aborted. gate (nil: none) must return nil for the write to
// commit.
//
// Where srcMD5 is known, sw was opened with it as its ContentMD5, and the
// side's portable layer (see bucketconv.Bucket), which hashes every byte
// it is given, refuses to commit bytes that do not match it: they are not
// hashed here a second time.
func transfer(sw *sideWriter, r io.Reader, src *side, size int64, srcMD5 []byte, gate func() error) (n int64, sum []byte, err error) {
	var h hash.Hash
	var dst io.Writer = sw
	if srcMD5 == nil {
		h = md5.New()
		dst = io.MultiWriter(sw, h)
	}
	n, rerr, werr := copyTo(dst, r)
	if h != nil {
		sum = h.Sum(nil)
	}
	switch {
	case rerr != nil || werr != nil:
		err = errors.Join(rerr, werr)
	case n != size:
		err = fmt.Errorf("read %d bytes of %d from the %s", n, size, src.id)
	case gate != nil:
		err = gate()
	}
	if err != nil {
		sw.abort(nil)
		return n, sum, err
	}
	err = sw.commit()
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return n, sum, fmt.Errorf("the %s refused the copy (its copy changed during repair, or the bytes read from the %s do not match the MD5 it reports, %x): %w", sw.s.id, src.id, srcMD5, err)
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
