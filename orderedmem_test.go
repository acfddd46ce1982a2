package failoverblob_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/drivertest"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/internal/bucketconv"
)

// openOrderedMem returns a memblob bucket that lists in time proportional
// to the page, not to the bucket: memblob sorts every key it holds for each
// page it lists, so listing a million journal entries a thousand at a time
// sorts a million keys a thousand times, a cost no cloud has. Everything
// else (storage, attributes, preconditions) is memblob's; the listing is
// served from a sorted index of the keys kept beside it, with each key's
// listing (size, MD5, modification time) as it was written. For the
// benchmarks of a long outage.
func openOrderedMem() *blob.Bucket { return blob.NewBucket(newOrderedMem()) }

func newOrderedMem() *orderedMem {
	return &orderedMem{base: memblob.OpenBucket(nil), present: map[string]*driver.ListObject{}}
}

// orderedMem is the driver behind openOrderedMem. Writes, copies and
// deletes update the index under mu together with memblob, so a listing
// sees exactly what memblob holds.
type orderedMem struct {
	base *blob.Bucket
	// commitDelay, if positive, delays each write's commit, as a cloud's
	// round trip delays a small object, which is sent when it is closed.
	commitDelay time.Duration

	mu      sync.Mutex
	sorted  []string                      // sorted; may hold keys since deleted, and repeats
	added   []string                      // keys added since sorted was last merged
	present map[string]*driver.ListObject // the keys memblob holds, as listed
	removed int                           // deletes since sorted was last compacted
}

var _ driver.Bucket = (*orderedMem)(nil)

func (b *orderedMem) ErrorCode(err error) gcerrors.ErrorCode { return gcerrors.Code(err) }
func (b *orderedMem) As(i any) bool                          { return b.base.As(i) }
func (b *orderedMem) ErrorAs(err error, i any) bool          { return b.base.ErrorAs(err, i) }
func (b *orderedMem) Close() error                           { return b.base.Close() }

func (b *orderedMem) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	a, err := b.base.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	return bucketconv.Attributes(a), nil
}

func (b *orderedMem) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	r, err := b.base.NewRangeReader(ctx, key, offset, length, bucketconv.ReaderOptions(opts))
	if err != nil {
		return nil, err
	}
	return orderedReader{r, &driver.ReaderAttributes{ContentType: r.ContentType(), ModTime: r.ModTime(), Size: r.Size()}}, nil
}

type orderedReader struct {
	*blob.Reader
	attrs *driver.ReaderAttributes
}

func (r orderedReader) Attributes() *driver.ReaderAttributes { return r.attrs }

func (b *orderedMem) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	o := bucketconv.WriterOptions(contentType, opts)
	o.ContentMD5 = opts.ContentMD5
	w, err := b.base.NewWriter(ctx, key, o)
	if err != nil {
		return nil, err
	}
	return &orderedWriter{Writer: w, b: b, ctx: ctx, key: key}, nil
}

type orderedWriter struct {
	*blob.Writer
	b   *orderedMem
	ctx context.Context
	key string
}

func (w *orderedWriter) Close() error {
	if d := w.b.commitDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
		}
	}
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	if err := w.Writer.Close(); err != nil {
		return err
	}
	return w.b.addLocked(w.ctx, w.key)
}

func (b *orderedMem) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.base.Copy(ctx, dstKey, srcKey, bucketconv.CopyOptions(opts)); err != nil {
		return err
	}
	return b.addLocked(ctx, dstKey)
}

func (b *orderedMem) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.base.DeleteWithOptions(ctx, key, bucketconv.DeleteOptions(opts)); err != nil {
		return err
	}
	delete(b.present, key)
	b.removed++
	return nil
}

func (b *orderedMem) SignedURL(ctx context.Context, key string, opts *driver.SignedURLOptions) (string, error) {
	return b.base.SignedURL(ctx, key, bucketconv.SignedURLOptions(opts))
}

