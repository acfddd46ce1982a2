package failoverblob_test

import (
	"context"
	"io"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

// listAll lists the bucket page by page (pageSize objects a page), with opts
// (nil: none), and returns the keys, or fails the test.
func (r *rig) listAll(pageSize int, opts *blob.ListOptions, between func(page int)) []string {
	r.t.Helper()
	var keys []string
	token := blob.FirstPageToken
	for page := 0; ; page++ {
		if between != nil {
			between(page)
		}
		objs, next, err := r.b.ListPage(r.ctx, token, pageSize, opts)
		if err != nil {
			r.t.Fatalf("listing page %d: %v", page, err)
		}
		for _, o := range objs {
			keys = append(keys, o.Key)
		}
		if len(next) == 0 {
			return keys
		}
		token = next
	}
}

// Item 7: listings hide every trace of the reserved prefix, for any
// delimiter, and still show directories holding user keys.
func TestListingHidesTheReservedPrefixForAnyDelimiter(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	for i := range r.raw {
		if err := r.raw[i].WriteAll(r.ctx, failoverblob.ReservedPrefix+"journal/1", []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, delim := range []string{"", ".", "r", "/", "f", "l/"} {
		if got := r.listAll(10, &blob.ListOptions{Delimiter: delim}, nil); len(got) != 0 {
			t.Errorf("delimiter %q, only reserved objects: listed %q, want nothing", delim, got)
		}
	}
	for _, key := range []string{".foo", ".failover", ".failoverx/y"} {
		if err := r.write(key, "v"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		delim string
		want  []string
	}{
		{".", []string{"."}},
		{"r", []string{".failover", ".foo"}},
		{"/", []string{".failover", ".failoverx/", ".foo"}},
		{"", []string{".failover", ".failoverx/y", ".foo"}},
	} {
		if got := r.listAll(10, &blob.ListOptions{Delimiter: tc.delim}, nil); !slices.Equal(got, tc.want) {
			t.Errorf("delimiter %q with user keys: listed %q, want %q", tc.delim, got, tc.want)
		}
	}
}

// Item 12: a Mirror-mode listing in progress goes on from the secondary
// when the primary fails, without skipping or repeating keys.
func TestMirrorListingGoesOnFromTheSecondaryWhenThePrimaryFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		want := []string{"a", "b", "c", "d", "e"}
		for _, k := range want {
			if err := r.write(k, "v"); err != nil {
				t.Fatal(err)
			}
		}
		got := r.listAll(2, nil, func(page int) {
			if page == 1 {
				r.faults[primary].Outage(nil)
			}
		})
		if !slices.Equal(got, want) {
			t.Errorf("listing with the primary failing after page 1: %q, want %q", got, want)
		}
	})
}

// listThen is a side that calls then once, after it has served the next
// listing page.
type listThen struct {
	driver.Bucket
	then func()
}

func (l *listThen) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	page, err := l.Bucket.ListPaged(ctx, opts)
	if l.then != nil {
		l.then()
		l.then = nil
	}
	return page, err
}

// Item 12, second form: the primary fails while the listing checks a
// directory with a pending delete under it; the secondary answers.
func TestMirrorListingChecksADirectoryOnTheSecondaryWhenThePrimaryFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		pd, pin := failovertest.NewDriver(memblob.OpenBucket(nil), nil)
		list := &listThen{Bucket: pd}
		sec, sin := failovertest.Wrap(memblob.OpenBucket(nil), nil)
		f, err := failoverblob.New(ctx, blob.NewBucket(list), sec, &failoverblob.Options{
			Mode:    failoverblob.Mirror,
			Breaker: &circuit.Settings{ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 }, Timeout: time.Minute},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := f.Bucket()
		for _, k := range []string{"d/a", "d/b", "e"} {
			if err := b.WriteAll(ctx, k, []byte("v"), nil); err != nil {
				t.Fatal(err)
			}
		}
		sin.Outage(nil)
		if err := b.Delete(ctx, "d/a"); err != nil { // a tombstone for the secondary
			t.Fatal(err)
		}
		sin.Heal()
		time.Sleep(2 * time.Minute)
		// The primary fails once it has served the page, before the
		// listing looks into "d/".
		list.then = func() { pin.Outage(nil) }
		var got []string
		it := b.List(&blob.ListOptions{Delimiter: "/"})
		for {
			o, err := it.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("listing: %v", err)
			}
			got = append(got, o.Key)
		}
		if want := []string{"d/", "e"}; !slices.Equal(got, want) {
			t.Errorf("listing: %q, want %q", got, want)
		}
	})
}

// Keys a restarted bucket knows only from its journal are resolved before
// they are listed, however many there are: more than a page of them are
// listed across pages, each once.
func TestListingResolvesMoreThanAPageOfRestartedKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		var want []string
		for _, k := range []string{"a", "b", "c", "d", "e", "f", "g"} {
			if err := r.write(k, "v"); err != nil {
				t.Fatal(err)
			}
			want = append(want, k)
		}
		r.heal()
		f2 := r.restart(failoverblob.Options{})
		r.b = f2.Bucket()
		if got := r.listAll(3, nil, nil); !slices.Equal(got, want) {
			t.Errorf("listing after restart, 3 a page: %q, want %q", got, want)
		}
	})
}
