package failoverblob_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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

// fleet is several failover buckets (instances) over the same two sides,
// each with the default journal (kept on the sides) and its own fault
// injectors, as replicas of a service in separate processes would be.
type fleet struct {
	t   *testing.T
	ctx context.Context
	raw [2]*blob.Bucket
	in  []*instance
}

type instance struct {
	f      *failoverblob.Failover
	faults [2]*failovertest.Injector
}

func newFleet(t *testing.T, n int, opts failoverblob.Options) *fleet {
	t.Helper()
	fl := &fleet{t: t, ctx: context.Background(), raw: [2]*blob.Bucket{memblob.OpenBucket(nil), memblob.OpenBucket(nil)}}
	t.Cleanup(func() {
		for _, b := range fl.raw {
			b.Close()
		}
	})
	for range n {
		fl.start(opts)
	}
	return fl
}

// start starts an instance with only the buckets to go on, with the sides
// in down taken down for it before it opens.
func (fl *fleet) start(opts failoverblob.Options, down ...int) *instance {
	fl.t.Helper()
	in := &instance{}
	var sides [2]*blob.Bucket
	for i := range sides {
		sides[i], in.faults[i] = failovertest.Wrap(fl.raw[i], nil)
	}
	for _, i := range down {
		in.faults[i].Outage(nil)
	}
	if opts.Breaker == nil {
		opts.Breaker = &circuit.Settings{ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 }, Timeout: time.Minute}
	}
	f, err := failoverblob.New(fl.ctx, sides[0], sides[1], &opts)
	if err != nil {
		fl.t.Fatal(err)
	}
	in.f = f
	fl.t.Cleanup(func() { _ = f.Close() })
	fl.in = append(fl.in, in)
	return in
}

// down takes side i down for every instance; heal heals both and waits
// past the breakers' timeout.
func (fl *fleet) down(i int) {
	for _, in := range fl.in {
		in.faults[i].Outage(nil)
	}
}

func (fl *fleet) heal() {
	for _, in := range fl.in {
		in.faults[0].Heal()
		in.faults[1].Heal()
	}
	time.Sleep(2 * time.Minute)
}

func (in *instance) read(ctx context.Context, key string) string {
	b, err := in.f.Bucket().ReadAll(ctx, key)
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

func (fl *fleet) content(i int, key string) string {
	b, err := fl.raw[i].ReadAll(fl.ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return "<absent>"
	}
	if err != nil {
		fl.t.Fatal(err)
	}
	return string(b)
}

// An instance learns of another instance's redirected write when it
// refreshes from the journal on the buckets, and then reads it, not the
// primary's older version.
func TestInstanceLearnsOfAnotherInstancesRedirectedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 2, failoverblob.Options{})
		a, b := fl.in[0], fl.in[1]
		if err := a.f.Bucket().WriteAll(fl.ctx, "k", []byte("v1"), nil); err != nil {
			t.Fatal(err)
		}
		fl.down(0)
		if err := a.f.Bucket().WriteAll(fl.ctx, "k", []byte("v2"), nil); err != nil {
			t.Fatal(err)
		}
		fl.heal()
		if err := b.f.Refresh(fl.ctx); err != nil {
			t.Fatal(err)
		}
		if got := b.read(fl.ctx, "k"); got != "v2" {
			t.Errorf("the other instance after Refresh reads %q, want v2", got)
		}
		if n := b.f.Status().Pending; n != 1 {
			t.Errorf("the other instance's pending entries: %d, want 1 (the fleet's)", n)
		}
	})
}