// addLocked records key as written, with its listing.
func (b *orderedMem) addLocked(ctx context.Context, key string) error {
	a, err := b.base.Attributes(context.WithoutCancel(ctx), key)
	if err != nil {
		return err
	}
	if _, ok := b.present[key]; !ok {
		b.added = append(b.added, key)
	}
	b.present[key] = &driver.ListObject{Key: key, ModTime: a.ModTime, Size: a.Size, MD5: a.MD5}
	return nil
}

// ListPaged lists as memblob does (keys in order, a page token that is the
// last key of the page, directories collapsed under a delimiter), from the
// sorted index.
func (b *orderedMem) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tidyLocked()
	size := opts.PageSize
	if size <= 0 {
		size = 1000
	}
	from := opts.Prefix
	if t := string(opts.PageToken); t > from {
		from = t
	}
	var page driver.ListPage
	var last, lastDir string
	for _, key := range b.sorted[sortSearch(b.sorted, from):] {
		if !strings.HasPrefix(key, opts.Prefix) {
			break
		}
		listed, ok := b.present[key]
		if !ok || key == last || key <= string(opts.PageToken) {
			continue
		}
		last = key
		obj := &driver.ListObject{Key: key, ModTime: listed.ModTime, Size: listed.Size, MD5: listed.MD5}
		if opts.Delimiter != "" {
			if i := strings.Index(key[len(opts.Prefix):], opts.Delimiter); i >= 0 {
				dir := key[:len(opts.Prefix)+i+len(opts.Delimiter)]
				if dir == lastDir || dir <= string(opts.PageToken) {
					continue
				}
				lastDir = dir
				obj = &driver.ListObject{Key: dir, IsDir: true}
			}
		}
		if len(page.Objects) == size {
			page.NextPageToken = []byte(page.Objects[size-1].Key)
			return &page, nil
		}
		page.Objects = append(page.Objects, obj)
	}
	return &page, nil
}

// tidyLocked merges the keys added into the sorted index, and drops the
// deleted ones once they are many.
func (b *orderedMem) tidyLocked() {
	if len(b.added) > 0 {
		slices.Sort(b.added)
		merged := make([]string, 0, len(b.sorted)+len(b.added))
		i, j := 0, 0
		for i < len(b.sorted) || j < len(b.added) {
			if j == len(b.added) || i < len(b.sorted) && b.sorted[i] <= b.added[j] {
				merged = append(merged, b.sorted[i])
				i++
			} else {
				merged = append(merged, b.added[j])
				j++
			}
		}
		b.sorted, b.added = merged, nil
	}
	if b.removed > len(b.sorted)/2 {
		kept := b.sorted[:0]
		for _, k := range b.sorted {
			if _, ok := b.present[k]; ok && (len(kept) == 0 || kept[len(kept)-1] != k) {
				kept = append(kept, k)
			}
		}
		clear(b.sorted[len(kept):])
		b.sorted, b.removed = kept, 0
	}
}

func sortSearch(keys []string, from string) int {
	i, _ := slices.BinarySearch(keys, from)
	return i
}

// orderedMemHarness runs gocloud's conformance suite on openOrderedMem's
// driver, so that the benchmarks' listing is known to list as memblob does.
type orderedMemHarness struct{}

func (orderedMemHarness) MakeDriver(context.Context) (driver.Bucket, error) {
	return newOrderedMem(), nil
}
func (orderedMemHarness) MakeDriverForNonexistentBucket(context.Context) (driver.Bucket, error) {
	return nil, nil
}
func (orderedMemHarness) HTTPClient() *http.Client         { return nil }
func (orderedMemHarness) SupportsCopy() bool               { return true }
func (orderedMemHarness) SupportsNonSlashDelimiters() bool { return true }
func (orderedMemHarness) Close()                           {}

// SkipDownloadAt is true: the ordered bucket does not implement
// driver.DownloaderAt.
func (orderedMemHarness) SkipDownloadAt() bool { return true }

func TestOrderedMemConformance(t *testing.T) {
	drivertest.RunConformanceTests(t, func(context.Context, *testing.T) (drivertest.Harness, error) {
		return orderedMemHarness{}, nil
	}, nil)
}
