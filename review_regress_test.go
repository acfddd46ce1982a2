package failoverblob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
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

// A tombstone withdrawn by a refused delete must not be applied by a Drain
// that listed the journal before it was withdrawn.
func TestRetractedTombstoneIsNotAppliedByAConcurrentDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		entered, release := make(chan struct{}), make(chan struct{})
		delErr := make(chan error)
		go func() {
			delErr <- r.b.DeleteWithOptions(r.ctx, "k", &blob.DeleteOptions{BeforeDelete: func(func(any) bool) error {
				close(entered)
				<-release
				return errors.New("caller refuses the delete")
			}})
		}()
		<-entered
		drained := make(chan error)
		go func() { _, err := r.f.Drain(r.ctx); drained <- err }()
		synctest.Wait()
		close(release)
		if err := <-delErr; err == nil {
			t.Fatal("refused delete: got nil error")
		}
		if err := <-drained; err != nil {
			t.Fatal(err)
		}
		if got := r.read("k"); got != "v1" {
			t.Errorf("read after the refused delete and Drain: got %q, want %q", got, "v1")
		}
	})
}

// After a restart, a key whose journal names a side that is down is
// unavailable, not NotFound on the other side's miss.
func TestRestartedBucketDoesNotTakeAMissForAbsence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		f2, err := failoverblob.New(r.ctx, r.sides[0], r.sides[1], &failoverblob.Options{Journal: r.journal})
		if err != nil {
			t.Fatal(err)
		}
		r.faults[secondary].Outage(nil)
		_, err = f2.Bucket().ReadAll(r.ctx, "k")
		if !errors.Is(err, failoverblob.ErrUnavailable) || gcerrors.Code(err) == gcerrors.NotFound {
			t.Errorf("read after restart with the holder down: got %v (code %v), want ErrUnavailable, not NotFound", err, gcerrors.Code(err))
		}
	})
}

// An unavailable error's code is Unknown, whatever caused it: a watchdog's
// cancellation must not read as the caller's own.
func TestUnavailableIsNotReportedAsCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{FirstByteTimeout: 3 * time.Second, CallTimeout: 3 * time.Second})
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Hang()
		_, err := r.b.ReadAll(r.ctx, "k")
		if !errors.Is(err, failoverblob.ErrUnavailable) || gcerrors.Code(err) != gcerrors.Unknown {
			t.Errorf("read from a hung primary: got %v (code %v), want ErrUnavailable with code Unknown", err, gcerrors.Code(err))
		}
	})
}

// After a restart the index knows pending keys only from the journal. A
// write that superseded a redirected copy and committed on the primary was
// journaled as missing from the primary (every change to a pending key is
// recorded), so the journal alone points reads at the secondary's older
// copy: the restarted bucket must find the side holding the newest version.
func TestRestartedBucketReadsTheNewestVersionNotTheJournalsGuess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1 redirected"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute) // the primary's breaker half-opens
		if err := r.write("k", "v2 on the primary"); err != nil {
			t.Fatal(err)
		}
		if got := r.content(primary, "k"); got != "v2 on the primary" {
			t.Fatalf("primary holds %q", got)
		}
		f2, err := failoverblob.New(r.ctx, r.sides[0], r.sides[1], &failoverblob.Options{Journal: r.journal})
		if err != nil {
			t.Fatal(err)
		}
		got, err := f2.Bucket().ReadAll(r.ctx, "k")
		if err != nil || string(got) != "v2 on the primary" {
			t.Errorf("read after restart: got %q, %v; want the newest version, %q", got, err, "v2 on the primary")
		}
		a, err := f2.Bucket().Attributes(r.ctx, "k")
		if err != nil {
			t.Fatalf("attributes after restart: %v", err)
		}
		if a.Size != int64(len("v2 on the primary")) {
			t.Errorf("attributes after restart: size %d; want the newest version's, %d", a.Size, len("v2 on the primary"))
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

// A spool that cannot be written (its directory is gone) costs only the
// replay: the write still goes to a healthy primary. If the primary then
// fails part-way, the write fails, and nothing partial reaches the
// secondary.
func TestUnwritableSpoolDoesNotFailWritesToAHealthyPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{SpoolMemory: -1, SpoolDir: filepath.Join(t.TempDir(), "missing")}
		r := newRig(t, opts)
		big := bytes.Repeat([]byte("x"), 256<<10)
		if err := r.b.WriteAll(r.ctx, "k", big, nil); err != nil {
			t.Fatalf("write to a healthy primary with an unwritable spool: %v", err)
		}
		if got := r.content(primary, "k"); got != string(big) {
			t.Fatalf("primary holds %d bytes, want %d", len(got), len(big))
		}

		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 100 << 10})
		err := r.b.WriteAll(r.ctx, "k2", big, nil)
		if !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("write failing part-way with no spool: got %v, want ErrUnavailable", err)
		}
		if got := r.content(secondary, "k2"); got != "<absent>" {
			t.Errorf("the secondary holds %d bytes of a write that could not be replayed", len(got))
		}
	})
}

// A copy is a new write: it must be ordered after writes made before it,
// by any process. Here another process wrote the destination during its
// own outage of the primary, before the copy; when it reconciles, its
// older write must not replace the copy. A server-side copy would carry
// the source's old version and lose.
func TestCopyIsVersionedAsANewWriteAcrossProcesses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("src", "copied"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)

		// Another process, with its own view of the sides and its own
		// journal, writes dst while the primary is down for it.
		var sides [2]*blob.Bucket
		var faults [2]*failovertest.Injector
		for i := range sides {
			sides[i], faults[i] = failovertest.Wrap(r.raw[i], nil)
		}
		other, err := failoverblob.New(r.ctx, sides[0], sides[1], nil)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		faults[primary].Outage(nil)
		if err := other.Bucket().WriteAll(r.ctx, "dst", []byte("older, redirected"), nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)

		if err := r.b.Copy(r.ctx, "dst", "src", nil); err != nil {
			t.Fatal(err)
		}
		faults[primary].Heal()
		time.Sleep(time.Minute)
		if _, err := other.Drain(r.ctx); err != nil {
			t.Fatal(err)
		}
		if got := r.content(primary, "dst"); got != "copied" {
			t.Errorf("dst on the primary after the other process reconciled: %q, want the later copy", got)
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

// A read that has begun must not end in NotFound: the object existed when
// it was opened. A client that reopens a cut stream can find the object
// gone (the reconciler moved it, or it was deleted); the caller is told to
// read again instead.
func TestReadThatBeganIsNotReportedNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", strings.Repeat("x", 4096)); err != nil {
			t.Fatal(err)
		}
		_, notFound := r.raw[primary].ReadAll(r.ctx, "missing")
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{Err: notFound, AfterBytes: 1000})
		_, err := r.b.ReadAll(r.ctx, "k")
		if gcerrors.Code(err) == gcerrors.NotFound || !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("read cut by a not-found part-way: got %v (code %v), want ErrUnavailable", err, gcerrors.Code(err))
		}
	})
}

// A read cut part-way by an outage of its side is reported as
// ErrUnavailable, as every other call the failover bucket could not serve
// is, so callers can tell "read again" from an answer.
func TestReadCutByAnOutageIsUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", strings.Repeat("x", 4096)); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{AfterBytes: 1000})
		_, err := r.b.ReadAll(r.ctx, "k")
		if !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("read cut by an outage part-way: got %v, want ErrUnavailable", err)
		}
	})
}
