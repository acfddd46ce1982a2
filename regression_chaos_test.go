package failoverblob_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A write redirected while the primary is down that the secondary refuses
// (a name it cannot store, as fileblob refuses some) gets the secondary's
// answer, not ErrUnavailable, and does not count against the secondary.
func TestRedirectedWriteTheSecondaryRefusesIsItsAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		refusal := errors.New("the side refuses the key")
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{Err: refusal})
		err := r.write("k", "v")
		if err == nil || errors.Is(err, failoverblob.ErrUnavailable) || !errors.Is(err, refusal) {
			t.Fatalf("write = %v; want the secondary's refusal, not ErrUnavailable", err)
		}
		if st := r.f.Status().Secondary; st.State != circuit.StateClosed || st.Failures != 0 {
			t.Errorf("secondary after its refusal: %s with %d failures; want closed, none", st.State, st.Failures)
		}
	})
}

// A Copy whose source another process overwrites between reading its
// attributes and opening its reader never pairs one object's metadata with
// the other's bytes.
func TestCopyNeverPairsOneObjectsMetadataWithAnothersBytes(t *testing.T) {
	ctx := context.Background()
	p, s := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	drv, _ := failovertest.NewDriver(p, nil)
	racing := &overwriteOnRead{Bucket: drv, raw: p, key: "src"}
	pw := blob.NewBucket(racing)
	f, err := failoverblob.New(ctx, pw, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := f.Bucket()
	if err := b.WriteAll(ctx, "src", []byte("old"), &blob.WriterOptions{Metadata: map[string]string{"which": "old"}}); err != nil {
		t.Fatal(err)
	}
	racing.armed.Store(true)
	if err := b.Copy(ctx, "dst", "src", nil); err != nil {
		t.Fatal(err)
	}
	if !racing.fired.Load() {
		t.Fatal("the source was not overwritten while the copy opened it")
	}
	a, err := b.Attributes(ctx, "dst")
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.ReadAll(ctx, "dst")
	if err != nil {
		t.Fatal(err)
	}
	if a.Metadata["which"] != string(got) {
		t.Errorf("dst holds %q with the metadata of %q", got, a.Metadata["which"])
	}
}

// overwriteOnRead is a side on which another process overwrites key (with
// "new", labelled so) just as the first reader of it is opened once armed.
type overwriteOnRead struct {
	driver.Bucket
	raw          *blob.Bucket
	key          string
	armed, fired atomic.Bool
}

func (o *overwriteOnRead) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	if key == o.key && o.armed.Load() && o.fired.CompareAndSwap(false, true) {
		if err := o.raw.WriteAll(ctx, key, []byte("new"), &blob.WriterOptions{Metadata: map[string]string{"which": "new"}}); err != nil {
			return nil, err
		}
	}
	return o.Bucket.NewRangeReader(ctx, key, offset, length, opts)
}

// A refused delete's tombstone that its withdrawal could not drop from the
// journal (the side keeping it failed the acknowledgement) is no hint: the
// key still reads as written, and the next pass acknowledges the tombstone
// with the write's entry instead of leaving it pending for good.
func TestWithdrawnTombstoneTheJournalKeptIsAcknowledged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var sides [2]*blob.Bucket
		var faults [2]*failovertest.Injector
		for i := range sides {
			sides[i], faults[i] = failovertest.Wrap(memblob.OpenBucket(nil), nil)
		}
		j := journal.NewBucket(sides[primary], sides[secondary], nil)
		f, err := failoverblob.New(ctx, sides[primary], sides[secondary], &failoverblob.Options{
			Journal: j,
			Breaker: &circuit.Settings{ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 }, Timeout: time.Minute},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := f.Bucket()
		read := func() string {
			got, err := b.ReadAll(ctx, "k")
			if err != nil {
				return err.Error()
			}
			return string(got)
		}
		faults[primary].Outage(nil)
		if err := b.WriteAll(ctx, "k", []byte("v2"), nil); err != nil { // redirected: k is pending
			t.Fatal(err)
		}
		// The delete's tombstone is recorded on the secondary first; the
		// caller's hook refuses the delete, and dropping the tombstone
		// fails once.
		faults[secondary].Set(failovertest.OpDelete, failovertest.Fault{Times: 1})
		refused := errors.New("refused")
		err = b.DeleteWithOptions(ctx, "k", &blob.DeleteOptions{BeforeDelete: func(func(any) bool) error { return refused }})
		if !errors.Is(err, refused) {
			t.Fatalf("delete = %v, want the hook's refusal", err)
		}
		if got := read(); got != "v2" {
			t.Fatalf("k after the refused delete: %s, want v2", got)
		}
		faults[primary].Heal()
		faults[secondary].Heal()
		time.Sleep(2 * time.Minute) // the primary's breaker half-opens
		if err := f.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if got := read(); got != "v2" {
			t.Fatalf("k once the journal is read again: %s, want v2", got)
		}
		rep, err := f.Drain(ctx)
		if err != nil || rep.Remaining != 0 {
			t.Fatalf("Drain = %+v, %v; want nothing remaining", rep, err)
		}
		if got := read(); got != "v2" {
			t.Errorf("k after the drain: %s, want v2", got)
		}
		if es, err := j.List(ctx); err != nil || len(es) != 0 {
			t.Errorf("journal after the drain: %+v, %v; want empty", es, err)
		}
	})
}

// A reading of the journal on the sides that can list only one side keeps
// what the index knew of the entries on the other: in Mirror mode, a
// delete the secondary missed is recorded on the primary, and once the
// primary is down a refresh must not forget it and serve the secondary's
// copy of the deleted object.
func TestPartialJournalListingKeepsTheUnlistedSidesEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSidesRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		r.faults[secondary].Outage(nil)
		if err := r.b.Delete(r.ctx, "k"); err != nil {
			t.Fatalf("delete with the secondary down: %v", err)
		}
		r.faults[secondary].Heal()
		r.faults[primary].Outage(nil)
		time.Sleep(2 * time.Minute) // the secondary's breaker closes again
		err := r.f.Refresh(r.ctx)
		if !errors.Is(err, journal.ErrPartial) {
			t.Fatalf("refresh with the primary down: %v, want a partial listing", err)
		}
		if got := r.content(secondary, "k"); got != "v" {
			t.Fatalf("secondary holds %q, want the copy the delete missed", got)
		}
		if _, err := r.b.ReadAll(r.ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
			t.Errorf("read of the deleted key after the partial refresh: %v, want NotFound", err)
		}
		it := r.b.List(nil)
		for {
			o, err := it.Next(r.ctx)
			if err != nil {
				break // done, or unavailable: either way k was not listed
			}
			if o.Key == "k" {
				t.Errorf("the deleted key is listed after the partial refresh")
			}
		}
	})
}

// With StrictReads, an instance that has not read the whole journal since
// it opened (a side's part could not be listed) does not answer from the
// sides alone: a tombstone recorded on that side by the instance before a
// restart would be missed, and the deleted object served, listed, deleted
// again or refused to an IfNotExist write. It is unavailable until it can
// read the journal, which it tries again at most once a second.
func TestRestartWithoutTheWholeJournalIsUnavailableUnderStrictReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{StrictReads: true}
		fl := newFleet(t, 1, opts)
		ctx, before := fl.ctx, fl.in[0]
		b := before.f.Bucket()
		if err := b.WriteAll(ctx, "k", []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		fl.down(primary)
		if err := b.Delete(ctx, "k"); err != nil { // its tombstone is on the secondary
			t.Fatalf("delete with the primary down: %v", err)
		}
		if err := before.f.Close(); err != nil {
			t.Fatal(err)
		}

		after := fl.start(opts, secondary) // the primary is up for it
		b = after.f.Bucket()
		if _, err := b.ReadAll(ctx, "k"); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("read after a restart that could not list the secondary's journal: %v, want ErrUnavailable", err)
		}
		if _, err := b.List(nil).Next(ctx); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("listing after that restart: %v, want ErrUnavailable", err)
		}
		if err := b.Delete(ctx, "k"); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("delete after that restart: %v, want ErrUnavailable", err)
		}

		fl.heal() // the breakers close again; journalKnown retries
		if _, err := b.ReadAll(ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
			t.Errorf("read once the journal can be read: %v, want NotFound", err)
		}
	})
}

// A read of a key this instance redirected, whose copy another instance's
// reconciler has since moved to the primary, serves the moved copy: the
// side the index names no longer holds it, and NotFound would lose an
// acknowledged write.
func TestReadOfAPendingKeyAnotherInstanceMovedServesIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 2, failoverblob.Options{})
		ctx, a, b := fl.ctx, fl.in[0], fl.in[1]
		fl.down(primary)
		if err := a.f.Bucket().WriteAll(ctx, "k", []byte("v"), nil); err != nil { // redirected
			t.Fatal(err)
		}
		fl.heal() // a's breaker on the primary closes again
		if rep, err := b.f.Drain(ctx); err != nil || rep.Copied != 1 {
			t.Fatalf("the other instance's Drain = %+v, %v; want the copy moved", rep, err)
		}
		got, err := a.f.Bucket().ReadAll(ctx, "k")
		if err != nil || string(got) != "v" {
			t.Errorf("read by the instance that redirected the write = %q, %v; want %q", got, err, "v")
		}
	})
}

// A Redirect-mode delete, while the primary is down, of a key the secondary
// refuses (a name fileblob cannot store, say) gets the secondary's answer:
// it is not acknowledged, leaves no tombstone that could never be applied,
// and does not count against the secondary.
func TestDeleteOfAKeyTheSecondaryRefusesWhileThePrimaryIsDownIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		refused := errors.New("the side cannot store this name")
		r.faults[secondary].Refuse(func(key string) error {
			if key == "bad.attrs" {
				return refused
			}
			return nil
		})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v"); err != nil { // the primary's breaker opens
			t.Fatal(err)
		}
		err := r.b.Delete(r.ctx, "bad.attrs")
		if !errors.Is(err, refused) || errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("delete of a refused key with the primary down: %v, want the secondary's refusal", err)
		}
		st := r.f.Status()
		if st.Pending != 1 {
			t.Errorf("%d entries pending, want the redirected write's alone", st.Pending)
		}
		if st.Secondary.State != circuit.StateClosed || st.Secondary.Failures != 0 {
			t.Errorf("secondary after the refusal: %s with %d failures, want closed with none", st.Secondary.State, st.Secondary.Failures)
		}
	})
}

// A delete of a key with a redirected write pending, refused by an answer
// from the secondary while the primary is down, withdraws its tombstone and
// leaves the write as it was: read now, and copied to the primary later.
func TestRefusedDeleteOfAPendingKeyKeepsTheRedirectedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v2"); err != nil { // redirected
			t.Fatal(err)
		}
		answer := errors.New("an answer with no code")
		r.faults[secondary].Set(failovertest.OpAttributes, failovertest.Fault{Err: answer, Times: 1})
		if err := r.b.Delete(r.ctx, "k"); !errors.Is(err, answer) {
			t.Fatalf("delete = %v, want the secondary's answer", err)
		}
		if got := r.read("k"); got != "v2" {
			t.Errorf("read after the refused delete = %q, want v2", got)
		}
		r.faults[primary].Heal()
		if rep, err := r.f.Drain(r.ctx); err != nil || rep.Remaining != 0 {
			t.Fatalf("Drain = %+v, %v", rep, err)
		}
		if p, s := r.content(primary, "k"), r.content(secondary, "k"); p != "v2" || s != "<absent>" {
			t.Errorf("after the drain the primary holds %q and the secondary %q, want v2 and nothing", p, s)
		}
	})
}

// A write whose Close gocloud never passes on (its first Write, made inside
// blob.Writer.Close to sniff the content type, failed) does not leave its
// key in flight for good once gocloud cancels the writer's context: a
// Mirror-mode delete of the key, which never existed, with the primary
// down answers NotFound, not success on the strength of that write.
func TestAbandonedWriterLeavesNoFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		r.faults[primary].Outage(nil)
		r.faults[secondary].Outage(nil)
		if err := r.b.WriteAll(r.ctx, "k", []byte("short"), nil); err == nil {
			t.Fatal("write with both sides down succeeded")
		}
		r.faults[secondary].Heal()
		time.Sleep(2 * time.Minute) // the secondary's breaker closes again
		if err := r.b.Delete(r.ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
			t.Errorf("delete of a key never written, the primary down: %v, want NotFound", err)
		}
	})
}

