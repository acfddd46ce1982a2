package failovertest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/failovertest"
)

// newBase returns an in-memory bucket holding "existing" = "hello".
func newBase(t *testing.T) *blob.Bucket {
	t.Helper()
	base := memblob.OpenBucket(nil)
	t.Cleanup(func() { _ = base.Close() })
	if err := base.WriteAll(context.Background(), "existing", []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	return base
}

// contents returns every object in b, by key.
func contents(t *testing.T, b *blob.Bucket) map[string]string {
	t.Helper()
	ctx := context.Background()
	got := map[string]string{}
	it := b.List(nil)
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("listing the base: %v", err)
		}
		data, err := b.ReadAll(ctx, o.Key)
		if err != nil {
			t.Fatalf("reading %q from the base: %v", o.Key, err)
		}
		got[o.Key] = string(data)
	}
}

// opCalls makes one call of each op against a bucket over newBase.
var opCalls = []struct {
	op   failovertest.Op
	call func(ctx context.Context, b *blob.Bucket) error
	// healed is the code the call gives with no fault.
	healed gcerrors.ErrorCode
}{
	{failovertest.OpAttributes, func(ctx context.Context, b *blob.Bucket) error {
		_, err := b.Attributes(ctx, "existing")
		return err
	}, gcerrors.OK},
	{failovertest.OpList, func(ctx context.Context, b *blob.Bucket) error {
		_, _, err := b.ListPage(ctx, blob.FirstPageToken, 10, nil)
		return err
	}, gcerrors.OK},
	{failovertest.OpRead, func(ctx context.Context, b *blob.Bucket) error {
		_, err := b.ReadAll(ctx, "existing")
		return err
	}, gcerrors.OK},
	{failovertest.OpWrite, func(ctx context.Context, b *blob.Bucket) error {
		return b.WriteAll(ctx, "new", []byte("fresh"), nil)
	}, gcerrors.OK},
	{failovertest.OpCopy, func(ctx context.Context, b *blob.Bucket) error {
		return b.Copy(ctx, "copied", "existing", nil)
	}, gcerrors.OK},
	{failovertest.OpDelete, func(ctx context.Context, b *blob.Bucket) error {
		return b.Delete(ctx, "existing")
	}, gcerrors.OK},
	{failovertest.OpSignedURL, func(ctx context.Context, b *blob.Bucket) error {
		_, err := b.SignedURL(ctx, "existing", nil)
		return err
	}, gcerrors.Unimplemented}, // memblob signs no URLs
}

func TestOpsCoverAllOps(t *testing.T) {
	var got []failovertest.Op
	for _, tc := range opCalls {
		got = append(got, tc.op)
	}
	if want := failovertest.AllOps; !slices.Equal(got, want) {
		t.Errorf("ops under test = %v, want AllOps = %v", got, want)
	}
}

// checkOutage fails t unless err is the injected ErrOutage as the bucket
// returns it.
func checkOutage(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, failovertest.ErrOutage) {
		t.Errorf("%s: err = %v, want ErrOutage", what, err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("%s: errors.Is(%v, ECONNREFUSED) = false, want true", what, err)
	}
	if got := gcerrors.Code(err); got != gcerrors.Unknown {
		t.Errorf("%s: gcerrors.Code(%v) = %v, want Unknown", what, err, got)
	}
}

