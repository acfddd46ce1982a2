package failoverblob_test

import (
	"bytes"
	"crypto/md5"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

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

// A read that fails part-way reports the failure; it never passes off a
// truncated object as whole.
func TestReadFailingMidStream(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	if err := r.write("k", big); err != nil {
		t.Fatal(err)
	}
	r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{AfterBytes: 1000})
	got, err := r.b.ReadAll(r.ctx, "k")
	if err == nil || len(got) == len(big) {
		t.Errorf("read failing after 1000 bytes: got %d bytes and %v, want an error", len(got), err)
	}
}

// A hung primary costs a read its first-byte timeout, then the read falls
// back to the secondary.
func TestReadFromHungPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{FirstByteTimeout: 3 * time.Second, CallTimeout: 3 * time.Second})
		r.faults[primary].Outage(nil)
		if err := r.write("redirected", "v"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		if err := r.write("on-primary", "p"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Hang()
		start := time.Now()
		got := r.read("on-primary")
		if got != "<unavailable>" {
			t.Errorf("read of a key only the hung primary has: got %q, want <unavailable>", got)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("read took %v of virtual time, want the 3s first-byte timeout", d)
		}
		if got := r.read("redirected"); !strings.HasPrefix(got, "v") {
			t.Errorf("read of a key pending on the secondary: got %q, want %q", got, "v")
		}
	})
}

// Mid-stream failure of the primary with a seekable Upload source: the
// source is replayed from where it started, not spooled.
func TestSeekableUploadReplaysSource(t *testing.T) {
	r := newRig(t, failoverblob.Options{SpoolMemory: -1, SpoolDir: "/nonexistent-dir-for-spool"})
	r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 5000})
	src := bytes.NewReader([]byte(big))
	if _, err := src.Seek(10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := r.b.Upload(r.ctx, "k", src, &blob.WriterOptions{ContentType: "text/plain"}); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if got := r.content(secondary, "k"); got != big[10:] {
		t.Errorf("secondary: got %d bytes, want the %d from the source's start", len(got), len(big)-10)
	}
}