// appendFailing is a journal whose appends fail while failing is set, and
// the next failures appends.
type appendFailing struct {
	journal.Journal
	failing  atomic.Bool
	failures atomic.Int32
}

func (j *appendFailing) Append(ctx context.Context, e journal.Entry) (string, error) {
	if j.failing.Load() || j.failures.Load() > 0 && j.failures.Add(-1) >= 0 {
		return "", errors.New("the journal cannot take the entry")
	}
	return j.Journal.Append(ctx, e)
}

// A Mirror-mode delete that reached the primary, missed the secondary
// (down) and could not record the secondary's repair fails, but it stands
// on the primary: the key must read the same from either side until it is
// reconciled (not absent while the primary answers and back once only the
// secondary does), and the next pass records the repair and carries the
// delete to the secondary.
func TestChangeThatReachedASideUnrecordedReadsOneWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &appendFailing{Journal: journal.NewMemory()}
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, Journal: j})
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		r.faults[secondary].Outage(nil)
		j.failing.Store(true)
		if err := r.b.Delete(r.ctx, "k"); err == nil {
			t.Fatal("delete whose repair could not be recorded succeeded")
		}
		if got := r.content(primary, "k"); got != "<absent>" {
			t.Fatalf("the primary holds %q, want the delete to have reached it", got)
		}
		before := r.read("k")
		r.faults[secondary].Heal()
		r.faults[primary].Outage(nil)
		time.Sleep(2 * time.Minute) // the secondary's breaker closes again
		after := r.read("k")
		if before != after {
			t.Errorf("k reads %s while the primary answers and %s once only the secondary does", before, after)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		j.failing.Store(false)
		if rep, err := r.f.Drain(r.ctx); err != nil || rep.Remaining != 0 {
			t.Fatalf("Drain = %+v, %v", rep, err)
		}
		if p, s := r.content(primary, "k"), r.content(secondary, "k"); p != s {
			t.Errorf("after the drain the primary holds %q and the secondary %q", p, s)
		}
	})
}

// refuseOnly makes a rule for Injector.Refuse that refuses key alone, with
// err.
func refuseOnly(key string, err error) func(string) error {
	return func(k string) error {
		if k == key {
			return err
		}
		return nil
	}
}

// The entry of a change of a key both sides refuse (a delete that failed,
// whose tombstone's withdrawal failed too, found by the next process) is
// acknowledged by a pass: no side holds data of the key, nor ever can, so
// it must not stay pending for good. Meanwhile, listings leave the key out
// rather than fail.
func TestEntryOfAKeyBothSidesRefuseIsAcknowledged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSidesRig(t, failoverblob.Options{BestEffortList: true})
		refused := errors.New("the side cannot store this name")
		for i := range r.faults {
			r.faults[i].Refuse(refuseOnly("bad.attrs", refused))
		}
		r.faults[primary].Outage(nil)
		// The tombstone goes to the secondary, which then refuses the
		// delete; the tombstone's withdrawal fails once.
		r.faults[secondary].Set(failovertest.OpDelete, failovertest.Fault{Times: 1})
		if err := r.b.Delete(r.ctx, "bad.attrs"); !errors.Is(err, refused) {
			t.Fatalf("delete of a refused key with the primary down: %v, want the refusal", err)
		}
		// Meanwhile the entry fails no listing.
		if err := r.write("ok", "v"); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(r.keys()); got != "[ok]" {
			t.Errorf("listing with the refused key's entry pending: %s, want [ok]", got)
		}
		if err := r.f.Close(); err != nil {
			t.Fatal(err)
		}
		// The next process, with the primary back.
		var sides [2]*blob.Bucket
		for i := range sides {
			var in *failovertest.Injector
			sides[i], in = failovertest.Wrap(r.raw[i], nil)
			in.Refuse(refuseOnly("bad.attrs", refused))
		}
		f, err := failoverblob.New(r.ctx, sides[primary], sides[secondary], &failoverblob.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		synctest.Wait() // the journal is read
		if st := f.Status(); st.Pending != 2 {
			t.Fatalf("after the restart %d entries are pending, want the one left behind and the redirected write's", st.Pending)
		}
		if rep, err := f.Drain(r.ctx); err != nil || rep.Remaining != 0 {
			t.Errorf("Drain = %+v, %v; want nothing remaining and no error", rep, err)
		}
	})
}

// A side's answer that is not an outage (code Unknown, as a refusal has)
// to the repair of a key the other side holds does not settle the key's
// entries: the data would be lost. The repair waits until the side takes
// the key.
func TestUnknownAnswerToTheRepairOfAKeyTheOtherSideHoldsKeepsItsEntry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSidesRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "redirected"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		r.faults[primary].Refuse(refuseOnly("k", errors.New("an answer the driver has no code for")))
		time.Sleep(2 * time.Minute) // the primary's breaker closes again
		if rep, err := r.f.Drain(r.ctx); err == nil || rep.Remaining != 1 {
			t.Fatalf("Drain with the primary answering Unknown = %+v, %v; want the entry remaining and the error", rep, err)
		}
		r.faults[primary].Refuse(nil)
		if rep, err := r.f.Drain(r.ctx); err != nil || rep.Remaining != 0 {
			t.Fatalf("Drain once the primary takes the key = %+v, %v", rep, err)
		}
		if got := r.content(primary, "k"); got != "redirected" {
			t.Errorf("the primary holds %q after the drain, want the redirected write", got)
		}
	})
}

// The reconciler of a writer whose clock runs an hour fast must not take
// its own tombstone, stamped an hour ahead, from its index for the key's
// newest change once another instance has applied it and acknowledged its
// entry: it would delete another writer's write acknowledged well after
// the delete returned. A change committed before a listing of the whole
// journal counts only through its entry, placed by when it was stored.
func TestFastWritersAppliedTombstoneDoesNotDeleteALaterWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSidesRig(t, failoverblob.Options{WriterID: "slow"})
		fast := r.other(failoverblob.Options{
			WriterID: "fast", Now: ahead(time.Hour),
			Journal: journal.NewBucket(r.sides[primary], r.sides[secondary], nil),
			Breaker: r.f.Options().Breaker,
		})
		if err := r.write("k", "v0"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		r.faults[primary].Outage(nil)
		if err := fast.Bucket().Delete(r.ctx, "k"); err != nil {
			t.Fatalf("delete by the fast writer, the primary down: %v", err)
		}
		r.heal()
		time.Sleep(2 * time.Minute) // the breakers close again
		// The slow writer applies the tombstone and acknowledges it.
		if rep, err := r.f.Drain(r.ctx); err != nil || rep.Remaining != 0 || r.content(primary, "k") != "<absent>" {
			t.Fatalf("the slow writer's Drain = %+v, %v; the primary holds %s", rep, err, r.content(primary, "k"))
		}
		r.faults[primary].Outage(nil)
		time.Sleep(10 * time.Second) // well past MaxClockSkew
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		r.heal()
		time.Sleep(2 * time.Minute)
		if rep, err := fast.Drain(r.ctx); err != nil || rep.Remaining != 0 {
			t.Fatalf("the fast writer's Drain = %+v, %v", rep, err)
		}
		if p, s := r.content(primary, "k"), r.content(secondary, "k"); p != "v1" {
			t.Errorf("after the fast writer's drain the primary holds %q and the secondary %q, want v1 on the primary", p, s)
		}
	})
}

// stallingJournal is a journal whose listings, while stall is set, take
// their entries and then wait for release before returning them (a slow
// listing that began before whatever is appended meanwhile), and whose
// acknowledgements fail while failAck is set.
type stallingJournal struct {
	journal.Journal
	stall   atomic.Bool
	listed  chan struct{}
	release chan struct{}
	failAck atomic.Bool
}

func (j *stallingJournal) List(ctx context.Context) ([]journal.Entry, error) {
	entries, err := j.Journal.List(ctx)
	if j.stall.Load() {
		j.listed <- struct{}{}
		<-j.release
	}
	return entries, err
}

func (j *stallingJournal) Ack(ctx context.Context, ids ...string) error {
	if j.failAck.Load() {
		return errors.New("the journal cannot drop the entries")
	}
	return j.Journal.Ack(ctx, ids...)
}

// A Mirror-mode delete that reached no side withdraws its tombstone; when
// the journal cannot drop it, a listing of the journal that began before
// the tombstone was recorded must not take it back in from the entries
// appended meanwhile: the key read as deleted until a pass acknowledged
// the entry, and then as present again.
func TestWithdrawnEntryAppendedDuringAListingIsNoHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &stallingJournal{Journal: journal.NewMemory(), listed: make(chan struct{}), release: make(chan struct{})}
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth, Journal: j})
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		// The primary's breaker opens, so the delete reaches no side.
		r.faults[primary].Outage(nil)
		_ = r.read("x")
		if st := r.f.Status().Primary.State; st != circuit.StateOpen {
			t.Fatalf("the primary's breaker is %s after a failed read, want open", st)
		}
		j.stall.Store(true)
		refreshed := make(chan error)
		go func() { refreshed <- r.f.Refresh(r.ctx) }()
		<-j.listed
		j.failAck.Store(true)
		if err := r.b.Delete(r.ctx, "k"); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("delete with the primary's breaker open: %v, want ErrUnavailable", err)
		}
		j.stall.Store(false)
		close(j.release)
		if err := <-refreshed; err != nil {
			t.Fatal(err)
		}
		if got := r.read("k"); got != "v" {
			t.Errorf("after a delete that reached no side and a listing that began before it, k reads %s, want v", got)
		}
	})
}

// A Redirect-mode delete of a key with pending work whose state cannot be
// worked out (the secondary, which may hold its redirected copy, is down),
// and which the primary does not have, cannot tell whether the key exists:
// it is unavailable, as a read of the key is, rather than acknowledged. A
// key already deleted had its delete acknowledged a second time.
func TestRedirectDeleteOfAnUnresolvedKeyIsUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		if err := r.b.Delete(r.ctx, "k"); err != nil {
			t.Fatalf("delete with the primary down: %v", err)
		}
		// The tombstone's entry is gone (another instance's pass applied
		// and acknowledged it, say); the redirected write's is left.
		entries, err := r.journal.List(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Op == journal.Delete {
				if err := r.journal.Ack(r.ctx, e.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		r.faults[primary].Heal()
		f := r.restart(failoverblob.Options{}) // learns of k's entry, not its state
		defer f.Close()
		r.faults[secondary].Outage(nil)
		if err := f.Bucket().Delete(r.ctx, "k"); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Errorf("delete of a deleted key, the secondary down: %v, want ErrUnavailable", err)
		}
		r.faults[secondary].Heal()
		time.Sleep(2 * time.Minute) // the secondary's breaker closes again
		if err := f.Bucket().Delete(r.ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
			t.Errorf("delete of a deleted key, both sides up: %v, want NotFound", err)
		}
	})
}

// An IfNotExist write overtaken, while in flight, by a delete that removed
// an object of the key takes its place just before that delete, where the
// key existed: it fails its precondition. It answered ErrUnavailable,
// though both sides were up.
func TestIfNotExistWriteOvertakenByADeleteThatFoundTheKeyFailsItsPrecondition(t *testing.T) {
	for _, mode := range []failoverblob.Mode{failoverblob.Redirect, failoverblob.Mirror} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, failoverblob.Options{Mode: mode})
				if err := r.write("k", "v"); err != nil {
					t.Fatal(err)
				}
				w, err := r.b.NewWriter(r.ctx, "k", &blob.WriterOptions{IfNotExist: true, ContentType: "text/plain"}) // opened at once
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write([]byte("new")); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
				if err := r.b.Delete(r.ctx, "k"); err != nil {
					t.Fatalf("delete of k: %v", err)
				}
				if err := w.Close(); gcerrors.Code(err) != gcerrors.FailedPrecondition {
					t.Errorf("Close of the IfNotExist write the delete overtook: %v, want FailedPrecondition", err)
				}
				if got := r.read("k"); got != "<not found>" {
					t.Errorf("k reads %s, want it deleted", got)
				}
			})
		})
	}
}