func TestFaultFailsItsOp(t *testing.T) {
	ctx := context.Background()
	for _, tc := range opCalls {
		t.Run(tc.op.String(), func(t *testing.T) {
			base := newBase(t)
			b, in := failovertest.Wrap(base, nil)
			in.Set(tc.op, failovertest.Fault{})
			want := contents(t, base)

			checkOutage(t, "with the fault", tc.call(ctx, b))
			if got := contents(t, base); !maps.Equal(got, want) {
				t.Errorf("base after the failed call = %v, want it unchanged: %v", got, want)
			}
			if got := in.Calls(tc.op); got != 1 {
				t.Errorf("Calls(%v) = %d, want 1", tc.op, got)
			}
			if got := in.Fired(tc.op); got != 1 {
				t.Errorf("Fired(%v) = %d, want 1", tc.op, got)
			}

			in.Heal()
			if err := tc.call(ctx, b); gcerrors.Code(err) != tc.healed {
				t.Errorf("after Heal: err = %v, want code %v", err, tc.healed)
			}
			if got := in.Fired(tc.op); got != 1 {
				t.Errorf("after Heal: Fired(%v) = %d, want still 1", tc.op, got)
			}
		})
	}
}

func TestFaultLeavesOtherOps(t *testing.T) {
	ctx := context.Background()
	for _, tc := range opCalls {
		t.Run(tc.op.String(), func(t *testing.T) {
			b, in := failovertest.Wrap(newBase(t), nil)
			for _, op := range failovertest.AllOps {
				in.Set(op, failovertest.Fault{})
			}
			in.Clear(tc.op)
			if err := tc.call(ctx, b); gcerrors.Code(err) != tc.healed {
				t.Errorf("with every other op faulted: err = %v, want code %v", err, tc.healed)
			}
		})
	}
}

func TestOutageFailsEveryOp(t *testing.T) {
	ctx := context.Background()
	errDown := errors.New("side is down")
	for _, tc := range opCalls {
		t.Run(tc.op.String(), func(t *testing.T) {
			base := newBase(t)
			b, in := failovertest.Wrap(base, nil)
			want := contents(t, base)

			in.Outage(nil)
			checkOutage(t, "Outage(nil)", tc.call(ctx, b))
			in.Outage(errDown)
			if err := tc.call(ctx, b); !errors.Is(err, errDown) {
				t.Errorf("Outage(errDown): err = %v, want errDown", err)
			}
			if got := contents(t, base); !maps.Equal(got, want) {
				t.Errorf("base after the outage = %v, want it unchanged: %v", got, want)
			}
			if got := in.Fired(tc.op); got != 2 {
				t.Errorf("Fired(%v) = %d, want 2", tc.op, got)
			}

			in.Heal()
			if err := tc.call(ctx, b); gcerrors.Code(err) != tc.healed {
				t.Errorf("after Heal: err = %v, want code %v", err, tc.healed)
			}
		})
	}
}

func TestClear(t *testing.T) {
	ctx := context.Background()
	b, in := failovertest.Wrap(newBase(t), nil)
	in.Set(failovertest.OpRead, failovertest.Fault{})
	in.Set(failovertest.OpAttributes, failovertest.Fault{})
	in.Clear(failovertest.OpRead)
	if _, err := b.ReadAll(ctx, "existing"); err != nil {
		t.Errorf("ReadAll after Clear(OpRead): %v", err)
	}
	_, err := b.Attributes(ctx, "existing")
	checkOutage(t, "Attributes, still faulted", err)
}

func TestWriteFailsPartWay(t *testing.T) {
	ctx := context.Background()
	base := newBase(t)
	b, in := failovertest.Wrap(base, nil)
	in.Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 1000})

	err := b.WriteAll(ctx, "big", make([]byte, 1<<20), nil)
	checkOutage(t, "WriteAll of 1 MiB", err)
	if ok, err := base.Exists(ctx, "big"); ok || err != nil {
		t.Errorf("base.Exists(big) = %v, %v; want false, nil: a failed write must not be committed", ok, err)
	}

	w, err := b.NewWriter(ctx, "existing", &blob.WriterOptions{ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(make([]byte, 600)); n != 600 || err != nil {
		t.Errorf("first Write of 600 bytes = %d, %v; want 600, nil", n, err)
	}
	n, err := w.Write(make([]byte, 600))
	if n != 400 {
		t.Errorf("second Write of 600 bytes: n = %d, want 400", n)
	}
	checkOutage(t, "second Write", err)
	checkOutage(t, "Close", w.Close())
	if got, err := base.ReadAll(ctx, "existing"); string(got) != "hello" || err != nil {
		t.Errorf("base.ReadAll(existing) = %q, %v; want the previous object %q", got, err, "hello")
	}
}

func TestWriteShorterThanAfterBytes(t *testing.T) {
	ctx := context.Background()
	base := newBase(t)
	b, in := failovertest.Wrap(base, nil)
	in.Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 1000})
	if err := b.WriteAll(ctx, "small", []byte("tiny"), nil); err != nil {
		t.Errorf("WriteAll of 4 bytes with AfterBytes 1000: %v, want nil", err)
	}
	if got, err := base.ReadAll(ctx, "small"); string(got) != "tiny" || err != nil {
		t.Errorf("base.ReadAll(small) = %q, %v; want %q", got, err, "tiny")
	}
}

