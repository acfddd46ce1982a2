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
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/journal"
)

// Versions and the clocks that stamp them: skewed and stepped-back
// clocks, and the version metadata a write carries.

// ahead returns a clock that runs d ahead of the real one.
func ahead(d time.Duration) func() time.Time {
	return func() time.Time { return time.Now().Add(d) }
}

// other opens a second writer over the rig's sides, with its own journal,
// as another process would. It is not closed: closing it would close the
// rig's sides.
func (r *rig) other(opts failoverblob.Options) *failoverblob.Failover {
	r.t.Helper()
	if opts.Journal == nil {
		opts.Journal = journal.NewMemory()
	}
	f, err := failoverblob.New(r.ctx, r.sides[0], r.sides[1], &opts)
	if err != nil {
		r.t.Fatal(err)
	}
	return f
}

// Item 3: a version stamped by a clock an hour fast made the reconciler
// keep the primary's older object over a write acknowledged (and read back)
// later, and delete that write's copy. Such a version is now ordered by
// when its object was stored.
func TestFastClockVersionDoesNotSwallowAnAcknowledgedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		fast := r.other(failoverblob.Options{WriterID: "fast", Now: ahead(time.Hour)})
		if err := fast.Bucket().WriteAll(r.ctx, "k", []byte("old"), nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // virtual time stands still between calls otherwise
		r.faults[primary].Outage(nil)
		if err := r.write("k", "new"); err != nil {
			t.Fatal(err)
		}
		if got := r.read("k"); got != "new" {
			t.Fatalf("read back: %q, want new", got)
		}
		r.heal()
		r.drain()
		if got := r.read("k"); got != "new" {
			t.Errorf("read after the drain: %q, want new", got)
		}
		if got := r.content(primary, "k"); got != "new" {
			t.Errorf("primary after the drain: %q, want new", got)
		}
		if st := r.f.Status().Clock; st.FastVersions == 0 || st.LastFastKey != "k" {
			t.Errorf("Status().Clock = %+v, want the fast version counted, on key k", st)
		}
	})
}

// Item 3, second form: the same writer id wrote with its clock an hour
// fast, then restarted with the clock stepped back.
func TestClockSteppedBackAcrossARestartDoesNotSwallowAWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{WriterID: "w", Now: ahead(time.Hour)})
		if err := r.write("k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		f2 := r.restart(failoverblob.Options{WriterID: "w"})
		r.faults[primary].Outage(nil)
		if err := f2.Bucket().WriteAll(r.ctx, "k", []byte("new"), nil); err != nil {
			t.Fatal(err)
		}
		r.heal()
		if _, err := f2.Drain(r.ctx); err != nil {
			t.Fatal(err)
		}
		if got := readOf(f2, r, "k"); got != "new" {
			t.Errorf("read after the drain: %q, want new", got)
		}
	})
}

// Within MaxClockSkew versions order writes, and a writer's clock moves
// past the versions it sees: a write made after reading another writer's
// version wins over it, even from a clock behind that writer's.
func TestWriteAfterSeeingAVersionIsNewerThanIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		ahead3s := r.other(failoverblob.Options{WriterID: "ahead", Now: ahead(3 * time.Second)})
		if err := ahead3s.Bucket().WriteAll(r.ctx, "k", []byte("theirs"), nil); err != nil {
			t.Fatal(err)
		}
		if got := r.attrsValue("k"); got != "" {
			t.Fatalf("attributes: %q", got)
		}
		r.faults[primary].Outage(nil)
		if err := r.write("k", "ours"); err != nil {
			t.Fatal(err)
		}
		r.heal()
		r.drain()
		if got := r.read("k"); got != "ours" {
			t.Errorf("read after the drain: %q, want ours (written after reading theirs)", got)
		}
		if n := r.f.Status().Clock.FastVersions; n != 0 {
			t.Errorf("fast versions counted: %d, want 0 (3s is within the bound)", n)
		}
	})
}

func TestVersionIsHiddenFromAttributes(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	if err := r.b.WriteAll(r.ctx, "k", []byte("v"), &blob.WriterOptions{Metadata: map[string]string{"owner": "me"}}); err != nil {
		t.Fatal(err)
	}
	a, err := r.b.Attributes(r.ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"owner": "me"}; len(a.Metadata) != 1 || a.Metadata["owner"] != "me" {
		t.Errorf("Attributes metadata: got %v, want %v", a.Metadata, want)
	}
	raw, err := r.raw[primary].Attributes(r.ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := failoverblob.ParseVersion(raw.Metadata[failoverblob.VersionMetadataKey]); err != nil || raw.Metadata[failoverblob.VersionMetadataKey] == "" {
		t.Errorf("stored version %q: want a parseable version (%v)", raw.Metadata[failoverblob.VersionMetadataKey], err)
	}
}

// Item 4: a writer id that metadata cannot carry unchanged is refused.
func TestWriterIDThatMetadataCannotCarryIsRefused(t *testing.T) {
	ctx := context.Background()
	for _, id := range []string{"\xff", "a b", "é", strings.Repeat("w", 65), "a/b"} {
		_, err := failoverblob.New(ctx, blob.NewBucket(nil), blob.NewBucket(nil), &failoverblob.Options{WriterID: id})
		if err == nil || !strings.Contains(err.Error(), "writer id") {
			t.Errorf("WriterID %q: got %v, want an error about the writer id", id, err)
		}
	}
	u := "failover://?primary=mem%3A%2F%2F&secondary=mem%3A%2F%2F&writer_id=" + url.QueryEscape("\xff")
	if _, err := blob.OpenBucket(ctx, u); err == nil || !strings.Contains(err.Error(), "writer_id") {
		t.Errorf("writer_id=%%FF: got %v, want an error naming writer_id", err)
	}
}

// Item 6: a metadata key that folds to the version key (or to the other
// reserved key, StoredMetadataKey) is refused on write, by the rule that
// hides them from Attributes.
func TestMetadataKeyFoldingToTheVersionKeyIsRefused(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	for _, k := range []string{"failover-version", "Failover-Version", "failover-verſion", "FAILOVER-VERSION", "failover-stored", "Failover-Stored", "failover-ſtored"} {
		err := r.b.WriteAll(r.ctx, "k", []byte("v"), &blob.WriterOptions{Metadata: map[string]string{k: "x"}})
		if !errors.Is(err, failoverblob.ErrReservedKey) || gcerrors.Code(err) != gcerrors.InvalidArgument {
			t.Errorf("metadata key %q: got %v, want ErrReservedKey (InvalidArgument)", k, err)
		}
	}
}