// The changes kept unrecorded of one key are tried at most once a second
// by looks at that key, whatever the looks at other keys do: a look at
// another key used up the one try a second, and a key whose entry could
// be recorded at once answered ErrUnavailable, with both sides up.
func TestKeptEntriesOfAKeyAreTriedWhateverOtherKeysDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &appendFailing{Journal: journal.NewMemory()}
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, Journal: j})
		for _, k := range []string{"a", "b"} {
			if err := r.write(k, "v"); err != nil {
				t.Fatal(err)
			}
		}
		r.faults[secondary].Outage(nil)
		j.failing.Store(true)
		for _, k := range []string{"a", "b"} {
			if err := r.b.Delete(r.ctx, k); err == nil {
				t.Fatalf("delete of %s whose repair could not be recorded succeeded", k)
			}
		}
		r.faults[secondary].Heal()
		time.Sleep(2 * time.Minute) // the secondary's breaker closes again
		j.failing.Store(false)
		for _, k := range []string{"a", "b"} {
			if got := r.read(k); got != "<not found>" {
				t.Errorf("%s reads %s once its kept entry can be recorded, want it deleted", k, got)
			}
		}
	})
}

// An instance that could not read the secondary's part of the journal
// records its writes to the primary: a key it writes may have a write
// another instance redirected waiting on the secondary, and a version on
// the primary that the journal does not know of would be taken, once that
// write's entry is read, for older than it. A read of the key while the
// primary was down then served the redirected write, older than the
// instance's own acknowledged one.
func TestWriteByAnInstanceThatReadOnlyPartOfTheJournalIsRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSidesRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "redirected"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		r.faults[secondary].Outage(nil)
		time.Sleep(10 * time.Second) // the next write is newer by more than MaxClockSkew
		b := r.other(failoverblob.Options{
			Journal: journal.NewBucket(r.sides[primary], r.sides[secondary], nil),
			Breaker: r.f.Options().Breaker,
		})
		if err := b.Bucket().WriteAll(r.ctx, "k", []byte("newer"), nil); err != nil {
			t.Fatal(err)
		}
		r.faults[secondary].Heal()
		time.Sleep(2 * time.Minute) // the secondary's breaker closes again
		if err := b.Refresh(r.ctx); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Outage(nil)
		if got := readOf(b, r, "k"); got == "redirected" {
			t.Errorf("with the primary down, k reads %s on the instance that wrote newer, want newer or unavailable", got)
		}
	})
}

// A Mirror-mode delete of a key the secondary does not have, while the
// primary cannot be asked, answers NotFound unless a write of the key
// stamped before the delete is in flight (which gives way to its
// tombstone, the delete then having come after it). A write opened while
// the delete waited on the primary, stamped after it, made the delete of a
// key already deleted answer success.
func TestMirrorDeleteOfAMissingKeyIsNotFoundDespiteALaterWriteInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		if err := r.b.Delete(r.ctx, "k"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Set(failovertest.OpDelete, failovertest.Fault{Hang: true})
		deleted := make(chan error)
		go func() { deleted <- r.b.Delete(r.ctx, "k") }()
		synctest.Wait()                                                                     // the delete waits on the primary
		w, err := r.b.NewWriter(r.ctx, "k", &blob.WriterOptions{ContentType: "text/plain"}) // opened at once
		if err != nil {
			t.Fatal(err)
		}
		if err := <-deleted; gcerrors.Code(err) != gcerrors.NotFound {
			t.Errorf("second delete of k, a later write in flight: %v, want NotFound", err)
		}
		r.faults[primary].Heal()
		if _, err := w.Write([]byte("later")); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("the later write: %v", err)
		}
		time.Sleep(2 * time.Minute) // the primary's breaker closes again
		if got := r.read("k"); got != "later" {
			t.Errorf("k reads %s after the later write, want later", got)
		}
	})
}

// A Mirror-mode delete that could not ask the primary and found nothing on
// the secondary answers success when a write of the key stamped before it
// is in flight: the write comes first, and the delete removes it. An
// IfNotExist write in that place failed when it committed later (the
// delete, or a write made since, said the key existed, or was deleted
// meanwhile), so that the delete had nothing to remove, and neither had a
// place in any order (seed 1034 of the mirror-either-memory
// configuration). The write succeeds, and is deleted.
func TestIfNotExistWriteADeleteCameAfterSucceeds(t *testing.T) {
	for _, later := range []bool{false, true} {
		t.Run(fmt.Sprintf("a later write meanwhile=%t", later), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
				require.NoError(t, r.write("k", "v"))
				require.NoError(t, r.b.Delete(r.ctx, "k"))
				time.Sleep(time.Second)
				w, err := r.b.NewWriter(r.ctx, "k", &blob.WriterOptions{ContentType: "text/plain", IfNotExist: true})
				require.NoError(t, err)
				_, err = w.Write([]byte("if not exist"))
				require.NoError(t, err)

				r.faults[primary].Set(failovertest.OpDelete, failovertest.Fault{Hang: true})
				require.NoError(t, r.b.Delete(r.ctx, "k"), "a delete that could not ask the primary, an earlier write in flight")
				r.faults[primary].Heal()
				want := "<not found>"
				if later {
					time.Sleep(time.Second)
					require.NoError(t, r.write("k", "later"), "a write after the delete")
					want = "later"
				}
				time.Sleep(2 * time.Minute) // the primary's breaker closes again
				assert.NoError(t, w.Close(), "the IfNotExist write the delete came after")
				assert.Equal(t, want, r.read("k"))
			})
		})
	}
}

// appendStalling is a journal whose appends, while stall is set, store the
// entry and then wait for release before returning (an append whose answer
// is slow to come back), and whose listings fail while failList is set.
type appendStalling struct {
	journal.Journal
	stall    atomic.Bool
	stored   chan struct{}
	release  chan struct{}
	failList atomic.Bool // listings fail
	lose     atomic.Bool // a stalled append reports failure, with the ID of the entry it stored
}

func (j *appendStalling) List(ctx context.Context) ([]journal.Entry, error) {
	if j.failList.Load() {
		return nil, errors.New("the journal cannot be listed")
	}
	return j.Journal.List(ctx)
}

func (j *appendStalling) Append(ctx context.Context, e journal.Entry) (string, error) {
	id, err := j.Journal.Append(ctx, e)
	if j.stall.Load() {
		j.stored <- struct{}{}
		<-j.release
		if j.lose.Load() {
			return id, errors.New("the append's answer was lost")
		}
	}
	return id, err
}

// stalledDelete writes k through a Mirror-mode, AckBoth rig over an
// appendStalling journal, opens the primary's breaker so that a delete of k
// reaches no side, and starts that delete: its tombstone's append stores
// the entry and stalls, and a reading of the journal takes the entry in
// before the append returns. The delete's outcome comes once j.release is
// closed.
func stalledDelete(t *testing.T) (*rig, *appendStalling, <-chan error) {
	t.Helper()
	j := &appendStalling{Journal: journal.NewMemory(), stored: make(chan struct{}), release: make(chan struct{})}
	r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth, Journal: j})
	if err := r.write("k", "v"); err != nil {
		t.Fatal(err)
	}
	r.faults[primary].Outage(nil)
	_ = r.read("x")
	if st := r.f.Status().Primary.State; st != circuit.StateOpen {
		t.Fatalf("the primary's breaker is %s after a failed read, want open", st)
	}
	j.stall.Store(true)
	deleted := make(chan error)
	go func() { deleted <- r.b.Delete(r.ctx, "k") }()
	<-j.stored
	j.stall.Store(false)
	if err := r.f.Refresh(r.ctx); err != nil {
		t.Fatal(err)
	}
	return r, j, deleted
}

// A Mirror-mode delete that reached no side withdraws its tombstone. When
// a listing of the journal took the tombstone in while its append had not
// yet returned, the key's hint cannot go back to what it was before: the
// journal is read again, leaving the withdrawn entry out. The key read as
// deleted until a pass acknowledged the entry, and then as present again.
func TestWithdrawnEntryListedBeforeItsAppendReturnedIsNoHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, j, deleted := stalledDelete(t)
		close(j.release)
		if err := <-deleted; !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("delete with the primary's breaker open: %v, want ErrUnavailable", err)
		}
		if got := r.read("k"); got != "v" {
			t.Errorf("after a delete that reached no side, k reads %s, want v", got)
		}
	})
}

// A withdrawn entry is known by its name, not by the ID its append gave:
// a journal on the sides names in an entry's ID the side or sides it is
// kept on, and an entry whose append failed on one side and was kept on
// the other is listed under another ID than its append's. A Mirror-mode
// delete that reached no side was then counted by the next reading of the
// journal, and applied by the next pass.
func TestWithdrawnEntryKeptOnTheOtherSideIsNoHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSidesRig(t, failoverblob.Options{Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth})
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		// The primary's breaker opens, though the primary answers the
		// journal's calls.
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{Times: 1})
		_ = r.read("x")
		if st := r.f.Status().Primary.State; st != circuit.StateOpen {
			t.Fatalf("the primary's breaker is %s after a failed read, want open", st)
		}
		// The tombstone's append fails on the secondary and is kept on the
		// primary; dropping it fails once.
		r.faults[secondary].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
		r.faults[primary].Set(failovertest.OpDelete, failovertest.Fault{Times: 1})
		if err := r.b.Delete(r.ctx, "k"); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("delete with the primary's breaker open: %v, want ErrUnavailable", err)
		}
		if err := r.f.Refresh(r.ctx); err != nil {
			t.Fatal(err)
		}
		if got := r.read("k"); got != "v" {
			t.Errorf("after a delete that reached no side, k reads %s, want v", got)
		}
		time.Sleep(2 * time.Minute) // the primary's breaker closes again
		if rep, err := r.f.Drain(r.ctx); err != nil || rep.Remaining != 0 {
			t.Fatalf("Drain = %+v, %v", rep, err)
		}
		if p, s := r.content(primary, "k"), r.content(secondary, "k"); p != "v" || s != "v" {
			t.Errorf("after the drain the primary holds %q and the secondary %q, want v on both", p, s)
		}
	})
}

// When the journal cannot be read again after such a withdrawal, the key
// is unavailable, rather than read as the withdrawn entry says, until a
// reading of the whole journal leaves the entry out; a look at the key
// tries one at most once a second.
func TestWithdrawnEntryListedBeforeItsAppendReturnedLeavesItsKeyUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, j, deleted := stalledDelete(t)
		j.failList.Store(true)
		close(j.release)
		if err := <-deleted; !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("delete with the primary's breaker open: %v, want ErrUnavailable", err)
		}
		if got := r.read("k"); got != "<unavailable>" {
			t.Errorf("after a withdrawn delete the journal could not be read again, k reads %s, want unavailable", got)
		}
		j.failList.Store(false)
		time.Sleep(time.Second) // a read tries the journal again at most once a second
		if got := r.read("k"); got != "v" {
			t.Errorf("once the journal can be read, k reads %s, want v", got)
		}
	})
}

// A key with a change kept unrecorded (the journal cannot take it yet) is
// unavailable to reads, but a delete goes ahead all the same: it must see
// what the index knows of the key, and a second delete of it then answers
// NotFound. It was given no state at all, took the key for one that may
// exist, and answered success again. (The delete that removes the
// secondary's copy cannot tell whether that copy is older than the kept
// tombstone, and is unavailable; it was answered success, which the first
// delete, having failed, allows too.)
func TestSecondDeleteOfAKeyWithAKeptChangeIsNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &appendFailing{Journal: journal.NewMemory()}
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, Journal: j})
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		// A delete reaches the primary only, and its repair is kept: the
		// journal fails it, and the first try to record it.
		r.faults[secondary].Outage(nil)
		j.failures.Store(2)
		if err := r.b.Delete(r.ctx, "k"); err == nil {
			t.Fatal("a delete whose repair could not be recorded succeeded")
		}
		r.faults[secondary].Heal()
		time.Sleep(2 * time.Minute) // the secondary's breaker closes again
		if got := r.read("k"); got != "<unavailable>" {
			t.Fatalf("k reads %s with its change kept unrecorded, want unavailable", got)
		}
		if err := r.b.Delete(r.ctx, "k"); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("delete of the secondary's copy: %v, want ErrUnavailable", err)
		}
		if got := r.content(secondary, "k"); got != "<absent>" {
			t.Errorf("the secondary after the delete of its copy holds %s", got)
		}
		if err := r.b.Delete(r.ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
			t.Errorf("delete again: %v, want NotFound", err)
		}
	})
}