func TestReadFailsPartWay(t *testing.T) {
	ctx := context.Background()
	base := newBase(t)
	data := bytes.Repeat([]byte("0123456789"), 1000)
	if err := base.WriteAll(ctx, "big", data, nil); err != nil {
		t.Fatal(err)
	}
	b, in := failovertest.Wrap(base, nil)
	in.Set(failovertest.OpRead, failovertest.Fault{AfterBytes: 1234, Err: syscall.ECONNRESET})

	got, err := b.ReadAll(ctx, "big")
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("ReadAll: err = %v, want ECONNRESET", err)
	}
	if !bytes.Equal(got, data[:1234]) {
		t.Errorf("ReadAll returned %d bytes, want the first 1234 of the object", len(got))
	}
}

func TestAppliedFailure(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		op   failovertest.Op
		call func(ctx context.Context, b *blob.Bucket) error
		want map[string]string
	}{
		{failovertest.OpWrite, func(ctx context.Context, b *blob.Bucket) error {
			return b.WriteAll(ctx, "new", []byte("fresh"), nil)
		}, map[string]string{"existing": "hello", "new": "fresh"}},
		{failovertest.OpCopy, func(ctx context.Context, b *blob.Bucket) error {
			return b.Copy(ctx, "copied", "existing", nil)
		}, map[string]string{"existing": "hello", "copied": "hello"}},
		{failovertest.OpDelete, func(ctx context.Context, b *blob.Bucket) error {
			return b.Delete(ctx, "existing")
		}, map[string]string{}},
	} {
		t.Run(tc.op.String(), func(t *testing.T) {
			base := newBase(t)
			b, in := failovertest.Wrap(base, nil)
			in.Set(tc.op, failovertest.Fault{Applied: true})
			checkOutage(t, "applied "+tc.op.String(), tc.call(ctx, b))
			if got := contents(t, base); !maps.Equal(got, tc.want) {
				t.Errorf("base = %v, want %v: the operation should have been applied", got, tc.want)
			}
		})
	}
}

func TestAppliedFailureReportsBaseError(t *testing.T) {
	b, in := failovertest.Wrap(newBase(t), nil)
	in.Set(failovertest.OpDelete, failovertest.Fault{Applied: true})
	err := b.Delete(context.Background(), "missing")
	if got := gcerrors.Code(err); got != gcerrors.NotFound {
		t.Errorf("applied Delete of a missing key: err = %v (code %v), want NotFound from the base", err, got)
	}
}

