package failoverblob_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

// Input the bucket refuses, and input a side refuses: answers that lose
// nothing and trip nothing.

var errSource = errors.New("source failed")

// failingReader yields n bytes, then fails; seekable when asked, so both
// Upload paths (spooled and replayed from the source) are exercised.
type failingReader struct{ r *bytes.Reader }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.r.Len() == 0 {
		return 0, errSource
	}
	return f.r.Read(p)
}

type seekableFailingReader struct{ failingReader }

func (f *seekableFailingReader) Seek(off int64, whence int) (int64, error) {
	return f.r.Seek(off, whence)
}

// Bad input gets a clear error, commits nothing on either side, records
// nothing, and never trips a breaker — with the primary up or down.
func TestBadInputLosesNothingAndTripsNothing(t *testing.T) {
	sum := md5.Sum([]byte("other"))
	calls := []struct {
		name    string
		call    func(r *rig) error
		wantErr func(error) bool
	}{
		{"wrong MD5", func(r *rig) error {
			return r.b.WriteAll(r.ctx, "k", []byte("value"), &blob.WriterOptions{ContentMD5: sum[:]})
		}, func(err error) bool { return gcerrors.Code(err) == gcerrors.FailedPrecondition }},
		{"failing reader", func(r *rig) error {
			return r.b.Upload(r.ctx, "k", &failingReader{bytes.NewReader(make([]byte, 100<<10))}, &blob.WriterOptions{ContentType: "text/plain"})
		}, func(err error) bool { return errors.Is(err, errSource) }},
		{"failing seekable reader", func(r *rig) error {
			return r.b.Upload(r.ctx, "k", &seekableFailingReader{failingReader{bytes.NewReader(make([]byte, 100<<10))}}, &blob.WriterOptions{ContentType: "text/plain"})
		}, func(err error) bool { return errors.Is(err, errSource) }},
		{"empty key", func(r *rig) error { return r.b.WriteAll(r.ctx, "", []byte("v"), nil) },
			func(err error) bool { return gcerrors.Code(err) == gcerrors.InvalidArgument }},
		{"invalid UTF-8 key", func(r *rig) error { return r.b.WriteAll(r.ctx, "\xff", []byte("v"), nil) },
			func(err error) bool { return gcerrors.Code(err) == gcerrors.InvalidArgument }},
	}
	for _, primaryDown := range []bool{false, true} {
		for _, c := range calls {
			name := c.name
			if primaryDown {
				name += ", primary down"
			}
			t.Run(name, func(t *testing.T) {
				r := newRig(t, failoverblob.Options{Breaker: &circuit.Settings{}})
				if primaryDown {
					r.faults[primary].Outage(nil)
				}
				before := r.f.Status()
				err := c.call(r)
				if !c.wantErr(err) {
					t.Errorf("got error %v, want the bad input reported", err)
				}
				for i := range 2 {
					if got := r.content(i, "k"); got != "<absent>" {
						t.Errorf("side %d: got %.20q, want <absent>", i, got)
					}
				}
				if n := r.journal.Len(); n != 0 {
					t.Errorf("journal entries: got %d, want 0", n)
				}
				if got := r.f.Status().Secondary; got.Failures != before.Secondary.Failures || got.State != circuit.StateClosed {
					t.Errorf("secondary breaker: got %v with %d failures, want closed with %d", got.State, got.Failures, before.Secondary.Failures)
				}
			})
		}
	}
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

func TestReservedKeysAreRefused(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	key := failoverblob.ReservedPrefix + "journal/x"
	_, readErr := r.b.ReadAll(r.ctx, key)
	_, attrErr := r.b.Attributes(r.ctx, key)
	calls := []struct {
		name string
		err  error
	}{
		{"write", r.write(key, "x")},
		{"read", readErr},
		{"attributes", attrErr},
		{"delete", r.b.Delete(r.ctx, key)},
		{"copy to", r.b.Copy(r.ctx, key, "a", nil)},
		{"version metadata", r.b.WriteAll(r.ctx, "a", nil, &blob.WriterOptions{Metadata: map[string]string{failoverblob.VersionMetadataKey: "x"}})},
	}
	for _, c := range calls {
		if !errors.Is(c.err, failoverblob.ErrReservedKey) || gcerrors.Code(c.err) != gcerrors.InvalidArgument {
			t.Errorf("%s: got %v (code %v), want ErrReservedKey with code InvalidArgument", c.name, c.err, gcerrors.Code(c.err))
		}
	}
	for i := range 2 {
		if got := r.content(i, key); got != "<absent>" {
			t.Errorf("side %d holds %q: got %q", i, key, got)
		}
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