// A listing that waited for the key's lock while the delete that went on
// to withdraw its tombstone held it must not work the key's state out
// from that tombstone: with the journal unreadable, the key is
// unavailable, and the listing with it. It listed the key as deleted.
func TestListingThatWaitedOnAWithdrawnDeleteDoesNotDropItsKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, j, deleted := stalledDelete(t)
		listed := make(chan string)
		go func() { listed <- fmt.Sprint(r.keys()) }()
		synctest.Wait() // the listing waits for k's lock
		j.failList.Store(true)
		close(j.release)
		if err := <-deleted; !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("delete with the primary's breaker open: %v, want ErrUnavailable", err)
		}
		if got := <-listed; got == "[]" {
			t.Errorf("a listing that waited on a delete that reached no side lists %s, want k or unavailable", got)
		}
	})
}

// A Mirror-mode delete of a key with pending work records its tombstone
// for both sides, the second over the first's hint; when it reaches no
// side and is withdrawn, the key's hint goes back to what it was before
// the delete, with no need to read the journal again. Taking the second
// entry's hint (the first's) for a listing's doing, it read the journal,
// and with the journal unreadable left the key unavailable.
func TestWithdrawnChangeRecordedForBothSidesRestoresTheHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &appendStalling{Journal: journal.NewMemory(), stored: make(chan struct{}), release: make(chan struct{})}
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror, Journal: j})
		r.faults[secondary].Outage(nil)
		if err := r.write("k", "v"); err != nil {
			t.Fatalf("write with the secondary down: %v", err)
		}
		r.heal()
		// Both breakers open, so the delete reaches no side.
		r.faults[primary].Outage(nil)
		r.faults[secondary].Outage(nil)
		_ = r.read("x")
		j.failList.Store(true)
		if err := r.b.Delete(r.ctx, "k"); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("delete with both breakers open: %v, want ErrUnavailable", err)
		}
		r.heal()
		if got := r.read("k"); got != "v" {
			t.Errorf("after a delete that reached no side, k reads %s, want v", got)
		}
	})
}

// A listing leaves out a pending key a side will not answer about only
// when neither side holds it: an answer that is not an outage (a 403 with
// no code, say) proves nothing alone. A redirected write, acknowledged,
// was left out of a listing without an error.
func TestListingDoesNotLeaveOutAKeyASideHoldsButWillNotAnswerAbout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		f := r.restart(failoverblob.Options{}) // learns of k's entry, not its state
		defer f.Close()
		r.faults[secondary].Refuse(refuseOnly("k", errors.New("403 Forbidden")))
		objs, _, err := f.Bucket().ListPage(r.ctx, blob.FirstPageToken, 100, nil)
		if err == nil && len(objs) == 0 {
			t.Errorf("listing with k's state unknown and the secondary refusing to answer about it: no error and no k")
		}
	})
}

// A Redirect-mode delete of an unresolved pending key that the primary
// lacks takes the secondary's answer together with the journal's
// tombstones: a copy a tombstone covers (its removal failed) is no proof
// the key exists, and the delete of a deleted key is NotFound. It answered
// success.
func TestRedirectDeleteOfAnUnresolvedKeyWeighsTheTombstones(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		// The delete's tombstone is recorded; removing the copy fails.
		r.faults[secondary].Set(failovertest.OpDelete, failovertest.Fault{Err: errors.New("refused"), Times: 1})
		if err := r.b.Delete(r.ctx, "k"); err != nil {
			t.Fatal(err)
		}
		r.failCommit(secondary, "v3")
		if err := r.write("k", "v3"); err == nil {
			t.Fatal("a write whose commit failed on both sides succeeded")
		}
		r.heal()
		// A new instance learns of k's entries, not its state, which its
		// first look cannot work out: the primary fails once.
		f := r.restart(failoverblob.Options{Breaker: &circuit.Settings{ReadyToTrip: func(circuit.Counts) bool { return false }}})
		defer f.Close()
		r.faults[primary].Set(failovertest.OpAttributes, failovertest.Fault{Times: 1})
		if err := f.Bucket().Delete(r.ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
			t.Errorf("delete of a deleted key: %v, want NotFound", err)
		}
	})
}

// The caller's BeforeDelete hook refuses such a delete, and the refusal
// changes nothing. (memblob runs the hook before it looks for the key, so
// here the primary runs it; a provider that answers NotFound first, as
// s3blob does, leaves it to deleteUnresolved, which runs it before the
// tombstone is kept.)
func TestRedirectDeleteOfAnUnresolvedKeyRunsTheHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Heal()
		f := r.restart(failoverblob.Options{}) // learns of k's entry, not its state
		defer f.Close()
		r.faults[secondary].Outage(nil)
		refused := errors.New("not this one")
		err := f.Bucket().DeleteWithOptions(r.ctx, "k", &blob.DeleteOptions{BeforeDelete: func(func(any) bool) error { return refused }})
		if !errors.Is(err, refused) {
			t.Fatalf("delete refused by its hook, the secondary down: %v, want the hook's error", err)
		}
		r.faults[secondary].Heal()
		time.Sleep(2 * time.Minute) // the secondary's breaker closes again
		if rep, err := f.Drain(r.ctx); err != nil || rep.Remaining != 0 {
			t.Fatalf("Drain = %+v, %v", rep, err)
		}
		if got := readOf(f, r, "k"); got != "v" {
			t.Errorf("after a delete its hook refused, k reads %s, want v", got)
		}
	})
}

// An entry whose append failed may be stored all the same (a journal
// write applied and then reported failed): it is withdrawn, so that the
// change it records, which was not made, does not take effect later. A
// delete that failed for want of its tombstone left one on the primary;
// read in later, it made a write acknowledged after it read as deleted.
func TestEntryOfAFailedAppendDoesNotCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSidesRig(t, failoverblob.Options{})
		if err := r.write("k", "v0"); err != nil {
			t.Fatal(err)
		}
		// The secondary's breaker opens, so the delete needs a tombstone
		// for a copy the secondary might hold; the tombstone's append is
		// stored on the primary but reported failed.
		r.faults[secondary].Outage(nil)
		_ = r.read("x")
		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
		if err := r.b.Delete(r.ctx, "k"); !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("delete whose tombstone could not be recorded: %v, want ErrUnavailable", err)
		}
		r.heal()
		time.Sleep(2 * time.Minute) // the breakers close again
		if err := r.write("k", "v1"); err != nil {
			t.Fatal(err)
		}
		if err := r.f.Refresh(r.ctx); err != nil {
			t.Fatal(err)
		}
		r.faults[primary].Outage(nil)
		if got := r.read("k"); got == "<not found>" {
			t.Errorf("with the primary down, k reads %s, though v1 was written after the failed delete", got)
		}
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		if rep, err := r.f.Drain(r.ctx); err != nil || rep.Remaining != 0 {
			t.Fatalf("Drain = %+v, %v", rep, err)
		}
		if got := r.content(primary, "k"); got != "v1" {
			t.Errorf("after the drain the primary holds %q, want v1", got)
		}
	})
}

// An append whose answer is lost after it stored its entry, which a
// reading of the journal took in meanwhile: the entry is withdrawn, and
// the key's hint with it. A delete that failed for want of its tombstone
// read as applied until the next reading of the journal, then as undone.
func TestEntryOfAFailedAppendListedMeanwhileIsNoHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &appendStalling{Journal: journal.NewMemory(), stored: make(chan struct{}), release: make(chan struct{})}
		r := newRig(t, failoverblob.Options{Journal: j})
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		// The secondary cannot say whether it holds a copy, so the delete
		// needs a tombstone, whose append stores it and loses the answer.
		r.faults[secondary].Outage(nil)
		j.stall.Store(true)
		j.lose.Store(true)
		deleted := make(chan error)
		go func() { deleted <- r.b.Delete(r.ctx, "k") }()
		<-j.stored
		j.stall.Store(false)
		if err := r.f.Refresh(r.ctx); err != nil {
			t.Fatal(err)
		}
		close(j.release)
		if err := <-deleted; !errors.Is(err, failoverblob.ErrUnavailable) {
			t.Fatalf("delete whose tombstone could not be recorded: %v, want ErrUnavailable", err)
		}
		r.faults[secondary].Heal()
		if got := r.read("k"); got != "v" {
			t.Errorf("after a delete that failed for want of its tombstone, k reads %s, want v", got)
		}
	})
}

// A Mirror-mode delete of a pending key whose state is unknown, which
// neither side has, is NotFound: the key may exist only on a side that did
// not answer, and both did. It answered success (a key whose withdrawn
// tombstone the journal could not drop stayed pending so, and its second
// delete was acknowledged).
func TestMirrorDeleteOfAnUnresolvedKeyNeitherSideHasIsNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		r.faults[secondary].Outage(nil)
		if err := r.write("k", "v"); err != nil {
			t.Fatal(err)
		}
		r.faults[secondary].Heal()
		// The key leaves the primary behind the journal's back.
		if err := r.raw[primary].Delete(r.ctx, "k"); err != nil {
			t.Fatal(err)
		}
		// A new instance learns of k's entry, not its state, which its look
		// before the delete cannot work out: the primary fails once.
		f := r.restart(failoverblob.Options{Mode: failoverblob.Mirror, Breaker: &circuit.Settings{ReadyToTrip: func(circuit.Counts) bool { return false }}})
		defer f.Close()
		r.faults[primary].Set(failovertest.OpAttributes, failovertest.Fault{Times: 1})
		if err := f.Bucket().Delete(r.ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
			t.Errorf("delete of a key neither side has: %v, want NotFound", err)
		}
	})
}

// A Redirect-mode delete of a pending key whose state could not be read
// records its tombstone before it asks the primary; with the journal on
// the buckets, another instance's reconciler may apply that tombstone in
// between, and the primary then answers NotFound for a key that existed
// when the delete began. The delete must not say NotFound (the key was
// there, and the delete removed it), nor withdraw its tombstone: it is
// unavailable, its tombstone kept, and a second delete is NotFound.
func TestDeleteWhoseTombstoneAnotherInstanceAppliedIsNotNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1}
		fl := newFleet(t, 2, opts)
		w, b := fl.in[0], fl.in[1]
		ctx := fl.ctx

		// k is redirected by w; a new instance, a, learns of its entry
		// from the journal (a hint: a knows of work on k, not k's state);
		// then b moves k to the primary.
		w.f.Force(failoverblob.ForceSecondary)
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil))
		a := fl.start(opts)
		require.Equal(t, 1, a.f.Status().Pending, "entries the new instance learned")
		rep, err := b.f.Drain(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, rep.Copied, "copies by the other instance")
		require.Equal(t, "v1", fl.content(0, "k"), "the primary after the other instance's pass")

		// a's look at the primary fails once, so k's state is unknown; its
		// delete on the primary is slow, and b's pass runs meanwhile.
		a.faults[0].Set(failovertest.OpAttributes, failovertest.Fault{Times: 1})
		a.faults[0].Set(failovertest.OpDelete, failovertest.Fault{Latency: time.Second})
		done := make(chan error, 1)
		go func() { done <- a.f.Bucket().Delete(ctx, "k") }()
		synctest.Wait() // a's delete waits on the primary, its tombstone recorded
		rep, err = b.f.Drain(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, rep.Deleted, "tombstones the other instance applied")
		require.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the other instance applied the tombstone")

		err = <-done
		assert.NotEqual(t, gcerrors.NotFound, gcerrors.Code(err), "the delete of a key that existed when it began: %v", err)
		assert.ErrorIs(t, err, failoverblob.ErrUnavailable, "the delete whose answer cannot be told")
		assert.Equal(t, gcerrors.NotFound, gcerrors.Code(a.f.Bucket().Delete(ctx, "k")), "a second delete")
		assert.Equal(t, "<not found>", a.read(ctx, "k"), "a read after the deletes")
	})
}

// The same with no pending work for the key: a delete whose look at the
// secondary fails records its tombstone (the secondary may hold another
// instance's redirected copy) before it asks the primary, and another
// instance may apply it in between.
func TestDeleteWithoutPendingWorkWhoseTombstoneAnotherInstanceAppliedIsNotNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 2, failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1})
		a, b := fl.in[0], fl.in[1]
		ctx := fl.ctx
		require.NoError(t, a.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil))
		require.Zero(t, a.f.Status().Pending, "entries after a write to the primary")

		a.faults[1].Set(failovertest.OpAttributes, failovertest.Fault{Times: 1})
		a.faults[0].Set(failovertest.OpDelete, failovertest.Fault{Latency: time.Second})
		done := make(chan error, 1)
		go func() { done <- a.f.Bucket().Delete(ctx, "k") }()
		synctest.Wait() // a's delete waits on the primary, its tombstone recorded
		rep, err := b.f.Drain(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, rep.Deleted, "tombstones the other instance applied")

		err = <-done
		assert.NotEqual(t, gcerrors.NotFound, gcerrors.Code(err), "the delete of a key that existed when it began: %v", err)
		assert.ErrorIs(t, err, failoverblob.ErrUnavailable, "the delete whose answer cannot be told")
		assert.Equal(t, gcerrors.NotFound, gcerrors.Code(a.f.Bucket().Delete(ctx, "k")), "a second delete")
		assert.Equal(t, "<not found>", a.read(ctx, "k"), "a read after the deletes")
	})
}