// While the primary is down, an instance that has not learnt of another
// instance's redirected write reads it from the secondary once the journal,
// which it reads then, describes the copy; a copy no entry describes (a
// write cut between its entry and its data) is not served.
func TestInstanceReadsAnotherInstancesRedirectedWriteWhileThePrimaryIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 2, failoverblob.Options{})
		a, b := fl.in[0], fl.in[1]
		fl.down(0)
		if err := a.f.Bucket().WriteAll(fl.ctx, "k", []byte("v1"), nil); err != nil {
			t.Fatal(err)
		}
		if err := fl.raw[1].WriteAll(fl.ctx, "orphan", []byte("cut"), nil); err != nil {
			t.Fatal(err)
		}
		if got := b.read(fl.ctx, "k"); got != "v1" {
			t.Errorf("the other instance reads %q, want v1", got)
		}
		if got := b.read(fl.ctx, "orphan"); got != "<unavailable>" {
			t.Errorf("the other instance reads a copy no entry describes as %q, want <unavailable>", got)
		}
	})
}

// A new instance with only the buckets (the writer died) knows the pending
// work at once and reconciles it.
func TestNewInstanceRecoversAnotherInstancesOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 1, failoverblob.Options{})
		a := fl.in[0]
		if err := a.f.Bucket().WriteAll(fl.ctx, "k", []byte("v1"), nil); err != nil {
			t.Fatal(err)
		}
		if err := a.f.Bucket().WriteAll(fl.ctx, "gone", []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
		fl.down(0)
		if err := a.f.Bucket().WriteAll(fl.ctx, "k", []byte("v2"), nil); err != nil {
			t.Fatal(err)
		}
		if err := a.f.Bucket().Delete(fl.ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		// a dies here: nothing of it but the buckets is left.
		fl.heal()
		c := fl.start(failoverblob.Options{})
		if got := c.read(fl.ctx, "k"); got != "v2" {
			t.Errorf("new instance reads %q, want v2", got)
		}
		if got := c.read(fl.ctx, "gone"); got != "<not found>" {
			t.Errorf("new instance reads the deleted key as %q, want <not found>", got)
		}
		rep, err := c.f.Drain(fl.ctx)
		if err != nil || rep.Remaining != 0 {
			t.Fatalf("Drain: %+v, %v", rep, err)
		}
		for key, want := range map[string][2]string{"k": {"v2", "<absent>"}, "gone": {"<absent>", "<absent>"}} {
			if p, s := fl.content(0, key), fl.content(1, key); p != want[0] || s != want[1] {
				t.Errorf("%s after the drain: primary %q, secondary %q; want %q, %q", key, p, s, want[0], want[1])
			}
		}
		entries, err := journal.NewBucket(fl.raw[0], fl.raw[1], nil).List(fl.ctx)
		if err != nil || len(entries) != 0 {
			t.Errorf("journal after the drain: %d entries, %v; want none", len(entries), err)
		}
	})
}

// An acknowledged delete by one instance is never undone by another's
// reconciler, even if the deleting instance did not yet know the key was
// pending (it had not refreshed).
func TestDeleteByAnInstanceIsNotUndoneByAnothersReconcile(t *testing.T) {
	for _, mode := range []failoverblob.Mode{failoverblob.Redirect, failoverblob.Mirror} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fl := newFleet(t, 2, failoverblob.Options{Mode: mode})
				a, b := fl.in[0], fl.in[1]
				if err := a.f.Bucket().WriteAll(fl.ctx, "k", []byte("v1"), nil); err != nil {
					t.Fatal(err)
				}
				down := 0
				if mode == failoverblob.Mirror {
					down = 1 // v2 then misses the secondary
				}
				fl.down(down)
				if err := a.f.Bucket().WriteAll(fl.ctx, "k", []byte("v2"), nil); err != nil {
					t.Fatal(err)
				}
				fl.heal()
				if err := b.f.Bucket().Delete(fl.ctx, "k"); err != nil {
					t.Fatalf("delete by the other instance: %v", err)
				}
				if _, err := a.f.Drain(fl.ctx); err != nil {
					t.Fatal(err)
				}
				for i, in := range fl.in {
					if got := in.read(fl.ctx, "k"); got != "<not found>" {
						t.Errorf("instance %d reads %q after the drain, want <not found>", i, got)
					}
				}
				if p, s := fl.content(0, "k"), fl.content(1, "k"); p != "<absent>" || s != "<absent>" {
					t.Errorf("after the drain: primary %q, secondary %q; want both absent", p, s)
				}
			})
		})
	}
}

