package failoverblob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// rig is a failover bucket over two memblob buckets, each behind a
// fault-injecting wrapper, with the raw buckets kept for inspection.
type rig struct {
	t        *testing.T
	f        *failoverblob.Failover
	b        *blob.Bucket
	raw      [2]*blob.Bucket // primary, secondary as stored
	sides    [2]*blob.Bucket // raw behind the fault injectors, as given to New
	faults   [2]*failovertest.Injector
	journal  *journal.Memory
	ctx      context.Context
	breakers [2]*circuit.Settings
}

func newRig(t *testing.T, opts failoverblob.Options) *rig {
	t.Helper()
	r := &rig{t: t, ctx: context.Background(), journal: journal.NewMemory()}
	for i := range r.sides {
		r.raw[i] = memblob.OpenBucket(nil)
		r.sides[i], r.faults[i] = failovertest.Wrap(r.raw[i], nil)
	}
	if opts.Journal == nil {
		opts.Journal = r.journal
	}
	if opts.Breaker == nil {
		// Trip on the first outage, so each case states its faults simply.
		opts.Breaker = &circuit.Settings{ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 }, Timeout: time.Minute}
	}
	f, err := failoverblob.New(r.ctx, r.sides[0], r.sides[1], &opts)
	if err != nil {
		t.Fatal(err)
	}
	r.f, r.b = f, f.Bucket()
	t.Cleanup(func() {
		// A test may have closed it already.
		if err := f.Close(); err != nil && gcerrors.Code(err) != gcerrors.FailedPrecondition {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

const (
	primary   = 0
	secondary = 1
)

// content returns what side i holds for key, or "<absent>".
func (r *rig) content(i int, key string) string {
	b, err := r.raw[i].ReadAll(r.ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return "<absent>"
	}
	if err != nil {
		r.t.Fatalf("reading %q from side %d: %v", key, i, err)
	}
	return string(b)
}

// read returns what the failover bucket serves for key, or the error code.
func (r *rig) read(key string) string {
	b, err := r.b.ReadAll(r.ctx, key)
	switch {
	case errors.Is(err, failoverblob.ErrUnavailable):
		return "<unavailable>"
	case gcerrors.Code(err) == gcerrors.NotFound:
		return "<not found>"
	case err != nil:
		return "<error " + err.Error() + ">"
	}
	return string(b)
}

func (r *rig) write(key, value string) error {
	return r.b.WriteAll(r.ctx, key, []byte(value), nil)
}

// streamed writes value in 100-byte pieces, as a streaming caller would.
func (r *rig) streamed(key, value string) error {
	w, err := r.b.NewWriter(r.ctx, key, &blob.WriterOptions{ContentType: "text/plain"})
	if err != nil {
		return err
	}
	for rest := []byte(value); len(rest) > 0; {
		n := min(100, len(rest))
		if _, err := w.Write(rest[:n]); err != nil {
			_ = w.Close()
			return err
		}
		rest = rest[n:]
	}
	return w.Close()
}

func (r *rig) drain() failoverblob.Report {
	r.t.Helper()
	rep, err := r.f.Drain(r.ctx)
	if err != nil {
		r.t.Fatalf("Drain: %v", err)
	}
	return rep
}

func (r *rig) keys() []string {
	var keys []string
	it := r.b.List(nil)
	for {
		o, err := it.Next(r.ctx)
		if err == io.EOF {
			return keys
		}
		if err != nil {
			return []string{"<list error: " + err.Error() + ">"}
		}
		keys = append(keys, o.Key)
	}
}

func errCode(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, failoverblob.ErrUnavailable):
		return "unavailable"
	default:
		return gcerrors.Code(err).String()
	}
}

var big = string(bytes.Repeat([]byte("0123456789abcdef"), 4096)) // 64 KiB

// TestOutages walks each outage case: what the caller sees, where the data
// is before reconciling, and where it is after the side recovers and Drain
// runs.
func TestOutages(t *testing.T) {
	type where struct{ primary, secondary string }
	cases := []struct {
		name string
		opts failoverblob.Options
		// act injects faults and makes the calls; it returns the error of
		// the call under test.
		act          func(r *rig) error
		wantErr      string
		wantRead     string // what a read of "k" returns before recovery
		wantBefore   where  // "k" on each side before recovery
		wantPending  int
		wantAfter    where // "k" on each side after Heal and Drain
		wantReadLast string
	}{
		{
			name: "redirect on open breaker",
			act: func(r *rig) error {
				r.faults[primary].Outage(nil)
				_ = r.write("trip", "x") // trips the breaker, redirected
				return r.write("k", "v1")
			},
			wantErr: "ok", wantRead: "v1",
			wantBefore: where{"<absent>", "v1"}, wantPending: 2,
			wantAfter: where{"v1", "<absent>"}, wantReadLast: "v1",
		},
		{
			name: "redirect on a write failing mid-stream",
			act: func(r *rig) error {
				r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 1000})
				return r.streamed("k", big)
			},
			wantErr: "ok", wantRead: big,
			wantBefore: where{"<absent>", big}, wantPending: 1,
			wantAfter: where{big, "<absent>"}, wantReadLast: big,
		},
		{
			name: "redirect on a hung primary (idle timeout)",
			opts: failoverblob.Options{IdleTimeout: 2 * time.Second, CallTimeout: 2 * time.Second},
			act: func(r *rig) error {
				r.faults[primary].Hang()
				return r.write("k", "v1")
			},
			wantErr: "ok", wantRead: "v1",
			wantBefore: where{"<absent>", "v1"}, wantPending: 1,
			wantAfter: where{"v1", "<absent>"}, wantReadLast: "v1",
		},
		{
			name: "mirror, ack either, secondary down",
			opts: failoverblob.Options{Mode: failoverblob.Mirror},
			act: func(r *rig) error {
				r.faults[secondary].Outage(nil)
				return r.write("k", "v1")
			},
			wantErr: "ok", wantRead: "v1",
			wantBefore: where{"v1", "<absent>"}, wantPending: 1,
			wantAfter: where{"v1", "v1"}, wantReadLast: "v1",
		},
		{
			name: "mirror, ack either, primary down",
			opts: failoverblob.Options{Mode: failoverblob.Mirror},
			act: func(r *rig) error {
				r.faults[primary].Outage(nil)
				return r.write("k", "v1")
			},
			wantErr: "ok", wantRead: "v1",
			wantBefore: where{"<absent>", "v1"}, wantPending: 1,
			wantAfter: where{"v1", "v1"}, wantReadLast: "v1",
		},
		{
			name: "mirror, ack both, secondary down",
			opts: failoverblob.Options{Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth},
			act: func(r *rig) error {
				r.faults[secondary].Outage(nil)
				return r.write("k", "v1")
			},
			wantErr: "unavailable", wantRead: "<not found>",
			wantBefore: where{"<absent>", "<absent>"}, wantPending: 0,
			wantAfter: where{"<absent>", "<absent>"}, wantReadLast: "<not found>",
		},
		{
			name: "mirror, ack both, secondary fails at commit",
			opts: failoverblob.Options{Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth},
			act: func(r *rig) error {
				// Every byte passes; the commit fails.
				r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 16})
				return r.streamed("k", "0123456789abcdef")
			},
			// Not acknowledged, but the primary holds it: a repair is
			// recorded so the sides converge.
			wantErr: "unavailable", wantRead: "0123456789abcdef",
			wantBefore: where{"0123456789abcdef", "<absent>"}, wantPending: 1,
			wantAfter: where{"0123456789abcdef", "0123456789abcdef"}, wantReadLast: "0123456789abcdef",
		},
		{
			name: "both sides down",
			act: func(r *rig) error {
				r.faults[primary].Outage(nil)
				r.faults[secondary].Outage(nil)
				return r.write("k", "v1")
			},
			wantErr: "unavailable", wantRead: "<unavailable>",
			wantBefore: where{"<absent>", "<absent>"}, wantPending: 0,
			wantAfter: where{"<absent>", "<absent>"}, wantReadLast: "<not found>",
		},
		{
			name: "delete during outage",
			act: func(r *rig) error {
				if err := r.write("k", "v1"); err != nil {
					return err
				}
				r.faults[primary].Outage(nil)
				return r.b.Delete(r.ctx, "k")
			},
			wantErr: "ok", wantRead: "<not found>",
			wantBefore: where{"v1", "<absent>"}, wantPending: 1,
			wantAfter: where{"<absent>", "<absent>"}, wantReadLast: "<not found>",
		},
		{
			name: "delete during outage of a redirected write",
			act: func(r *rig) error {
				r.faults[primary].Outage(nil)
				if err := r.write("k", "v1"); err != nil {
					return err
				}
				return r.b.Delete(r.ctx, "k")
			},
			wantErr: "ok", wantRead: "<not found>",
			wantBefore: where{"<absent>", "<absent>"}, wantPending: 2,
			wantAfter: where{"<absent>", "<absent>"}, wantReadLast: "<not found>",
		},
		{
			name: "ambiguous write: applied but reported failed",
			act: func(r *rig) error {
				r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
				return r.write("k", "v1")
			},
			wantErr: "ok", wantRead: "v1",
			wantBefore: where{"v1", "v1"}, wantPending: 1,
			wantAfter: where{"v1", "<absent>"}, wantReadLast: "v1",
		},
		{
			name: "read miss on the secondary while the primary is down",
			act: func(r *rig) error {
				if err := r.write("k", "v1"); err != nil {
					return err
				}
				r.faults[primary].Outage(nil)
				return nil
			},
			wantErr: "ok", wantRead: "<unavailable>",
			wantBefore: where{"v1", "<absent>"}, wantPending: 0,
			wantAfter: where{"v1", "<absent>"}, wantReadLast: "v1",
		},
		{
			name: "mirror: read miss on the secondary while the primary is down",
			opts: failoverblob.Options{Mode: failoverblob.Mirror},
			act: func(r *rig) error {
				r.faults[primary].Outage(nil)
				return nil
			},
			wantErr: "ok", wantRead: "<not found>",
			wantBefore: where{"<absent>", "<absent>"}, wantPending: 0,
			wantAfter: where{"<absent>", "<absent>"}, wantReadLast: "<not found>",
		},
		{
			name: "a redirected key is unavailable while the secondary is down",
			act: func(r *rig) error {
				r.faults[primary].Outage(nil)
				if err := r.write("k", "v1"); err != nil {
					return err
				}
				r.faults[secondary].Outage(nil)
				return nil
			},
			wantErr: "ok", wantRead: "<unavailable>",
			wantBefore: where{"<absent>", "v1"}, wantPending: 1,
			wantAfter: where{"v1", "<absent>"}, wantReadLast: "v1",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, tc.opts)
				err := tc.act(r)
				if got := errCode(err); got != tc.wantErr {
					t.Errorf("call under test: got %s (%v), want %s", got, err, tc.wantErr)
				}
				if got := r.read("k"); got != tc.wantRead {
					t.Errorf("read during the outage: got %.40q, want %.40q", got, tc.wantRead)
				}
				if got := (where{r.content(primary, "k"), r.content(secondary, "k")}); got != tc.wantBefore {
					t.Errorf("sides during the outage: got %.40q, want %.40q", got, tc.wantBefore)
				}
				if got := r.journal.Len(); got != tc.wantPending {
					t.Errorf("pending entries during the outage: got %d, want %d", got, tc.wantPending)
				}
				r.faults[primary].Heal()
				r.faults[secondary].Heal()
				time.Sleep(2 * time.Minute) // past the breaker's open timeout
				r.drain()
				if got := (where{r.content(primary, "k"), r.content(secondary, "k")}); got != tc.wantAfter {
					t.Errorf("sides after reconcile: got %.40q, want %.40q", got, tc.wantAfter)
				}
				if got := r.journal.Len(); got != 0 {
					t.Errorf("pending entries after reconcile: got %d, want 0", got)
				}
				if got := r.read("k"); got != tc.wantReadLast {
					t.Errorf("read after reconcile: got %.40q, want %.40q", got, tc.wantReadLast)
				}
			})
		})
	}
}