// neverTrips returns breaker settings that never open, so that a test's
// faults fail single calls without taking a side down.
func neverTrips() *circuit.Settings {
	return &circuit.Settings{ReadyToTrip: func(circuit.Counts) bool { return false }}
}

// racedDelete sets up a Redirect-mode repair racing another instance's
// delete of the same key: w redirected k, d (opened before, so it knows of
// no pending work for k) deletes k while r's repair of k waits on its write
// to the primary, which lands once d's delete has removed the key there.
// rWrite and dSecondaryDelete are the latencies of r's writes to the
// primary and of d's deletes on the secondary. It returns the fleet, r, d
// and r's Drain's answer, with d's delete acknowledged.
func racedDelete(t *testing.T, rWrite, dSecondaryDelete time.Duration) (*fleet, *instance, *instance, error) {
	return racedDeleteBy(t, rWrite, dSecondaryDelete, false)
}

// racedDeleteBy is racedDelete where, if dKnows, d has read the journal
// since w's write, and knows of k's pending work.
func racedDeleteBy(t *testing.T, rWrite, dSecondaryDelete time.Duration, dKnows bool) (*fleet, *instance, *instance, error) {
	t.Helper()
	opts := failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1}
	fl := newFleet(t, 3, opts)
	w, d, r := fl.in[0], fl.in[1], fl.in[2]
	ctx := fl.ctx
	w.redirect(t, ctx, "k", "redirected")
	if dKnows {
		require.NoError(t, d.f.Refresh(ctx))
		require.Equal(t, 1, d.f.Status().Pending, "entries the deleting instance knows of")
	}

	if dSecondaryDelete > 0 {
		d.faults[1].Set(failovertest.OpDelete, failovertest.Fault{Latency: dSecondaryDelete})
	}
	// r's calls on k's primary are its look at k, then its copy, which
	// waits rWrite.
	drained := r.drainStalled(ctx, "k", 2, rWrite)
	require.NoError(t, d.f.Bucket().Delete(ctx, "k"), "the delete by another instance")
	return fl, r, d, <-drained
}

// redirect writes key through in with its writes forced onto the
// secondary: a redirected write, recorded as missing on the primary.
func (in *instance) redirect(t *testing.T, ctx context.Context, key, value string) {
	t.Helper()
	in.f.Force(failoverblob.ForceSecondary)
	defer in.f.Force(failoverblob.ForceNone)
	require.NoError(t, in.f.Bucket().WriteAll(ctx, key, []byte(value), nil))
}

// drainStalled starts a Drain of in whose nth call about key to the
// primary first waits d, and returns once the pass waits there; the
// channel gives the Drain's error.
func (in *instance) drainStalled(ctx context.Context, key string, nth int64, d time.Duration) <-chan error {
	return in.drainStalledOn(ctx, 0, key, nth, d)
}

// drainStalledOn is drainStalled where the call that waits is to side i.
func (in *instance) drainStalledOn(ctx context.Context, i int, key string, nth int64, d time.Duration) <-chan error {
	var calls atomic.Int64
	in.faults[i].Refuse(func(k string) error {
		if k == key && calls.Add(1) == nth {
			time.Sleep(d)
		}
		return nil
	})
	drained := make(chan error, 1)
	go func() {
		_, err := in.f.Drain(ctx)
		drained <- err
	}()
	synctest.Wait()
	return drained
}

// refuseJournal is a side's rule (see failovertest.Injector.Refuse) that
// refuses the journal's objects.
func refuseJournal(key string) error {
	if strings.HasPrefix(key, failoverblob.ReservedPrefix+"journal/") {
		return errors.New("refused")
	}
	return nil
}

// A repair whose copy lands on the primary after another instance's delete
// removed the key there, and which then finds its source gone, reads the
// journal, finds the delete's tombstone, and undoes the copy at once: the
// deleted object does not come back until the next pass.
func TestRepairThatFindsItsSourceDeletedUndoesItsCopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl, r, d, err := racedDelete(t, 2*time.Second, 0)
		require.Error(t, err, "the pass whose copy raced the delete")
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the pass whose copy raced the delete")
		assert.Equal(t, "<not found>", d.read(fl.ctx, "k"), "a read by the deleting instance")

		_, err = r.f.Drain(fl.ctx)
		require.NoError(t, err, "the next pass")
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the next pass")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the next pass")
		assert.Zero(t, r.f.Status().Pending, "entries pending after the next pass")
	})
}

// A Redirect-mode delete that removed a redirected copy looks at the
// primary again: a repair by another instance that examined the copy
// before it went may have written it there after the delete, and the
// delete removes it before it returns.
func TestDeleteRemovesACopyARepairWroteBackMeanwhile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl, _, d, err := racedDelete(t, time.Second, 2*time.Second)
		require.NoError(t, err, "the pass whose copy landed before the delete removed its source")
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary once the delete returned")
		assert.Equal(t, "<not found>", d.read(fl.ctx, "k"), "a read by the deleting instance")
	})
}

// The same delete of a key the primary did not hold before the tombstone
// was recorded is NotFound, as a delete of an absent key is: no tombstone
// can have removed it. (Answering unavailable there made deletes of absent
// keys fail while the sides were healthy.)
func TestDeleteOfAnAbsentKeyWithAnUnknownStateIsNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1}
		fl := newFleet(t, 2, opts)
		w, b := fl.in[0], fl.in[1]
		ctx := fl.ctx
		w.f.Force(failoverblob.ForceSecondary)
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil))
		a := fl.start(opts)
		require.Equal(t, 1, a.f.Status().Pending, "entries the new instance learned")
		_, err := b.f.Drain(ctx)
		require.NoError(t, err)
		require.NoError(t, b.f.Bucket().Delete(ctx, "k"), "the delete by the other instance")
		require.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the other instance's delete")

		a.faults[0].Set(failovertest.OpAttributes, failovertest.Fault{Times: 1})
		err = a.f.Bucket().Delete(ctx, "k")
		assert.Equal(t, gcerrors.NotFound, gcerrors.Code(err), "a delete of a key no side held when it began: %v", err)
	})
}

// The same when the deleting instance knows of the key's pending work: its
// delete removes the redirected copy too (it is older than the delete), so
// that the repair finds its source gone and undoes its copy.
func TestRepairRacingADeleteThatKnewOfThePendingWorkUndoesItsCopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl, r, _, err := racedDeleteBy(t, 2*time.Second, 0, true)
		require.Error(t, err, "the pass whose copy raced the delete")
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the pass whose copy raced the delete")
		_, err = r.f.Drain(fl.ctx)
		require.NoError(t, err, "the next pass")
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the next pass")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the next pass")
	})
}

// A Redirect-mode delete by an instance that knows of no pending work for
// the key, whose look at the secondary failed, records its tombstone and
// deletes the key on the primary; it used to leave the secondary's
// redirected copy, which a repair by another instance that had listed the
// journal before the tombstone was recorded then wrote back onto the
// primary, after the delete was acknowledged (seed 6741 of the
// several-writer configuration). The delete removes the copy older than it
// as it does for a key with pending work, so that the repair finds its
// source gone and undoes its copy.
func TestDeleteThatCouldNotAskTheSecondaryRemovesItsRedirectedCopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1}
		fl := newFleet(t, 3, opts)
		w, d, r := fl.in[0], fl.in[1], fl.in[2]
		ctx := fl.ctx
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("v0"), nil))
		w.redirect(t, ctx, "k", "v1, redirected")
		time.Sleep(time.Second)

		// r's pass lists the journal, then its look at k's primary waits
		// while d deletes k.
		drained := r.drainStalled(ctx, "k", 1, 2*time.Second)
		d.faults[1].Set(failovertest.OpAttributes, failovertest.Fault{Times: 1})
		require.NoError(t, d.f.Bucket().Delete(ctx, "k"), "the delete by an instance that cannot tell whether the secondary holds a copy")
		<-drained
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the pass that raced the delete")
		assert.Equal(t, "<not found>", fl.in[0].read(ctx, "k"), "a read by the writer")
		_, err := r.f.Drain(ctx)
		require.NoError(t, err, "the next pass")
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the next pass")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the next pass")
	})
}

// A Redirect-mode delete of a key with pending work looks at the
// secondary's redirected copy beside its delete on the primary, and
// removes it as soon as that delete returns: a repair by another instance
// that looks at the primary after the delete and at the secondary before
// the copy goes writes the copy back (seed 439 of the fast-clock
// configuration), so the time between the two is kept as short as can be.
func TestDeleteLooksAtTheRedirectedCopyBesideThePrimarysDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1}
		fl := newFleet(t, 2, opts)
		w, d := fl.in[0], fl.in[1]
		ctx := fl.ctx
		w.redirect(t, ctx, "k", "redirected")
		time.Sleep(time.Second)
		require.NoError(t, d.f.Refresh(ctx))

		const slow = 3 * time.Second // the primary's delete
		d.faults[0].Set(failovertest.OpDelete, failovertest.Fault{Latency: slow})
		var calls []time.Duration // d's calls on k to the secondary, from the delete's start
		start := time.Now()
		d.faults[1].Refuse(func(key string) error {
			if key == "k" {
				calls = append(calls, time.Since(start))
			}
			return nil
		})
		require.NoError(t, d.f.Bucket().Delete(ctx, "k"))
		var after []time.Duration
		for _, c := range calls {
			if c >= slow {
				after = append(after, c)
			}
		}
		assert.Equal(t, []time.Duration{slow}, after, "the delete's calls on the secondary once the primary's delete returned (all of them, from its start: %v): the copy's removal alone, the look having been made beside", calls)
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary")
	})
}

// A writer whose clock runs an hour fast deletes a key whose redirected
// write another instance's repair is copying to the primary: the copy,
// stored after the tombstone was, placed by when it was stored, came out
// newer than the tombstone, and the deleted object stayed for good (seed
// 8865 of the fast-clock configuration). Two versions of one writer that
// both ran fast are ordered by that writer's clock.
func TestFastWritersDeleteOfAKeyWhoseWriteIsBeingCopiedTakesEffect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 0, failoverblob.Options{})
		fast := fl.start(failoverblob.Options{WriterID: "fast", Now: ahead(time.Hour), Breaker: neverTrips(), ProbeInterval: -1})
		r := fl.start(failoverblob.Options{WriterID: "other", Breaker: neverTrips(), ProbeInterval: -1})
		ctx := fl.ctx
		fast.f.Force(failoverblob.ForceSecondary)
		require.NoError(t, fast.f.Bucket().WriteAll(ctx, "k", []byte("v1, redirected"), nil))
		time.Sleep(time.Second)

		// r's pass lists the journal, then its look at k's primary waits
		// while the fast writer deletes k; the delete's removal of the
		// redirected copy fails, so the copy is there for r to move.
		drained := r.drainStalled(ctx, "k", 1, 2*time.Second)
		fast.faults[1].Set(failovertest.OpDelete, failovertest.Fault{})
		require.NoError(t, fast.f.Bucket().Delete(ctx, "k"), "the fast writer's delete, with the primary down for it")
		fast.faults[1].Heal()
		fast.f.Force(failoverblob.ForceNone)
		require.NoError(t, <-drained, "the pass that copied the redirected write")
		require.Equal(t, "v1, redirected", fl.content(0, "k"), "the primary after the copy (the tombstone is for the next pass)")

		time.Sleep(time.Second)
		_, err := r.f.Drain(ctx)
		require.NoError(t, err, "the next pass")
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the next pass")
		assert.Equal(t, "<not found>", r.read(ctx, "k"), "a read by the other instance")
	})
}