// With StrictReads an instance reads another's redirected write before it
// has learnt of it, by comparing both sides' versions; without, it reads
// the primary's older version until it refreshes.
func TestStrictReadsSeeAnotherInstancesWriteAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 1, failoverblob.Options{})
		a := fl.in[0]
		if err := a.f.Bucket().WriteAll(fl.ctx, "k", []byte("v1"), nil); err != nil {
			t.Fatal(err)
		}
		lax := fl.start(failoverblob.Options{})
		strict := fl.start(failoverblob.Options{StrictReads: true})
		fl.down(0)
		for k, v := range map[string]string{"k": "v2", "new": "n1"} {
			if err := a.f.Bucket().WriteAll(fl.ctx, k, []byte(v), nil); err != nil {
				t.Fatal(err)
			}
		}
		fl.heal()
		for k, want := range map[string][2]string{"k": {"v1", "v2"}, "new": {"<not found>", "n1"}} {
			if got := lax.read(fl.ctx, k); got != want[0] {
				t.Errorf("the lax instance, not refreshed, reads %s as %q; the test expects the primary's answer, %q", k, got, want[0])
			}
			if got := strict.read(fl.ctx, k); got != want[1] {
				t.Errorf("the strict instance, not refreshed, reads %s as %q, want %q", k, got, want[1])
			}
		}
		fl.down(1)
		if got := strict.read(fl.ctx, "k"); got != "<unavailable>" {
			t.Errorf("the strict instance with the secondary down reads %q, want <unavailable>", got)
		}
	})
}

