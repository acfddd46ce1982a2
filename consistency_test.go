package failoverblob_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

// Reads never go back in time: once a reader has seen a change, no later
// read answers with the state before it. (Item 2 of the restart defects.)

// A slow read reached the primary after a Mirror-mode write had committed
// there, while the index still held the key's earlier tombstone: the slow
// read returned w2, the next read NotFound, then w2 again. A read now waits
// for a commit in progress.
func TestReadDoesNotGoBackWhileACommitIsRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, IdleTimeout: time.Minute, FirstByteTimeout: 5 * time.Minute})
		if err := r.write("k", "w1"); err != nil {
			t.Fatal(err)
		}
		// The slow read reaches the primary 2m10s from now.
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{Latency: 2*time.Minute + 10*time.Second, Times: 1})
		slow := make(chan string)
		go func() { slow <- r.read("k") }()
		synctest.Wait()

		r.faults[secondary].Outage(nil)
		if err := r.b.Delete(r.ctx, "k"); err != nil {
			t.Fatalf("delete with the secondary down: %v", err)
		}
		r.heal() // 2 minutes
		// w2 commits on the primary; its commit on the secondary hangs for
		// the idle timeout (a minute), well past the slow read.
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 2, Hang: true, Times: 1})
		wrote := make(chan error)
		go func() { wrote <- r.write("k", "w2") }()
		if got := <-slow; got != "w2" {
			t.Fatalf("slow read: got %q, want w2 (the test needs it to see the commit on the primary)", got)
		}
		if got := r.read("k"); got != "w2" {
			t.Errorf("read after a read saw w2: got %q, want w2", got)
		}
		if err := <-wrote; err != nil {
			t.Fatalf("write of w2: %v", err)
		}
	})
}

// Item 13: in Mirror mode both sides may hold a pending key's newest
// version; a read is served by either.
func TestMirrorReadsThePendingKeyFromEitherSideHoldingTheNewestVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.heal()
		if err := r.write("k", "v2"); err != nil {
			t.Fatal(err)
		}
		if r.f.Status().Pending == 0 {
			t.Fatal("the test needs the key to be pending")
		}
		r.faults[primary].Outage(nil)
		if got := r.read("k"); got != "v2" {
			t.Errorf("read with the primary down: got %q, want v2", got)
		}
		if a, err := r.b.Attributes(r.ctx, "k"); err != nil || a.Size != int64(len("v2")) {
			t.Errorf("Attributes with the primary down: %v, %v; want v2's", a, err)
		}
	})
}

// A Mirror-mode write that failed on both sides, having reached the
// secondary after all, must not make reads flicker between the secondary's
// copy and the primary's older one.
func TestFailedMirrorWriteDoesNotFlickerBetweenSides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		r.faults[secondary].Outage(nil)
		if err := r.write("k", "v1"); err != nil { // pending: on the primary only
			t.Fatal(err)
		}
		r.heal()
		if err := r.write("k", "v2"); err != nil { // on both sides
			t.Fatal(err)
		}
		// v3 fails on the primary and is applied on the secondary, whose
		// answer is lost.
		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 2, Times: 1})
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
		if err := r.write("k", "v3"); err == nil {
			t.Fatal("write of v3: got nil error")
		}
		r.heal()
		var seen []string
		for _, down := range []int{-1, primary, -1} {
			if down >= 0 {
				r.faults[down].Outage(nil)
			}
			seen = append(seen, r.read("k"))
			if down >= 0 {
				r.heal()
			}
		}
		newest := map[string]int{"v2": 2, "v3": 3, "<unavailable>": 0}
		high := 0
		for _, got := range seen {
			n, ok := newest[got]
			if !ok || (n > 0 && n < high) {
				t.Fatalf("reads with the primary up, down, up: %q; a read went back to an older version", seen)
			}
			high = max(high, n)
		}
	})
}

// Items 9 and 14: deleting a key this bucket knows to be deleted is
// NotFound, as gocloud's contract and the bucket's reads say.
func TestDeletingADeletedKeyIsNotFound(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts failoverblob.Options
		down int
	}{
		{"redirect", failoverblob.Options{}, primary},
		{"mirror", failoverblob.Options{Mode: failoverblob.Mirror}, secondary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, tc.opts)
				if err := r.write("k", "v1"); err != nil {
					t.Fatal(err)
				}
				r.faults[tc.down].Outage(nil)
				if err := r.b.Delete(r.ctx, "k"); err != nil {
					t.Fatalf("delete with the %d side down: %v", tc.down, err)
				}
				r.heal()
				if got := r.read("k"); got != "<not found>" {
					t.Fatalf("read after heal: got %q, want <not found>", got)
				}
				if err := r.b.Delete(r.ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
					t.Errorf("second delete: got %v, want NotFound", err)
				}
				r.drain()
				if err := r.b.Delete(r.ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
					t.Errorf("delete after the drain: got %v, want NotFound", err)
				}
			})
		})
	}
}

// Item 11: a delete refused by the caller's own BeforeDelete changes
// nothing, also when the primary is down and the delete would be recorded
// as a tombstone.
func TestDeleteRefusedByTheCallersHookChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Outage(nil)
		refused := errors.New("not this one")
		err := r.b.DeleteWithOptions(r.ctx, "k", &blob.DeleteOptions{BeforeDelete: func(func(any) bool) error { return refused }})
		if !errors.Is(err, refused) {
			t.Fatalf("delete refused by the hook: got %v, want the hook's error", err)
		}
		if n := r.f.Status().Pending; n != 0 {
			t.Errorf("pending entries after the refused delete: %d, want 0", n)
		}
		r.heal()
		r.drain()
		if got := r.read("k"); got != "v1" {
			t.Errorf("read after heal and drain: got %q, want v1", got)
		}
	})
}