// In Mirror mode, a write that reached both sides though the primary
// reported a failure is recorded as missing on the primary; another
// instance's delete then removed it from the primary and, the secondary
// being down, recorded a tombstone for the secondary. A pass repaired the
// primary from that key's entries for the primary alone, and copied the
// deleted object back there until the secondary's repair removed it from
// both (seed 2664 of the several-writer Mirror configuration). A repair
// weighs the key's entries for the other side too.
func TestMirrorRepairWeighsTheTombstoneRecordedForTheOtherSide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{Mode: failoverblob.Mirror, Breaker: neverTrips(), ProbeInterval: -1}
		fl := newFleet(t, 2, opts)
		w, d := fl.in[0], fl.in[1]
		ctx := fl.ctx
		w.faults[0].Set(failovertest.OpWrite, failovertest.Fault{Applied: true, Times: 1})
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil), "a write the primary stored and reported failed, acknowledged by the secondary")
		require.Equal(t, 1, w.f.Status().Pending, "entries recorded for the primary")
		require.Equal(t, "v1", fl.content(0, "k"))
		require.Equal(t, "v1", fl.content(1, "k"))
		time.Sleep(time.Second)

		d.faults[1].Outage(nil)
		require.NoError(t, d.f.Bucket().Delete(ctx, "k"), "the delete by another instance, the secondary down")
		d.faults[1].Heal()
		require.Equal(t, "<absent>", fl.content(0, "k"))

		var copied []string
		ropts := opts
		ropts.OnRepair = func(r failoverblob.Repair) {
			if r.Action == failoverblob.ActionCopied {
				copied = append(copied, r.Side.String())
			}
		}
		r := fl.start(ropts)
		// The secondary's repair cannot apply the tombstone yet (whichever
		// of the key's two repairs the pass makes first).
		r.faults[1].Set(failovertest.OpDelete, failovertest.Fault{})
		_, _ = r.f.Drain(ctx)
		assert.Empty(t, copied, "sides the deleted object was copied onto")
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after a pass that could not delete on the secondary")
		r.faults[1].Heal()
		_, err := r.f.Drain(ctx)
		require.NoError(t, err)
		assert.Empty(t, copied, "sides the deleted object was copied onto")
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the next pass")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the next pass")
	})
}

// A writer whose clock runs an hour fast, whose delete failed with the
// primary down and the journal unwritable, keeps the tombstone and records
// it at its next pass, later: the entry, placed by when the journal's
// storage stored it, then came after a write another writer made between
// the two, and its repair deleted that acknowledged write (seed 362 of the
// fast-clock configuration). An entry is placed at the time its storage
// stored it less the time the writer took, by its own clock, to record it
// after the change.
func TestFastWritersTombstoneRecordedLateDoesNotDeleteALaterWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 0, failoverblob.Options{})
		slow := fl.start(failoverblob.Options{WriterID: "slow", Breaker: neverTrips(), ProbeInterval: -1})
		fast := fl.start(failoverblob.Options{WriterID: "fast", Now: ahead(time.Hour), Breaker: neverTrips(), ProbeInterval: -1})
		ctx := fl.ctx
		require.NoError(t, slow.f.Bucket().WriteAll(ctx, "k", []byte("v0"), nil))
		time.Sleep(time.Second)

		// The fast writer's delete: the primary is down, and neither side
		// takes the journal's objects.
		fast.faults[0].Outage(nil)
		fast.faults[1].Refuse(refuseJournal)
		require.Error(t, fast.f.Bucket().Delete(ctx, "k"), "a delete whose tombstone cannot be recorded")
		fast.faults[0].Heal()
		fast.faults[1].Refuse(nil)
		time.Sleep(10 * time.Second)

		require.NoError(t, slow.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil), "a later write by the other writer")
		assert.Equal(t, "v2", slow.read(ctx, "k"))
		time.Sleep(10 * time.Second)

		_, err := fast.f.Drain(ctx) // records the kept tombstone, then repairs
		require.NoError(t, err)
		assert.Equal(t, "v2", fl.content(0, "k"), "the primary after the fast writer's pass")
		assert.Equal(t, "v2", slow.read(ctx, "k"), "a read by the other writer")
	})
}

// A writer whose clock runs an hour fast, whose pass could not list the
// side holding its own tombstone's entry, took the tombstone from its
// index, stamped an hour ahead, and deleted a later write by another
// writer (seed 3288 of the fast-clock configuration). A pass applies such
// a delete only from a listed entry, which the journal's storage places;
// the key waits for a pass that lists it.
func TestFastWritersUnlistedTombstoneDoesNotDeleteALaterWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 0, failoverblob.Options{})
		slow := fl.start(failoverblob.Options{WriterID: "slow", Breaker: neverTrips(), ProbeInterval: -1})
		fast := fl.start(failoverblob.Options{WriterID: "fast", Now: ahead(time.Hour), Breaker: neverTrips(), ProbeInterval: -1})
		ctx := fl.ctx
		// A redirected write whose entry is kept on the primary.
		slow.faults[1].Refuse(refuseJournal)
		slow.redirect(t, ctx, "k", "v0")
		slow.faults[1].Refuse(nil)
		time.Sleep(time.Second)
		// The fast writer's delete: its tombstone is kept on the secondary.
		require.NoError(t, fast.f.Bucket().Delete(ctx, "k"), "the fast writer's delete")
		time.Sleep(time.Second)
		require.NoError(t, slow.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil), "a later write by the other writer")
		require.Equal(t, "v2", fl.content(0, "k"))

		fast.faults[1].Set(failovertest.OpList, failovertest.Fault{})
		_, _ = fast.f.Drain(ctx) // the secondary's journal cannot be listed
		assert.Equal(t, "v2", fl.content(0, "k"), "the primary after a pass that could not list the fast writer's tombstone")
		fast.faults[1].Heal()
		_, err := fast.f.Drain(ctx)
		require.NoError(t, err, "a pass that lists every entry")
		assert.Equal(t, "v2", fl.content(0, "k"), "the primary after a pass that listed the tombstone")
		assert.Equal(t, "v2", slow.read(ctx, "k"), "a read by the other writer")
		assert.Zero(t, fast.f.Status().Pending, "entries the fast writer has pending once its pass listed every entry")
	})
}

// A writer whose clock runs an hour fast places the journal entries it
// appended by its own clock, and an object on a side by when the side
// stored it: once a change whose entry could not be recorded made it read
// the key's state from the sides again, its own tombstone, placed an hour
// ahead, outweighed its own later write, placed by the storage's clock, and
// an acknowledged write read as deleted (seed 2111 of the fast-clock
// configuration). A read decides with its own objects placed by their
// versions, as its own entries are.
func TestFastWritersOwnWriteAfterItsOwnDeleteDoesNotReadAsDeleted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSidesRig(t, failoverblob.Options{WriterID: "fast", Now: ahead(time.Hour)})
		require.NoError(t, r.write("k", "v0"))
		time.Sleep(time.Second)
		r.faults[primary].Outage(nil)
		require.NoError(t, r.b.Delete(r.ctx, "k"), "delete with the primary down")
		time.Sleep(time.Second)
		require.NoError(t, r.write("k", "v1"), "redirected write")
		time.Sleep(time.Second)
		// The next write's entry cannot be recorded (the primary is down,
		// the secondary refuses the journal's objects): it fails, and may
		// have stored its bytes all the same.
		r.faults[secondary].Refuse(refuseJournal)
		require.Error(t, r.write("k", "v2"), "a write whose entry cannot be recorded")
		r.faults[secondary].Refuse(nil)
		time.Sleep(time.Second)

		got := r.read("k")
		assert.Contains(t, []string{"v1", "v2"}, got, "a read after the acknowledged write v1 (and the failed v2)")
		assert.NoError(t, r.b.Delete(r.ctx, "k"), "a delete of the key the acknowledged write holds")
	})
}

// A Redirect-mode write stored on the secondary whose entry the journal
// could not record is kept for the primary alone: an entry kept for the
// secondary too made a later pass copy the object back onto the
// secondary, which in Redirect mode holds only temporary copies, after the
// repair for the primary had removed its temporary copy; another writer's
// delete then met a copy it did not know of (several-writer chaos).
func TestRedirectedWriteWhoseEntryCouldNotBeRecordedIsKeptForThePrimaryAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSidesRig(t, failoverblob.Options{})
		r.faults[primary].Outage(nil)
		r.faults[secondary].Refuse(refuseJournal)
		require.Error(t, r.write("k", "v1"), "a redirected write whose entry cannot be recorded")
		require.Equal(t, "v1", r.content(secondary, "k"), "the secondary after the failed write")
		assert.Equal(t, 1, r.f.Status().Pending, "entries kept for the failed write")

		r.faults[secondary].Refuse(nil)
		r.heal()
		for range 3 {
			_, err := r.f.Drain(r.ctx)
			require.NoError(t, err)
		}
		assert.Equal(t, "v1", r.content(primary, "k"), "the primary after the drains")
		assert.Equal(t, "<absent>", r.content(secondary, "k"), "the secondary after the drains")
		assert.Zero(t, r.f.Status().Pending, "entries after the drains")
	})
}

// A Mirror-mode delete by another instance removes the key from the
// primary, then from the secondary, whose call may take up to CallTimeout
// (or records a tombstone for it, if it fails). A Verify that looked at
// the key in between took it for a write that missed the primary and
// copied the deleted object back there (seed 6148 of the several-writer
// Mirror configuration, and most of that configuration's failures). Verify
// now repairs a difference only if it lasts: once Settle has passed, it
// reads the journal again and looks once more.
func TestVerifyDoesNotUndoAnotherInstancesDeleteInFlight(t *testing.T) {
	for _, secondary := range []struct {
		name  string
		fault failovertest.Fault
	}{
		{"slow", failovertest.Fault{Latency: 8 * time.Second}},
		{"hanging", failovertest.Fault{Hang: true}}, // until CallTimeout; then a tombstone for it
	} {
		t.Run(secondary.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fl := mirrorFleet(t, 2)
				d, v := fl.in[0], fl.in[1]
				ctx := fl.ctx
				require.NoError(t, d.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil))

				deleted := d.deleteWaitingOnSecondary(ctx, "k", secondary.fault)
				require.Equal(t, "<absent>", fl.content(0, "k"), "the primary, the delete waiting on the secondary")
				require.Equal(t, "v1", fl.content(1, "k"), "the secondary, the delete waiting on it")

				rep, err := v.f.Verify(ctx, &failoverblob.VerifyOptions{Repair: true})
				require.NoError(t, err)
				require.NoError(t, <-deleted, "the delete")
				assert.Zero(t, rep.Repaired, "keys Verify repaired: %+v", rep)
				assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after Verify")
				d.faults[1].Heal()
				_, err = v.f.Drain(ctx)
				require.NoError(t, err)
				assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after a pass")
				assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after a pass")
			})
		})
	}
}

// A Mirror-mode repair whose pass listed the journal before a change it
// does not know of copied that change's object over the side it repairs:
// w's write missed the primary (an entry for it); d, which knew nothing of
// it, wrote a newer version to both sides, then deleted the key, which
// the secondary missed (a tombstone for the secondary, recorded after
// the pass listed the journal); the pass found the primary empty and the
// secondary holding d's version, newer than w's, and copied it back
// onto the primary, after the delete was acknowledged (seed 4211 of the
// several-writer Mirror configuration). A version newer than every change
// the pass knows of is a change made since: its own entry, or a
// tombstone, settles the key, and the repair leaves it.
func TestMirrorRepairLeavesAVersionNewerThanItKnowsOf(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl, _, d, r := missedPrimary(t)
		ctx := fl.ctx
		require.NoError(t, d.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil), "a newer write by an instance that knows nothing of the first")
		require.Equal(t, "v2", fl.content(0, "k"))

		// r's pass lists the journal, and its look at k on the primary
		// waits while d deletes k, the secondary missing the delete.
		drained := r.drainStalled(ctx, "k", 1, 5*time.Second)
		d.faults[1].Set(failovertest.OpDelete, failovertest.Fault{Times: 1})
		require.NoError(t, d.f.Bucket().Delete(ctx, "k"), "the delete, recorded for the secondary")
		require.Equal(t, "<absent>", fl.content(0, "k"))
		<-drained
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the pass that listed the journal before the delete")

		_, err := r.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the next pass")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the next pass")
		assert.Zero(t, r.f.Status().Pending, "entries left")
	})
}