// Reconcile leases: two instances draining at once split the work by
// shard, so a key is copied once; the leases of an instance that died are
// taken over once they expire.
func TestReconcileLeasesSplitTheWorkAndExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var copies atomic.Int64
		opts := failoverblob.Options{OnRepair: func(r failoverblob.Repair) {
			if r.Bytes > 0 {
				copies.Add(1)
			}
		}}
		fl := newFleet(t, 2, opts)
		a, b := fl.in[0], fl.in[1]
		fl.down(0)
		const n = 40
		for i := range n {
			if err := a.f.Bucket().WriteAll(fl.ctx, fmt.Sprintf("k%02d", i), []byte("v"), nil); err != nil {
				t.Fatal(err)
			}
		}
		fl.heal()
		for _, in := range fl.in {
			in.faults[0].Set(failovertest.OpWrite, failovertest.Fault{Latency: time.Second})
		}
		var wg sync.WaitGroup
		reps := make([]failoverblob.Report, 2)
		for i, in := range []*instance{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if reps[i], err = in.f.Drain(fl.ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if got := copies.Load(); got != n {
			t.Errorf("copies made by the two instances: %d, want %d (each key once)", got, n)
		}
		if reps[0].Leased+reps[1].Leased == 0 {
			t.Errorf("reports %+v and %+v: neither left work to the other", reps[0], reps[1])
		}
		for i := range n {
			if got := fl.content(0, fmt.Sprintf("k%02d", i)); got != "v" {
				t.Fatalf("k%02d on the primary: %q", i, got)
			}
		}

		// An instance that took every lease of the primary and died.
		fl.down(0)
		if err := a.f.Bucket().WriteAll(fl.ctx, "late", []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		fl.heal()
		for sh := range 64 {
			name := fmt.Sprintf("%sleases/primary/%02d", failoverblob.ReservedPrefix, sh)
			md := map[string]string{"failover-lease-holder": "dead", "failover-lease-until": fmt.Sprint(time.Now().Add(time.Hour).UnixNano())}
			if err := fl.raw[0].WriteAll(fl.ctx, name, []byte("dead"), &blob.WriterOptions{Metadata: md}); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := b.f.Drain(fl.ctx)
		if err != nil || rep.Leased != 1 || rep.Remaining != 1 {
			t.Errorf("drain while the dead instance's lease lasts: %+v, %v; want the key left pending", rep, err)
		}
		time.Sleep(time.Hour + time.Minute)
		rep, err = b.f.Drain(fl.ctx)
		if err != nil || rep.Leased != 0 || rep.Remaining != 0 || rep.Copied != 1 {
			t.Errorf("drain once the lease expired: %+v, %v; want the key repaired", rep, err)
		}
	})
}

// A lease left by an instance that died after its work was acknowledged
// (so no pass reaches its shard to take it over) is removed by the next
// pass of another instance once it has expired; a live lease of another
// instance is left alone; and an instance with nothing pending and no lease
// left lists no leases.
func TestLeaseLeftByADeadInstanceIsRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 1, failoverblob.Options{})
		a := fl.in[0]
		fl.down(0)
		if err := a.f.Bucket().WriteAll(fl.ctx, "k", []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		fl.heal()
		if rep, err := a.f.Drain(fl.ctx); err != nil || rep.Remaining != 0 {
			t.Fatalf("Drain: %+v, %v", rep, err)
		}
		leases := func() []string {
			var names []string
			for i, b := range fl.raw {
				objs, _, err := b.ListPage(fl.ctx, blob.FirstPageToken, 1000, &blob.ListOptions{Prefix: failoverblob.ReservedPrefix + "leases/"})
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range objs {
					names = append(names, fmt.Sprintf("%d:%s", i, o.Key))
				}
			}
			return names
		}
		if got := leases(); len(got) != 0 {
			t.Fatalf("leases after the drain: %v, want none", got)
		}
		// An instance dies holding the lease of k's shard, its work done,
		// and another holds a lease it is using.
		lease := func(shard int, holder string, until time.Time) {
			name := fmt.Sprintf("%sleases/primary/%02d", failoverblob.ReservedPrefix, shard)
			md := map[string]string{"failover-lease-holder": holder, "failover-lease-until": fmt.Sprint(until.UnixNano())}
			if err := fl.raw[0].WriteAll(fl.ctx, name, []byte(holder), &blob.WriterOptions{Metadata: md}); err != nil {
				t.Fatal(err)
			}
		}
		lease(1, "dead", time.Now().Add(time.Minute))
		lease(2, "alive", time.Now().Add(time.Hour))
		b := fl.start(failoverblob.Options{})
		if _, err := b.f.Drain(fl.ctx); err != nil {
			t.Fatal(err)
		}
		if got := leases(); len(got) != 2 {
			t.Errorf("leases after a drain while both last: %v, want both", got)
		}
		time.Sleep(time.Minute + 10*time.Second) // past the dead one's expiry and MaxClockSkew
		if _, err := b.f.Drain(fl.ctx); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("0:%sleases/primary/02", failoverblob.ReservedPrefix)
		if got := leases(); len(got) != 1 || got[0] != want {
			t.Errorf("leases after a drain once the dead one expired: %v, want only %s", got, want)
		}
		time.Sleep(time.Hour)
		if _, err := b.f.Drain(fl.ctx); err != nil {
			t.Fatal(err)
		}
		if got := leases(); len(got) != 0 {
			t.Errorf("leases after a drain once both expired: %v, want none", got)
		}
		lists := b.faults[0].Calls(failovertest.OpList)
		if _, err := b.f.Drain(fl.ctx); err != nil {
			t.Fatal(err)
		}
		if n := b.faults[0].Calls(failovertest.OpList) - lists; n != 1 {
			t.Errorf("an idle drain with no lease left listed the primary %d times, want 1 (the journal)", n)
		}
	})
}