// Item 8: a redirected write that the secondary then fails part-way is
// ErrUnavailable, and counts against the secondary's breaker.
func TestRedirectedWriteFailingOnTheSecondaryIsUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 150, Times: 1})
		err := r.streamed("k", string(make([]byte, 400)))
		if !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("write: got %v, want ErrUnavailable", err)
		}
		st := r.f.Status().Secondary
		if st.State != circuit.StateOpen || st.LastError == "" {
			t.Errorf("secondary after its failure: state %s, last error %q; want open with the error (the rig trips on one outage)", st.State, st.LastError)
		}
	})
}

// The empty key is refused by every call before any side is asked, and a
// delete of it records nothing. (Item 5.)
func TestEmptyKeyIsRefusedByEveryCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		ctx := context.Background()
		calls := map[string]error{
			"Delete": r.b.Delete(ctx, ""),
			"Copy":   r.b.Copy(ctx, "dst", "", nil),
		}
		_, calls["Attributes"] = r.b.Attributes(ctx, "")
		_, calls["NewReader"] = r.b.NewReader(ctx, "", nil)
		_, calls["SignedURL"] = r.b.SignedURL(ctx, "", nil)
		for name, err := range calls {
			if gcerrors.Code(err) != gcerrors.InvalidArgument {
				t.Errorf("%s(\"\"): got %v, want InvalidArgument", name, err)
			}
		}
		if n := r.f.Status().Pending; n != 0 {
			t.Errorf("pending entries: %d, want 0", n)
		}
		if entries, _ := r.journal.List(ctx); len(entries) != 0 {
			t.Errorf("journal entries: %v, want none", entries)
		}
	})
}

// Item 5: keys a side refuses (fileblob's: a ".attrs" suffix, a name too
// long for the file system) are the caller's bad input. They are answered
// with the side's error, never ErrUnavailable; they never count against a
// side's breaker; and a delete of one records nothing.
func TestKeysASideRefusesAreAnswersNotOutages(t *testing.T) {
	ctx := context.Background()
	var sides [2]*blob.Bucket
	for i := range sides {
		b, err := fileblob.OpenBucket(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		sides[i] = b
	}
	f, err := failoverblob.New(ctx, sides[0], sides[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := f.Bucket()
	for _, key := range []string{"x.attrs", strings.Repeat("k", 1100), "../escape"} {
		for i := 0; i < 10; i++ {
			calls := map[string]error{
				"write":  b.WriteAll(ctx, key, []byte("v"), nil),
				"delete": b.Delete(ctx, key),
			}
			_, calls["read"] = b.ReadAll(ctx, key)
			_, calls["attributes"] = b.Attributes(ctx, key)
			for name, err := range calls {
				if errors.Is(err, failoverblob.ErrUnavailable) {
					t.Fatalf("%s of %.20q: got %v, want the side's answer", name, key, err)
				}
			}
		}
	}
	st := f.Status()
	if st.Primary.State != circuit.StateClosed || st.Secondary.State != circuit.StateClosed || st.Primary.Failures+st.Secondary.Failures != 0 {
		t.Errorf("breakers after refused keys: primary %s (%d failures), secondary %s (%d failures); want closed with none",
			st.Primary.State, st.Primary.Failures, st.Secondary.State, st.Secondary.Failures)
	}
	if st.Pending != 0 {
		t.Errorf("pending entries after refused keys: %d, want 0", st.Pending)
	}
	if err := b.WriteAll(ctx, "good", []byte("v"), nil); err != nil {
		t.Errorf("a good write after refused keys: %v", err)
	}
}

// Item 10: the same storage on both sides would let the reconciler delete
// the only copy of a write as its temporary copy. The same bucket given
// twice, the same URL twice, and the same directory under two handles are
// refused.
func TestTheSameStorageOnBothSidesIsRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	if _, err := failoverblob.New(ctx, b, b, nil); !errors.Is(err, failoverblob.ErrSameStorage) {
		t.Errorf("New with one bucket twice: got %v, want ErrSameStorage", err)
	}
	side := url.QueryEscape("file://" + dir + "?metadata=skip")
	if _, err := blob.OpenBucket(ctx, "failover://?reconcile=false&primary="+side+"&secondary="+side); !errors.Is(err, failoverblob.ErrSameStorage) {
		t.Errorf("a failover URL with one side URL twice: got %v, want ErrSameStorage", err)
	}

	// One directory under two handles: found before the reconciler removes
	// anything.
	var sides [2]*blob.Bucket
	var faults [2]*failovertest.Injector
	for i := range sides {
		fb, err := fileblob.OpenBucket(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		sides[i], faults[i] = failovertest.Wrap(fb, nil)
	}
	f, err := failoverblob.New(ctx, sides[0], sides[1], &failoverblob.Options{
		Breaker: &circuit.Settings{ReadyToTrip: func(c circuit.Counts) bool { return false }},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	faults[primary].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
	if err := f.Bucket().WriteAll(ctx, "k", []byte("only copy"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Drain(ctx); !errors.Is(err, failoverblob.ErrSameStorage) {
		t.Errorf("Drain over one directory twice: got %v, want ErrSameStorage", err)
	}
	if got, err := f.Bucket().ReadAll(ctx, "k"); err != nil || string(got) != "only copy" {
		t.Errorf("read after the refused drain: %q, %v; want the only copy", got, err)
	}
}