// A Mirror-mode repair that knows from its own index that the side it
// repairs held the key's newest change (this instance committed it on
// both sides after its pass listed the journal) and finds it gone there
// does not copy it back: a later change removed it (here another
// instance's delete, which the secondary missed), which the pass has not
// listed. Its tombstone settles the key at the next pass.
func TestMirrorRepairDoesNotBringBackAChangeTheSideHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{Mode: failoverblob.Mirror, Breaker: neverTrips(), ProbeInterval: -1}
		fl := newFleet(t, 2, opts)
		w, d := fl.in[0], fl.in[1]
		ctx := fl.ctx
		j := &stallingJournal{Journal: journal.NewBucket(fl.raw[0], fl.raw[1], nil), listed: make(chan struct{}), release: make(chan struct{})}
		ropts := opts
		ropts.Journal = j
		r := fl.start(ropts)
		w.faults[0].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil), "a write the primary missed")
		require.NoError(t, r.f.Refresh(ctx))
		time.Sleep(time.Second)

		// r's pass lists the journal and waits; meanwhile r writes k to
		// both sides, and d deletes it, the secondary missing the delete.
		j.stall.Store(true)
		drained := make(chan error, 1)
		go func() {
			_, err := r.f.Drain(ctx)
			drained <- err
		}()
		<-j.listed
		j.stall.Store(false)
		require.NoError(t, r.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil), "a write of k while the pass waits")
		time.Sleep(time.Second)
		d.faults[1].Set(failovertest.OpDelete, failovertest.Fault{Times: 1})
		require.NoError(t, d.f.Bucket().Delete(ctx, "k"), "the delete, recorded for the secondary")
		require.Equal(t, "<absent>", fl.content(0, "k"))
		close(j.release)
		<-drained
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the pass that listed the journal before the delete")

		_, err := r.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the next pass")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the next pass")
		assert.Zero(t, r.f.Status().Pending, "entries left")
	})
}

// A Mirror-mode delete of a key with pending work whose state could not
// be worked out, which the secondary answered it did not have while the
// primary was down, answered success: but the key had been deleted
// already, by an instance that knew nothing of the pending work and so
// recorded nothing, and a second delete must be NotFound (seed 142 of the
// several-writer Mirror configuration). Whether the key exists is up to
// the primary, which may hold the write the journal records: the delete
// is unavailable, as a read is, its tombstone standing.
func TestMirrorDeleteOfAnUnresolvedKeyIsUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := mirrorFleet(t, 3)
		w, x, d := fl.in[0], fl.in[1], fl.in[2]
		ctx := fl.ctx
		w.faults[0].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil), "a write the primary missed")
		time.Sleep(time.Second)
		require.NoError(t, x.f.Bucket().Delete(ctx, "k"), "a delete by an instance that knows nothing of the pending work")
		time.Sleep(time.Second)

		// d learns of the write with the primary down: the key's state
		// is up to the primary, which may hold the write.
		d.faults[0].Outage(nil)
		require.ErrorIs(t, d.f.Refresh(ctx), journal.ErrPartial)
		require.Equal(t, 1, d.f.Status().Pending)
		err := d.f.Bucket().Delete(ctx, "k")
		assert.ErrorIs(t, err, failoverblob.ErrUnavailable, "the delete with the primary down: %v", err)
		d.faults[0].Heal()
		err = d.f.Bucket().Delete(ctx, "k")
		assert.Equal(t, gcerrors.NotFound, gcerrors.Code(err), "the delete again, the primary back: %v", err)
		_, err = d.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "<absent>", fl.content(0, "k"))
		assert.Equal(t, "<absent>", fl.content(1, "k"))
		assert.Zero(t, d.f.Status().Pending)
	})
}

// In Redirect mode too, a repair does not bring back over the primary a
// change the primary held, which a change its pass has not listed removed
// (here by a delete around the bucket); and it removes the temporary copy
// older than that change, which, with its entry acknowledged, the
// verifier would take for a redirected write to move to the primary.
func TestRedirectRepairRemovesACopyOlderThanAChangeThePrimaryHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1}
		fl := newFleet(t, 1, opts)
		w := fl.in[0]
		ctx := fl.ctx
		j := &stallingJournal{Journal: journal.NewBucket(fl.raw[0], fl.raw[1], nil), listed: make(chan struct{}), release: make(chan struct{})}
		ropts := opts
		ropts.Journal = j
		r := fl.start(ropts)
		w.redirect(t, ctx, "k", "v1")
		require.NoError(t, r.f.Refresh(ctx))
		time.Sleep(time.Second)

		j.stall.Store(true)
		drained := make(chan error, 1)
		go func() {
			_, err := r.f.Drain(ctx)
			drained <- err
		}()
		<-j.listed
		j.stall.Store(false)
		require.NoError(t, r.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil), "a write of k while the pass waits")
		require.Equal(t, "v2", fl.content(0, "k"))
		time.Sleep(time.Second)
		require.NoError(t, fl.raw[0].Delete(ctx, "k"), "a delete the pass knows nothing of")
		close(j.release)
		require.NoError(t, <-drained)
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the pass")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary's temporary copy after the pass")
	})
}

// A Mirror-mode repair onto the primary and another instance's delete,
// which found the key on the secondary only (the primary was missing the
// write the repair is for), race: the delete removes the key from the
// primary (nothing there), the repair's copy lands there, and the delete
// removes the secondary's copy, the repair's source. Whichever comes
// second sees the other: the repair, looking at its source again after
// its copy, undoes the copy; the delete, looking at the primary again
// after the secondary, removes the copy older than it (the several-writer
// Mirror configuration's remaining failures).
func TestMirrorRepairAndDeleteRacingEachLookAgain(t *testing.T) {
	t.Run("the repair's copy lands after the delete", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fl, _, d, r := missedPrimary(t)
			ctx := fl.ctx

			// r's second call about k to the primary, its copy, waits
			// while d deletes k.
			drained := r.drainStalled(ctx, "k", 2, 5*time.Second)
			require.NoError(t, d.f.Bucket().Delete(ctx, "k"), "the delete by an instance that knows nothing of the pending work")
			require.Error(t, <-drained, "the pass whose copy's source went")
			assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the pass")
			assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the pass")
			// The write's entry, which no side's data answers now, is
			// left while the write may still be committing.
			time.Sleep(2 * time.Minute)
			_, err := r.f.Drain(ctx)
			require.NoError(t, err)
			assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the next pass")
			assert.Zero(t, r.f.Status().Pending, "entries left")
		})
	})
	t.Run("the repair's copy lands between the delete's calls", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fl, _, d, r := missedPrimary(t)
			ctx := fl.ctx

			// d's delete on the secondary waits while r's pass copies
			// the key onto the primary, its source still there.
			deleted := d.deleteWaitingOnSecondary(ctx, "k", failovertest.Fault{Latency: 5 * time.Second})
			_, err := r.f.Drain(ctx)
			require.NoError(t, err)
			require.Equal(t, "v1", fl.content(0, "k"), "the primary after the pass")
			require.NoError(t, <-deleted, "the delete")
			assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the delete")
			assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the delete")
		})
	})
}

// A Mirror-mode repair whose source is overwritten while it copies keeps
// its copy: the side it repaired then holds a version the key had, until
// the newer version's entry is repaired, where undoing the copy would
// leave it in a state the key never had (it had lost its older version to
// the copy's conditional write).
func TestMirrorRepairWhoseSourceWasOverwrittenKeepsItsCopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl, _, d, r := missedPrimary(t)
		ctx := fl.ctx

		drained := r.drainStalled(ctx, "k", 2, 5*time.Second)
		d.faults[0].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
		require.NoError(t, d.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil), "a newer write the primary missed too")
		require.NoError(t, <-drained)
		assert.Equal(t, "v1", fl.content(0, "k"), "the primary after the pass whose source was overwritten")
		_, err := r.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "v2", fl.content(0, "k"), "the primary after the next pass")
		assert.Zero(t, r.f.Status().Pending, "entries left")
	})
}

// deleteWaitingOnSecondary starts a delete of key through in whose call to
// the secondary meets fault, and returns once the delete waits there; the
// channel gives the delete's answer.
func (in *instance) deleteWaitingOnSecondary(ctx context.Context, key string, fault failovertest.Fault) <-chan error {
	in.faults[1].Set(failovertest.OpDelete, fault)
	deleted := make(chan error, 1)
	go func() { deleted <- in.f.Bucket().Delete(ctx, key) }()
	synctest.Wait()
	return deleted
}

// mirrorFleet starts a fleet of n Mirror-mode instances whose breakers
// never trip and which send no probes.
func mirrorFleet(t *testing.T, n int) *fleet {
	t.Helper()
	return newFleet(t, n, failoverblob.Options{Mode: failoverblob.Mirror, Breaker: neverTrips(), ProbeInterval: -1})
}

// missedPrimary starts a fleet of three Mirror-mode instances, w, d and r,
// whose breakers never trip, and writes k = v1 through w with the
// primary failing the write: a write the primary missed, recorded for it.
func missedPrimary(t *testing.T) (fl *fleet, w, d, r *instance) {
	t.Helper()
	fl = mirrorFleet(t, 3)
	w, d, r = fl.in[0], fl.in[1], fl.in[2]
	w.faults[0].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
	require.NoError(t, w.f.Bucket().WriteAll(fl.ctx, "k", []byte("v1"), nil), "a write the primary missed")
	time.Sleep(time.Second)
	return fl, w, d, r
}

// A repair that leaves a version newer than every change its pass knows
// of to that version's own entry still applies the tombstone it knows of
// to what the side it repairs holds older: should that entry never be
// recorded (its writer crashed between the sides), the deleted version
// would otherwise stay there, readable.
func TestSupersededRepairStillAppliesItsTombstone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := mirrorFleet(t, 2)
		d, r := fl.in[0], fl.in[1]
		ctx := fl.ctx
		require.NoError(t, d.f.Bucket().WriteAll(ctx, "k", []byte("v0"), nil))
		d.faults[0].Outage(nil)
		require.NoError(t, d.f.Bucket().Delete(ctx, "k"), "a delete the primary missed")
		require.Equal(t, "v0", fl.content(0, "k"))
		time.Sleep(time.Second)
		// A newer write reached the secondary alone, its writer gone
		// before it recorded anything.
		newer := failoverblob.Version{Wall: time.Now().UnixNano(), Writer: "gone"}
		require.NoError(t, fl.raw[1].WriteAll(ctx, "k", []byte("v2"), &blob.WriterOptions{Metadata: map[string]string{failoverblob.VersionMetadataKey: newer.String()}}))

		_, err := r.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary: the deleted version")
		assert.Equal(t, "v2", fl.content(1, "k"), "the secondary: the newer version, left to Verify")
	})
}

// A Verify stopped while it looks again at the keys it held resumes
// before them: none is passed over.
func TestVerifyStoppedDuringItsSecondLookResumesBeforeTheKeysItHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		for _, k := range []string{"a", "b", "c", "d"} {
			require.NoError(t, r.write(k, k+"1"))
		}
		for _, k := range []string{"b", "c", "d"} {
			require.NoError(t, r.raw[secondary].Delete(r.ctx, k))
		}
		ctx, cancel := context.WithCancel(r.ctx)
		defer cancel()
		var looks atomic.Int64
		r.faults[primary].Refuse(func(k string) error {
			if k == "c" && looks.Add(1) == 2 {
				cancel() // during the second look at c
			}
			return nil
		})
		rep, err := r.f.Verify(ctx, &failoverblob.VerifyOptions{Repair: true})
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, "a", rep.Cursor, "the cursor: %+v", rep)
		r.faults[primary].Refuse(nil)
		rep, err = r.f.Verify(r.ctx, &failoverblob.VerifyOptions{Repair: true, After: rep.Cursor})
		require.NoError(t, err)
		for _, k := range []string{"b", "c", "d"} {
			assert.Equal(t, k+"1", r.content(secondary, k), "%s on the secondary after the resumed Verify (%+v)", k, rep)
		}
	})
}