func TestDelays(t *testing.T) {
	errSlow := errors.New("slow and failed")
	for _, tc := range []struct {
		name        string
		fault       failovertest.Fault
		timeout     time.Duration
		wantErr     error
		wantElapsed time.Duration
	}{
		{"latency", failovertest.Fault{Latency: 2 * time.Second}, 3 * time.Second, nil, 2 * time.Second},
		{"latency past the deadline", failovertest.Fault{Latency: 2 * time.Second}, time.Second, context.DeadlineExceeded, time.Second},
		{"latency then error", failovertest.Fault{Latency: 2 * time.Second, Err: errSlow}, 3 * time.Second, errSlow, 2 * time.Second},
		{"hang", failovertest.Fault{Hang: true}, 5 * time.Second, context.DeadlineExceeded, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b, in := failovertest.Wrap(newBase(t), nil)
				in.Set(failovertest.OpAttributes, tc.fault)
				ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
				defer cancel()
				start := time.Now()
				_, err := b.Attributes(ctx, "existing")
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Attributes: err = %v, want %v", err, tc.wantErr)
				}
				if got := time.Since(start); got != tc.wantElapsed {
					t.Errorf("Attributes took %v, want %v", got, tc.wantElapsed)
				}
			})
		})
	}
}

func TestHangEveryOp(t *testing.T) {
	for _, tc := range opCalls {
		t.Run(tc.op.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				base := newBase(t)
				b, in := failovertest.Wrap(base, nil)
				want := contents(t, base)
				in.Hang()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				start := time.Now()
				if err := tc.call(ctx, b); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err = %v, want DeadlineExceeded", err)
				}
				if got := time.Since(start); got != 5*time.Second {
					t.Errorf("the call hung for %v, want 5s", got)
				}
				if got := contents(t, base); !maps.Equal(got, want) {
					t.Errorf("base after the hang = %v, want it unchanged: %v", got, want)
				}
			})
		})
	}
}

func TestHangCutsOpenWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newBase(t)
		b, in := failovertest.Wrap(base, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		w, err := b.NewWriter(ctx, "new", &blob.WriterOptions{ContentType: "text/plain"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("before ")); err != nil {
			t.Fatalf("Write before the hang: %v", err)
		}

		in.Hang()
		start := time.Now()
		if _, err := w.Write([]byte("after")); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Write during the hang: err = %v, want DeadlineExceeded", err)
		}
		if got := time.Since(start); got != 5*time.Second {
			t.Errorf("Write hung for %v, want 5s", got)
		}
		if err := w.Close(); err == nil {
			t.Error("Close after the hang = nil, want an error")
		}
		if ok, err := base.Exists(context.Background(), "new"); ok || err != nil {
			t.Errorf("base.Exists(new) = %v, %v; want false, nil", ok, err)
		}
		if got := in.Fired(failovertest.OpWrite); got != 1 {
			t.Errorf("Fired(OpWrite) = %d, want 1", got)
		}
	})
}

