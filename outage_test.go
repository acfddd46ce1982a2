package failoverblob_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
)

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
