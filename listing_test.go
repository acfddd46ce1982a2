package failoverblob_test

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// Listings: pending work merged into the serving side's pages, the
// reserved prefix hidden, and listings that agree with reads.

func TestListingMergesPendingWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{BestEffortList: true})
		for _, k := range []string{"a", "b", "c"} {
			if err := r.write(k, k); err != nil {
				t.Fatal(err)
			}
		}
		r.faults[primary].Outage(nil)
		if err := r.write("d", "d"); err != nil {
			t.Fatal(err)
		}
		if err := r.b.Delete(r.ctx, "b"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		if got, want := r.keys(), []string{"a", "c", "d"}; !slices.Equal(got, want) {
			t.Errorf("list with pending work: got %q, want %q", got, want)
		}
		r.drain()
		if got, want := r.keys(), []string{"a", "c", "d"}; !slices.Equal(got, want) {
			t.Errorf("list after reconcile: got %q, want %q", got, want)
		}
	})
}

func TestListingWhilePrimaryDown(t *testing.T) {
	cases := []struct {
		name string
		opts failoverblob.Options
		want string
	}{
		{"redirect", failoverblob.Options{}, "<list error"},
		{"redirect, best effort", failoverblob.Options{BestEffortList: true}, "d"},
		{"mirror", failoverblob.Options{Mode: failoverblob.Mirror}, "a,d"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.opts)
			if err := r.write("a", "a"); err != nil {
				t.Fatal(err)
			}
			r.faults[primary].Outage(nil)
			if err := r.write("d", "d"); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(r.keys(), ","); !strings.HasPrefix(got, tc.want) {
				t.Errorf("list: got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestListingHidesReservedPrefix(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	if err := r.raw[primary].WriteAll(r.ctx, failoverblob.ReservedPrefix+"canary", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.write("a", "a"); err != nil {
		t.Fatal(err)
	}
	if got, want := r.keys(), []string{"a"}; !slices.Equal(got, want) {
		t.Errorf("list: got %q, want %q", got, want)
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

// Found by TestChaos (seed 24): a listing showed a key with pending work
// with the size of the stale object on the listed side, not of the newest
// version the bucket serves.
func TestListingShowsTheSizeOfTheNewestVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", "the old value, long"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Outage(nil)
		if err := r.write("k", "new"); err != nil {
			t.Fatal(err)
		}
		r.heal()
		if got := r.listedSize("k"); got != 3 {
			t.Errorf("listed size: got %d, want 3 (the redirected write's)", got)
		}
	})
}

// A directory whose every object has a pending delete is gone: a listing
// with a delimiter must not show it while the side that serves the listing
// still holds the deleted objects.
func TestListingHidesDirectoryOfOnlyTombstonedObjects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		for _, k := range []string{"gone/a", "gone/b", "kept/a", "kept/b"} {
			if err := r.write(k, "v"); err != nil {
				t.Fatal(err)
			}
		}
		r.faults[primary].Outage(nil)
		for _, k := range []string{"gone/a", "gone/b", "kept/a"} {
			if err := r.b.Delete(r.ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute) // the primary's breaker half-opens
		var got []string
		it := r.b.List(&blob.ListOptions{Delimiter: "/"})
		for {
			o, err := it.Next(r.ctx)
			if err != nil {
				if err != io.EOF {
					t.Fatal(err)
				}
				break
			}
			got = append(got, o.Key)
		}
		if len(got) != 1 || got[0] != "kept/" {
			t.Errorf("listing with delimiter: got %q, want [kept/]", got)
		}
	})
}