func TestOutageCutsOpenStreams(t *testing.T) {
	ctx := context.Background()
	base := newBase(t)
	if err := base.WriteAll(ctx, "big", make([]byte, 10000), nil); err != nil {
		t.Fatal(err)
	}
	b, in := failovertest.Wrap(base, nil)

	r, err := b.NewReader(ctx, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := b.NewWriter(ctx, "new", &blob.WriterOptions{ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 100)); err != nil {
		t.Fatalf("Read before the outage: %v", err)
	}
	if _, err := w.Write([]byte("before")); err != nil {
		t.Fatalf("Write before the outage: %v", err)
	}

	in.Outage(nil)
	_, err = r.Read(make([]byte, 100))
	checkOutage(t, "Read during the outage", err)
	checkOutage(t, "writer Close during the outage", w.Close())
	if ok, err := base.Exists(ctx, "new"); ok || err != nil {
		t.Errorf("base.Exists(new) = %v, %v; want false, nil", ok, err)
	}
	for _, op := range []failovertest.Op{failovertest.OpRead, failovertest.OpWrite} {
		if got := in.Calls(op); got != 1 {
			t.Errorf("Calls(%v) = %d, want 1: a stream counts once", op, got)
		}
		if got := in.Fired(op); got != 1 {
			t.Errorf("Fired(%v) = %d, want 1", op, got)
		}
	}
}

// firings makes n Attributes calls through a bucket whose Attributes fault
// is f and reports which ones failed.
func firings(t *testing.T, opts *failovertest.Options, f failovertest.Fault, n int) ([]bool, *failovertest.Injector) {
	t.Helper()
	b, in := failovertest.Wrap(newBase(t), opts)
	in.Set(failovertest.OpAttributes, f)
	got := make([]bool, n)
	for i := range got {
		_, err := b.Attributes(context.Background(), "existing")
		got[i] = errors.Is(err, failovertest.ErrOutage)
	}
	return got, in
}

func count(fired []bool) (n int64) {
	for _, f := range fired {
		if f {
			n++
		}
	}
	return n
}

func TestProbabilityIsSeeded(t *testing.T) {
	f := failovertest.Fault{Probability: 0.3}
	a, inA := firings(t, &failovertest.Options{Seed: 7}, f, 100)
	b, _ := firings(t, &failovertest.Options{Seed: 7}, f, 100)
	c, _ := firings(t, &failovertest.Options{Seed: 8}, f, 100)

	if !slices.Equal(a, b) {
		t.Errorf("seed 7 fired %v, then %v; want the same pattern", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 7 and 8 both fired %v; want different patterns", a)
	}
	if n := count(a); n < 15 || n > 45 {
		t.Errorf("Probability 0.3 fired %d times in 100 calls, want about 30", n)
	}
	if got, want := inA.Fired(failovertest.OpAttributes), count(a); got != want {
		t.Errorf("Fired = %d, want %d (the failed calls)", got, want)
	}
	if got := inA.Calls(failovertest.OpAttributes); got != 100 {
		t.Errorf("Calls = %d, want 100", got)
	}
}

func TestTimesLimitsFiring(t *testing.T) {
	got, in := firings(t, nil, failovertest.Fault{Times: 3}, 6)
	want := []bool{true, true, true, false, false, false}
	if !slices.Equal(got, want) {
		t.Errorf("Times 3 fired %v, want %v", got, want)
	}
	if n := in.Fired(failovertest.OpAttributes); n != 3 {
		t.Errorf("Fired = %d, want 3", n)
	}
}

func TestTimesCountsFiringsNotCalls(t *testing.T) {
	got, in := firings(t, &failovertest.Options{Seed: 1}, failovertest.Fault{Probability: 0.5, Times: 5}, 100)
	if n := count(got); n != 5 {
		t.Errorf("Probability 0.5 with Times 5 fired %d times in 100 calls, want 5", n)
	}
	if n := in.Fired(failovertest.OpAttributes); n != 5 {
		t.Errorf("Fired = %d, want 5", n)
	}
}

func TestAsReachesInjector(t *testing.T) {
	b, in := failovertest.Wrap(newBase(t), nil)
	var got *failovertest.Injector
	if !b.As(&got) || got != in {
		t.Errorf("As(**Injector) gave %p, want the Injector Wrap returned (%p)", got, in)
	}
}

func TestCloseLeavesBaseOpen(t *testing.T) {
	base := newBase(t)
	b, _ := failovertest.Wrap(base, nil)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := base.ReadAll(context.Background(), "existing"); err != nil {
		t.Errorf("reading base after closing the wrapper: %v, want nil", err)
	}
}

func TestOpString(t *testing.T) {
	for _, tc := range []struct {
		op   failovertest.Op
		want string
	}{
		{failovertest.OpAttributes, "Attributes"},
		{failovertest.OpList, "List"},
		{failovertest.OpRead, "Read"},
		{failovertest.OpWrite, "Write"},
		{failovertest.OpCopy, "Copy"},
		{failovertest.OpDelete, "Delete"},
		{failovertest.OpSignedURL, "SignedURL"},
		{failovertest.Op(99), "Op(99)"},
	} {
		if got := tc.op.String(); got != tc.want {
			t.Errorf("Op(%d).String() = %q, want %q", int(tc.op), got, tc.want)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	b, in := failovertest.Wrap(newBase(t), &failovertest.Options{Seed: 3})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			in.Outage(nil)
			in.Set(failovertest.OpRead, failovertest.Fault{Probability: 0.5, AfterBytes: 2})
			in.Heal()
		}
	}()
	var calls int64
	for range 200 {
		_, _ = b.ReadAll(ctx, "existing")
		_, _ = b.Attributes(ctx, "existing")
		calls++
	}
	<-done
	for _, op := range []failovertest.Op{failovertest.OpRead, failovertest.OpAttributes} {
		if got := in.Calls(op); got != calls {
			t.Errorf("Calls(%v) = %d, want %d", op, got, calls)
		}
	}
}

// errBadName is what a test's Refuse rule answers, as fileblob answers a key
// it cannot store: an error with no gcerrors code.
var errBadName = errors.New("bad name")

func refuseAttrs(key string) error {
	if strings.HasSuffix(key, ".attrs") {
		return errBadName
	}
	return nil
}

// refusedCalls makes one call of each op that can name a key about a key the
// rule refuses, with the code a driver's uncoded error gets.
var refusedCalls = []struct {
	op   failovertest.Op
	call func(ctx context.Context, b *blob.Bucket) error
}{
	{failovertest.OpAttributes, func(ctx context.Context, b *blob.Bucket) error {
		_, err := b.Attributes(ctx, "x.attrs")
		return err
	}},
	{failovertest.OpRead, func(ctx context.Context, b *blob.Bucket) error {
		_, err := b.ReadAll(ctx, "x.attrs")
		return err
	}},
	{failovertest.OpWrite, func(ctx context.Context, b *blob.Bucket) error {
		return b.WriteAll(ctx, "x.attrs", []byte("fresh"), &blob.WriterOptions{ContentType: "text/plain"})
	}},
	{failovertest.OpCopy, func(ctx context.Context, b *blob.Bucket) error {
		return b.Copy(ctx, "x.attrs", "existing", nil)
	}},
	{failovertest.OpCopy, func(ctx context.Context, b *blob.Bucket) error {
		return b.Copy(ctx, "copied", "x.attrs", nil)
	}},
	{failovertest.OpDelete, func(ctx context.Context, b *blob.Bucket) error {
		return b.Delete(ctx, "x.attrs")
	}},
}

// A refused key is refused before any fault, even during an outage, and the
// call never reaches the base; other keys are served as usual.
func TestRefuseComesFirstAndChangesNothing(t *testing.T) {
	ctx := context.Background()
	for _, tc := range refusedCalls {
		t.Run(tc.op.String(), func(t *testing.T) {
			base := newBase(t)
			b, in := failovertest.Wrap(base, nil)
			in.Refuse(refuseAttrs)
			in.Outage(nil)
			want := contents(t, base)

			err := tc.call(ctx, b)
			if !errors.Is(err, errBadName) || gcerrors.Code(err) != gcerrors.Unknown {
				t.Errorf("refused call during an outage: err = %v (code %v), want the rule's error, code Unknown", err, gcerrors.Code(err))
			}
			if got := contents(t, base); !maps.Equal(got, want) {
				t.Errorf("base after the refused call = %v, want it unchanged: %v", got, want)
			}
			if got := in.Refused(tc.op); got != 1 {
				t.Errorf("Refused(%v) = %d, want 1", tc.op, got)
			}
			if got := in.Calls(tc.op); got != 1 {
				t.Errorf("Calls(%v) = %d, want 1", tc.op, got)
			}

			in.Heal()
			if err := tc.call(ctx, b); !errors.Is(err, errBadName) {
				t.Errorf("after Heal: err = %v, want the rule's error still", err)
			}
			if _, err := b.Attributes(ctx, "existing"); err != nil {
				t.Errorf("a key the rule lets through: %v", err)
			}
			in.Refuse(nil)
			if err := tc.call(ctx, b); errors.Is(err, errBadName) {
				t.Errorf("after Refuse(nil): err = %v, want the call let through", err)
			}
		})
	}
}