// A strict read served the secondary's copy of a key that no journal
// entry accounts for (a write or a delete cut by a crash between the
// sides), while listings and reads on the primary said the key was
// absent, and Verify, which settles such a copy, waits for it to last: a
// reader saw the key appear and vanish (seeds 12483 of the redirect fleet
// configuration and 64 of mirror-either). A strict read serves a newer
// version on the secondary only once the journal has an entry for it, as
// every acknowledged write's has; until Verify settles the copy, it
// answers as the primary does.
func TestStrictReadDoesNotServeACopyNoEntryAccountsFor(t *testing.T) {
	for _, mode := range []failoverblob.Mode{failoverblob.Redirect, failoverblob.Mirror} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := failoverblob.Options{Mode: mode, StrictReads: true, Breaker: neverTrips(), ProbeInterval: -1}
				fl := newFleet(t, 1, opts)
				in := fl.in[0]
				ctx := fl.ctx
				// A crash's leftover: a copy on the secondary alone, newer
				// than nothing on the primary, with no entry.
				v := failoverblob.Version{Wall: time.Now().UnixNano(), Writer: "crashed"}
				require.NoError(t, fl.raw[1].WriteAll(ctx, "k", []byte("left"), &blob.WriterOptions{Metadata: map[string]string{failoverblob.VersionMetadataKey: v.String()}}))
				_, err := in.f.Bucket().ReadAll(ctx, "k")
				assert.Equal(t, gcerrors.NotFound, gcerrors.Code(err), "a strict read of the key: %v", err)
				exists, err := in.f.Bucket().Exists(ctx, "k")
				require.NoError(t, err)
				assert.False(t, exists, "Exists")

				// Another instance's acknowledged write that missed the
				// primary has an entry: that one is served.
				w := fl.start(opts)
				w.faults[0].Set(failovertest.OpWrite, failovertest.Fault{Times: 1})
				if mode == failoverblob.Redirect {
					w.redirect(t, ctx, "j", "redirected")
				} else {
					require.NoError(t, w.f.Bucket().WriteAll(ctx, "j", []byte("redirected"), nil))
				}
				got, err := in.f.Bucket().ReadAll(ctx, "j")
				require.NoError(t, err, "a strict read of another instance's write")
				assert.Equal(t, "redirected", string(got))
			})
		})
	}
}

// A Mirror-mode delete that finds nothing on the secondary while the
// primary is down answers NotFound and keeps a tombstone for the primary,
// for what a write cut by a crash between the sides left there. A write of
// the key by another instance, stamped before the delete and committed on
// the secondary after the delete looked there, is ordered after the
// delete by that answer: the tombstone must not remove it, whether the
// write recorded an entry (the primary was down for it too) or reached the
// primary before the delete (it recorded nothing).
func TestUnseenDeleteLeavesAWriteInFlightOnTheSecondary(t *testing.T) {
	for _, c := range []struct {
		name        string
		primaryDown bool // for the writer too
	}{
		{"the write recorded an entry for the primary", true},
		{"the write reached the primary first", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fl := mirrorFleet(t, 2)
				w, d := fl.in[0], fl.in[1]
				ctx := fl.ctx
				if c.primaryDown {
					w.faults[0].Outage(nil)
				}
				// w's write waits on the secondary.
				w.faults[1].Set(failovertest.OpWrite, failovertest.Fault{Latency: 5 * time.Second, Times: 1})
				written := make(chan error, 1)
				go func() { written <- w.f.Bucket().WriteAll(ctx, "k", []byte("in flight"), nil) }()
				synctest.Wait()
				time.Sleep(time.Second)

				d.faults[0].Outage(nil)
				err := d.f.Bucket().Delete(ctx, "k")
				require.Equal(t, gcerrors.NotFound, gcerrors.Code(err), "the delete that found nothing on the secondary: %v", err)
				require.NoError(t, <-written, "the write in flight")
				require.Equal(t, "in flight", fl.content(1, "k"), "the secondary after the write")
				if c.primaryDown {
					// The deleter learns of the write's entry, and reads
					// the write, the primary still down.
					_, _ = d.f.Drain(ctx)
					assert.Equal(t, "in flight", d.read(ctx, "k"), "a read by the deleter that learnt of the write")
				}

				fl.heal()
				err = d.f.Bucket().WriteAll(ctx, "k", []byte("conditional"), &blob.WriterOptions{IfNotExist: true})
				require.Error(t, err, "an IfNotExist write by the deleter before the drains")
				for _, in := range []*instance{d, w, d} {
					_, err := in.f.Drain(ctx)
					require.NoError(t, err)
				}
				assert.Equal(t, "in flight", fl.content(0, "k"), "the primary after the drains")
				assert.Equal(t, "in flight", fl.content(1, "k"), "the secondary after the drains")
				assert.Equal(t, "in flight", w.read(ctx, "k"), "a read by the writer")
				assert.Equal(t, "in flight", d.read(ctx, "k"), "a read by the deleter")
			})
		})
	}
}

// A Mirror-mode delete the primary missed records its tombstone for the
// primary before it asks the secondary, and another instance's reconciler
// may apply that tombstone meanwhile, removing the key from both sides: the
// delete, which the secondary then answers NotFound, found the key all the
// same (the secondary held it before the tombstone), and answers success.
func TestMirrorDeleteWhoseTombstoneAnotherInstanceAppliedFoundTheKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := mirrorFleet(t, 2)
		d, r := fl.in[0], fl.in[1]
		ctx := fl.ctx
		require.NoError(t, d.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil))
		time.Sleep(time.Second)

		d.faults[0].Outage(nil)
		deleted := d.deleteWaitingOnSecondary(ctx, "k", failovertest.Fault{Latency: 5 * time.Second})
		_, err := r.f.Drain(ctx)
		require.NoError(t, err)
		require.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the other instance's pass")
		require.NoError(t, <-deleted, "the delete whose tombstone the other instance applied")
		assert.Equal(t, gcerrors.NotFound, gcerrors.Code(d.f.Bucket().Delete(ctx, "k")), "a second delete")
		d.faults[0].Heal()
		time.Sleep(2 * time.Minute)
		_, err = d.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after the drains")
		assert.Equal(t, "<not found>", r.read(ctx, "k"), "a read")
	})
}

// A key pending through a tombstone alone is not answered NotFound while
// neither side can be asked: the entry may be one left behind (its
// acknowledgement removed it from one side of the two it was kept on),
// older than what the sides hold.
func TestTombstoneAloneIsNoAnswerWhileBothSidesAreDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 1, failoverblob.Options{Mode: failoverblob.Mirror})
		ctx := fl.ctx
		old := failoverblob.Version{Wall: time.Now().UnixNano(), Writer: "gone"}
		time.Sleep(time.Second)
		require.NoError(t, fl.in[0].f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil))
		left := journal.NewBucket(fl.raw[0], fl.raw[1], nil)
		_, err := left.Append(ctx, journal.Entry{Key: "k", Op: journal.Delete, Version: old.String(), Missing: journal.Primary})
		require.NoError(t, err)

		c := fl.start(failoverblob.Options{Mode: failoverblob.Mirror})
		c.faults[0].Outage(nil)
		c.faults[1].Outage(nil)
		assert.Equal(t, "<unavailable>", c.read(ctx, "k"), "a read with both sides down")
		fl.heal()
		assert.Equal(t, "v2", c.read(ctx, "k"), "a read once they are back")
	})
}

// A delete of a key with pending work whose state could not be worked out
// (the primary down, the secondary not answering its look) that found the
// key on the secondary cannot tell whether what it removed was the key's
// newest version or an older copy a tombstone covers: here an
// acknowledged delete that missed the secondary left it. It is
// unavailable, not a success, and a second delete is NotFound (seed 638
// of mirror-either).
func TestMirrorDeleteThatFoundACopyATombstoneMayCoverIsUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := mirrorFleet(t, 1)
		a := fl.in[0]
		ctx := fl.ctx
		require.NoError(t, a.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil))
		a.faults[1].Outage(nil)
		require.NoError(t, a.f.Bucket().Delete(ctx, "k"), "a delete the secondary missed")
		require.Equal(t, "v1", fl.content(1, "k"))

		g := fl.start(failoverblob.Options{Mode: failoverblob.Mirror, Breaker: neverTrips(), ProbeInterval: -1})
		g.faults[0].Outage(nil)
		g.faults[1].Set(failovertest.OpAttributes, failovertest.Fault{})
		err := g.f.Bucket().Delete(ctx, "k")
		require.ErrorIs(t, err, failoverblob.ErrUnavailable, "the delete that removed the secondary's older copy")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after it")
		assert.Equal(t, gcerrors.NotFound, gcerrors.Code(g.f.Bucket().Delete(ctx, "k")), "a second delete")
	})
}

// A pass whose listing could not read one side's part of the journal does
// not copy onto a side that lacks the key: another instance's delete may
// have removed it there, its tombstone kept on that very part (the other
// side was down for it). Here the pass copied the redirected copy back
// onto the primary after an acknowledged delete (seed 219 of the
// several-writer Redirect configuration with restarts).
func TestRepairFromAPartialListingDoesNotCopyOntoASideThatLacksTheKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1}
		fl := newFleet(t, 1, opts)
		w := fl.in[0]
		ctx := fl.ctx
		w.redirect(t, ctx, "k", "v1")

		d := fl.start(opts)
		d.faults[1].Outage(nil)
		require.NoError(t, d.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil), "a write to the primary")
		require.NoError(t, d.f.Bucket().Delete(ctx, "k"), "a delete, its tombstone kept on the primary")
		require.Equal(t, "v1", fl.content(1, "k"), "the redirected copy the delete could not reach")

		// w's pass reads only the secondary's part of the journal.
		w.faults[0].Set(failovertest.OpList, failovertest.Fault{})
		_, _ = w.f.Drain(ctx)
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after a pass that read the journal in part")
		w.faults[0].Clear(failovertest.OpList)
		_, err := w.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "<absent>", fl.content(0, "k"), "the primary after a pass that read the whole journal")
		assert.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after it")
		assert.Equal(t, "<not found>", w.read(ctx, "k"), "a read")
	})
}

// A pass whose listing could not read one side's part of the journal
// leaves the entries of the keys it repairs for a pass that reads it all:
// acknowledged, the entry of a write to the primary went, and a tombstone
// older than it, kept on the part not read, stood for the key alone, so
// that an instance reading the journal took the key for deleted while the
// primary, which held the acknowledged write, was down (seed 513 of the
// redirect fleet configuration). Nor does an instance that has never read
// the primary's part of the journal (it opened while the primary was down)
// take a tombstone for the key's state while the primary cannot be asked:
// that part may hold a newer change.
func TestRepairFromAPartialListingLeavesTheEntriesForAWholeOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1}
		fl := newFleet(t, 1, opts)
		a := fl.in[0]
		ctx := fl.ctx
		require.NoError(t, a.f.Bucket().WriteAll(ctx, "k", []byte("v0"), nil))
		a.faults[0].Outage(nil)
		require.NoError(t, a.f.Bucket().Delete(ctx, "k"), "a delete while the primary is down")
		a.faults[0].Heal()
		a.faults[1].Outage(nil)
		time.Sleep(time.Second)
		require.NoError(t, a.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil), "a write to the primary, its entry kept there")
		a.faults[1].Heal()

		// a's pass reads only the primary's part of the journal.
		a.faults[1].Set(failovertest.OpList, failovertest.Fault{})
		_, _ = a.f.Drain(ctx)
		a.faults[1].Clear(failovertest.OpList)

		g := fl.start(opts)
		g.faults[0].Outage(nil)
		assert.Equal(t, "<unavailable>", g.read(ctx, "k"), "a read by an instance that read the whole journal, the primary down")
		h := fl.start(opts, 0)
		assert.Equal(t, "<unavailable>", h.read(ctx, "k"), "a read by an instance opened while the primary was down")
		g.faults[0].Heal()
		h.faults[0].Heal()
		time.Sleep(2 * time.Minute)
		assert.Equal(t, "v2", g.read(ctx, "k"), "a read once the primary is back")
		assert.Equal(t, "v2", h.read(ctx, "k"), "a read by the other instance once the primary is back")
	})
}

// An object under the journal's prefix that is no entry (a driver's
// leftover temporary file, say) does not fail every listing of its side:
// it made every pass read the journal in part, and such a pass repairs
// nothing onto a side that lacks the key, so a redirected write stayed on
// the secondary alone for good.
func TestStrayObjectUnderTheJournalPrefixDoesNotStopRepairs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := failoverblob.Options{Breaker: neverTrips(), ProbeInterval: -1}
		fl := newFleet(t, 1, opts)
		a := fl.in[0]
		ctx := fl.ctx
		require.NoError(t, fl.raw[0].WriteAll(ctx, journal.BucketPrefix+"w/0000000000000001/AAAA.1a2b.tmp", []byte("x"), nil))
		a.redirect(t, ctx, "k", "v1")
		time.Sleep(time.Minute)
		_, err := a.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "v1", fl.content(0, "k"), "the primary after a pass")
	})
}