// Found by TestChaos (seeds 265 and 537): a write failed, but one side had
// applied it; a read showed it, then a listing served by the other side,
// with the primary down, did not.
func TestListingDoesNotHideAFailedWriteAReadHasSeen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The default breaker, which one failed write does not trip.
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, Breaker: &circuit.Settings{}})
		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
		r.faults[secondary].Outage(nil)
		if err := r.write("k", "v"); err == nil {
			t.Fatal("write with both sides failing: got nil error")
		}
		r.faults[secondary].Heal()
		if got := r.read("k"); got != "v" {
			t.Fatalf("read of the failed write the primary applied: got %q, want v", got)
		}
		r.faults[primary].Outage(nil)
		objs, _, err := r.b.ListPage(r.ctx, blob.FirstPageToken, 100, nil)
		if err != nil {
			return // unavailable is an honest answer
		}
		for _, o := range objs {
			if o.Key == "k" {
				return
			}
		}
		t.Errorf("listing with the primary down omits %q, which a read has shown", "k")
	})
}

// Found by TestChaos (seed 127, mirror): a delete applied on the primary
// hung on the secondary. Reads of the key, which has pending work held by
// the primary, said NotFound, but a listing merged in what the index still
// said, that the key was there.
func TestListingDuringAMirrorDeleteAgreesWithReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		r.faults[secondary].Outage(nil)
		if err := r.write("k", "v"); err != nil { // pending: the secondary misses it
			t.Fatal(err)
		}
		r.heal()
		r.faults[secondary].Set(failovertest.OpDelete, failovertest.Fault{Hang: true, Times: 1})
		deleted := make(chan error)
		go func() { deleted <- r.b.Delete(r.ctx, "k") }()
		synctest.Wait()
		if got := r.read("k"); got != "<not found>" {
			t.Fatalf("read during the delete, applied on the primary: got %q, want <not found>", got)
		}
		if got := r.listedSize("k"); got != -1 {
			t.Errorf("listing during the delete shows %q (%d bytes); reads say it is not found", "k", got)
		}
		<-deleted
	})
}

// A listing whose page was read before a repair was acknowledged must still
// show the repaired key: the page predates the copy, and the index read
// after the repair no longer has the key either.
func TestListingRacingARepairKeepsTheKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		raw := [2]*blob.Bucket{memblob.OpenBucket(nil), memblob.OpenBucket(nil)}
		pd, pin := failovertest.NewDriver(raw[primary], nil)
		list := &pausedList{Bucket: pd}
		f, err := failoverblob.New(ctx, blob.NewBucket(list), raw[secondary], &failoverblob.Options{
			Breaker: &circuit.Settings{ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 }, Timeout: time.Minute},
			// Off the sides: the paused listing must be the bucket's.
			Journal: journal.NewMemory(),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := f.Bucket()
		pin.Outage(nil)
		if err := b.WriteAll(ctx, "k", []byte("redirected"), nil); err != nil {
			t.Fatal(err)
		}
		pin.Heal()
		time.Sleep(2 * time.Minute)
		// A call the primary answers closes its half-open breaker, so the
		// paused listing does not hold its only probe slot.
		if _, err := b.Attributes(ctx, "other"); gcerrors.Code(err) != gcerrors.NotFound {
			t.Fatalf("attributes of a missing key: %v", err)
		}

		list.paused, list.release = make(chan struct{}), make(chan struct{})
		paused, release := list.paused, list.release
		released := false
		defer func() {
			if !released {
				close(release)
			}
		}()
		got := make(chan []string)
		go func() {
			var keys []string
			it := b.List(nil)
			for {
				o, err := it.Next(ctx)
				if err != nil {
					break
				}
				keys = append(keys, o.Key)
			}
			got <- keys
		}()
		<-paused
		if _, err := f.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		close(release)
		released = true
		if keys := <-got; len(keys) != 1 || keys[0] != "k" {
			t.Errorf("listing that raced the repair of k: %q, want [k]", keys)
		}
	})
}

// pausedList is a side whose listing pauses after the page is read, until
// release is closed, so a test can act in between.
type pausedList struct {
	driver.Bucket
	paused  chan struct{}
	release chan struct{}
}

func (p *pausedList) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	page, err := p.Bucket.ListPaged(ctx, opts)
	if p.paused != nil {
		close(p.paused)
		p.paused = nil
		<-p.release
	}
	return page, err
}

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
