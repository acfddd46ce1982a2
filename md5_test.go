package failoverblob_test

import (
	"context"
	"crypto/md5"
	"strings"
	"sync"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/driverx"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
	"github.com/failoverblob/failoverblob/journal"
)

// md5Side is a side's driver that says, when offers is set, whether its
// provider takes a write's MD5 (driverx.MD5Taker), and keeps how each
// write of key "k" was given the MD5: "ContentMD5", "context"
// (driverx.WithWriteMD5) or "none".
type md5Side struct {
	driver.Bucket
	offers, takes bool

	mu  sync.Mutex
	got []string
}

func (s *md5Side) As(i any) bool {
	if p, ok := i.(*driverx.MD5Taker); ok && s.offers {
		*p = s
		return true
	}
	return s.Bucket.As(i)
}

func (s *md5Side) TakesMD5() bool { return s.takes }

func (s *md5Side) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	if key == "k" {
		how := "none"
		switch {
		case len(opts.ContentMD5) > 0:
			how = "ContentMD5"
		case len(driverx.WriteMD5(ctx)) > 0:
			how = "context"
		}
		s.mu.Lock()
		s.got = append(s.got, how)
		s.mu.Unlock()
	}
	return s.Bucket.NewTypedWriter(ctx, key, contentType, opts)
}

// md5Rig is a failover bucket over two md5Sides, each over a memblob
// bucket behind a fault injector.
type md5Rig struct {
	b      *blob.Bucket
	raw    [2]*blob.Bucket
	sides  [2]*md5Side
	faults [2]*failovertest.Injector
}

func newMD5Rig(t *testing.T, mode failoverblob.Mode, offers, takes bool) *md5Rig {
	t.Helper()
	r := &md5Rig{}
	var buckets [2]*blob.Bucket
	for i := range buckets {
		r.raw[i] = memblob.OpenBucket(nil)
		var injected *blob.Bucket
		injected, r.faults[i] = failovertest.Wrap(r.raw[i], nil)
		r.sides[i] = &md5Side{Bucket: bucketconv.Bucket(injected), offers: offers, takes: takes}
		buckets[i] = blob.NewBucket(r.sides[i])
	}
	f, err := failoverblob.New(context.Background(), buckets[0], buckets[1], &failoverblob.Options{Mode: mode, Journal: journal.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	r.b = f.Bucket()
	return r
}

// A write's MD5 reaches each side it goes to as its ContentMD5, except
// where the side says whether its provider takes one (driverx.MD5Taker)
// and gets the very bytes the failover bucket's portable layer checks
// before the write commits: its own portable layer would only hash them
// again, so the MD5 goes in the write's context where the provider takes
// it, and nowhere where it does not. A side that is replayed the bytes
// (the secondary, after the primary failed) gets the ContentMD5.
func TestContentMD5ReachesTheSides(t *testing.T) {
	data := []byte("value")
	sum := md5.Sum(data)
	cases := []struct {
		name          string
		mode          failoverblob.Mode
		offers, takes bool
		primaryDown   bool
		want          [2]string // how each side got the MD5; "" for a side no write was opened on
	}{
		{"Mirror, sides whose providers take none", failoverblob.Mirror, true, false, false, [2]string{"none", "none"}},
		{"Mirror, sides whose providers take it", failoverblob.Mirror, true, true, false, [2]string{"context", "context"}},
		{"Mirror, sides that do not say", failoverblob.Mirror, false, false, false, [2]string{"ContentMD5", "ContentMD5"}},
		{"Redirect, a primary whose provider takes none", failoverblob.Redirect, true, false, false, [2]string{"none", ""}},
		{"Redirect, a primary whose provider takes it", failoverblob.Redirect, true, true, false, [2]string{"context", ""}},
		{"Redirect, primary down, a secondary whose provider takes none", failoverblob.Redirect, true, false, true, [2]string{"none", "ContentMD5"}},
		{"Redirect, sides that do not say", failoverblob.Redirect, false, false, false, [2]string{"ContentMD5", ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newMD5Rig(t, c.mode, c.offers, c.takes)
			if c.primaryDown {
				r.faults[primary].Outage(nil)
			}
			if err := r.b.WriteAll(context.Background(), "k", data, &blob.WriterOptions{ContentMD5: sum[:]}); err != nil {
				t.Fatalf("WriteAll: %v", err)
			}
			for i, s := range r.sides {
				if got := strings.Join(s.got, ", "); got != c.want[i] {
					t.Errorf("side %d got the MD5 as %q, want %q", i, got, c.want[i])
				}
			}
		})
	}
}

// A write whose bytes do not match its ContentMD5 commits nothing on
// either side, though neither side checks it.
func TestWrongContentMD5CommitsNothingWhereNoSideChecks(t *testing.T) {
	other := md5.Sum([]byte("other"))
	for _, mode := range []failoverblob.Mode{failoverblob.Mirror, failoverblob.Redirect} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newMD5Rig(t, mode, true, false)
			ctx := context.Background()
			err := r.b.WriteAll(ctx, "k", []byte("value"), &blob.WriterOptions{ContentMD5: other[:]})
			if gcerrors.Code(err) != gcerrors.FailedPrecondition {
				t.Fatalf("WriteAll with the MD5 of other bytes: %v, want FailedPrecondition", err)
			}
			for i, raw := range r.raw {
				if ok, err := raw.Exists(ctx, "k"); ok || err != nil {
					t.Errorf("side %d holds the key: %v, %v; want absent", i, ok, err)
				}
			}
		})
	}
}
