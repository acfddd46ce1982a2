package failoverblob_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/journal"
)

// The defects TestKill found, each cut down to the state a kill leaves,
// built without one: regression tests of their fixes. (The reconcile lease
// a killed instance left is TestLeaseLeftByADeadInstanceIsRemoved.)
func TestKillFindings(t *testing.T) {
	ctx := context.Background()
	// saved is an object as a side held it, version and all, to put back
	// where a kill would have kept a change from taking it away.
	type saved struct {
		data []byte
		meta map[string]string
	}
	save := func(t *testing.T, b *blob.Bucket, key string) saved {
		attrs, err := b.Attributes(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.ReadAll(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return saved{data, attrs.Metadata}
	}
	restore := func(t *testing.T, b *blob.Bucket, key string, o saved) {
		if err := b.WriteAll(ctx, key, o.data, &blob.WriterOptions{Metadata: o.meta}); err != nil {
			t.Fatal(err)
		}
	}
	mirror := failoverblob.Options{Mode: failoverblob.Mirror}

	// A Mirror-mode write cut between the primary's commit and the
	// secondary's leaves it on the primary alone, with nothing recorded.
	// A delete of the key while the primary is down, which the secondary
	// answers NotFound, keeps its tombstone for the primary: once the
	// primary is back, the object goes, as the answer said.
	t.Run("mirror delete answered from the secondary's miss", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fl := newFleet(t, 1, mirror)
			if err := fl.in[0].f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil); err != nil {
				t.Fatal(err)
			}
			if err := fl.raw[1].Delete(ctx, "k"); err != nil { // the secondary's commit, cut
				t.Fatal(err)
			}
			// A new process starts a second later: its clock, which has not
			// seen v1 (the primary is down), stamps its delete after it.
			time.Sleep(time.Second)
			c := fl.start(mirror)
			fl.down(0)
			err := c.f.Bucket().Delete(ctx, "k")
			if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
				t.Fatalf("delete while the primary is down: %v", err)
			}
			fl.heal()
			if _, err := c.f.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.f.Verify(ctx, &failoverblob.VerifyOptions{Repair: true}); err != nil {
				t.Fatal(err)
			}
			if got := c.read(ctx, "k"); got != "<not found>" {
				t.Errorf("after a delete answered %v, the primary's return and Verify, k reads %q; want <not found>", err, got)
			}
		})
	})

	// A Mirror-mode delete cut after recording the primary's tombstone and
	// before deleting the secondary's copy: the key reads as deleted, and
	// deleting it again is NotFound. Applying the tombstone removes the
	// secondary's older copy too, which nothing else records and which
	// Verify would take for a write that missed the primary.
	t.Run("mirror delete cut before the secondary's delete", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fl := newFleet(t, 1, mirror)
			if err := fl.in[0].f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil); err != nil {
				t.Fatal(err)
			}
			fl.down(0)
			if err := fl.in[0].f.Bucket().Delete(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			restore(t, fl.raw[1], "k", save(t, fl.raw[0], "k")) // the secondary's delete, cut
			fl.heal()
			c := fl.start(mirror)
			if err := c.f.Bucket().Delete(ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
				t.Fatalf("deleting the deleted key again: %v, want NotFound", err)
			}
			if _, err := c.f.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.f.Verify(ctx, &failoverblob.VerifyOptions{Repair: true}); err != nil {
				t.Fatal(err)
			}
			if got := c.read(ctx, "k"); got != "<not found>" {
				t.Errorf("after the drain and Verify, k reads %q; want <not found>", got)
			}
		})
	})

	// A Mirror-mode delete cut after the primary's delete and before the
	// secondary's leaves the key on the secondary alone, with nothing
	// recorded. A later delete that the primary answers NotFound goes on to
	// the secondary, and leaves no copy for Verify to copy back.
	t.Run("mirror delete cut between the sides' deletes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fl := newFleet(t, 1, mirror)
			if err := fl.in[0].f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil); err != nil {
				t.Fatal(err)
			}
			if err := fl.raw[0].Delete(ctx, "k"); err != nil { // the secondary's delete, cut
				t.Fatal(err)
			}
			c := fl.start(mirror)
			err := c.f.Bucket().Delete(ctx, "k")
			if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
				t.Fatalf("delete: %v", err)
			}
			if _, err := c.f.Verify(ctx, &failoverblob.VerifyOptions{Repair: true}); err != nil {
				t.Fatal(err)
			}
			if got := c.read(ctx, "k"); got != "<not found>" {
				t.Errorf("after a delete answered %v and Verify, k reads %q; want <not found>", err, got)
			}
		})
	})

	// A write of a key with pending work, committed on the primary, is
	// recorded too. Were the entry and the data written at once, a crash
	// could leave the object on the primary newer than anything the journal
	// holds; a new instance would take the key's tombstone for its state
	// while the primary is down, answer a delete of it NotFound, and the
	// object would be there once the primary is back. The entry is written
	// first: here its append fails, as a crash before it would leave things.
	t.Run("write of a pending key cut before its entry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fl := newFleet(t, 0, failoverblob.Options{})
			j := &failingAppend{Journal: journal.NewBucket(fl.raw[0], fl.raw[1], nil), left: 1}
			a := fl.start(failoverblob.Options{Journal: j})
			if err := a.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil); err != nil {
				t.Fatal(err)
			}
			fl.down(0)
			if err := a.f.Bucket().Delete(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			fl.heal()
			if err := a.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil); err == nil {
				t.Fatal("the write whose entry could not be appended was acknowledged")
			}
			time.Sleep(time.Second)
			c := fl.start(failoverblob.Options{})
			fl.down(0)
			if err := c.f.Bucket().Delete(ctx, "k"); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
				t.Fatalf("delete while the primary is down: %v", err)
			}
			fl.heal()
			if _, err := c.f.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.f.Verify(ctx, &failoverblob.VerifyOptions{Repair: true}); err != nil {
				t.Fatal(err)
			}
			if got := c.read(ctx, "k"); got != "<not found>" {
				t.Errorf("after the delete, the drain and Verify, k reads %q; want <not found>", got)
			}
		})
	})

	// A redirected write's entry and data are written at once: a kill
	// between the two can leave the copy on the secondary with no entry.
	// The key is then not pending; a later write goes to the primary.
	// While the primary is down, a read that finds the older copy on the
	// secondary reads the journal, finds no entry for it, and does not
	// serve it.
	t.Run("redirected copy left without its entry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fl := newFleet(t, 1, failoverblob.Options{})
			fl.down(0)
			if err := fl.in[0].f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil); err != nil {
				t.Fatal(err)
			}
			j := journal.NewBucket(fl.raw[0], fl.raw[1], nil)
			entries, err := j.List(ctx)
			if err != nil || len(entries) != 1 {
				t.Fatalf("journal: %+v, %v; want the write's entry", entries, err)
			}
			if err := j.Ack(ctx, entries[0].ID); err != nil { // the entry, cut
				t.Fatal(err)
			}
			fl.heal()
			c := fl.start(failoverblob.Options{})
			if err := c.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil); err != nil {
				t.Fatal(err)
			}
			fl.down(0)
			if got := c.read(ctx, "k"); got != "v2" && got != "<unavailable>" {
				t.Errorf("with the primary down, the instance that wrote v2 reads %q", got)
			}
		})
	})

	// With the journal on the buckets, a repair acknowledges a key's
	// entries by deleting their objects, several at once, so a crash
	// part-way leaves any of them. Were the newer put's entry gone and the
	// older tombstone's left, a new instance that cannot ask the primary,
	// which holds the put, would take the tombstone for the key's state.
	// The repair acknowledges the newest entry last; the journal here cuts
	// the acknowledgement after n entries, each call's taken last first.
	for n := range 3 {
		t.Run(fmt.Sprintf("acknowledgement cut after %d entries", n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fl := newFleet(t, 0, failoverblob.Options{})
				cut := &cutAck{Journal: journal.NewBucket(fl.raw[0], fl.raw[1], nil), left: n}
				a := fl.start(failoverblob.Options{Journal: cut})
				if err := a.f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil); err != nil {
					t.Fatal(err)
				}
				fl.down(0)
				if err := a.f.Bucket().Delete(ctx, "k"); err != nil {
					t.Fatal(err)
				}
				if err := a.f.Bucket().WriteAll(ctx, "k", []byte("v2"), nil); err != nil {
					t.Fatal(err)
				}
				fl.heal()
				if _, err := a.f.Drain(ctx); (err != nil) != (n < 2) {
					t.Fatalf("the drain cut after %d entries: %v", n, err)
				}
				c := fl.start(failoverblob.Options{})
				fl.down(0)
				if got := c.read(ctx, "k"); got != "v2" && got != "<unavailable>" {
					t.Errorf("with the primary down, a new instance reads the acknowledged v2 as %q", got)
				}
			})
		})
	}
}

// cutAck is a journal whose acknowledgements stop, as a process killed
// part-way would, once left entries have gone: each call's entries go last
// first, the worst of the orders a journal on the buckets may take.
type cutAck struct {
	journal.Journal
	left int
}

func (j *cutAck) Ack(ctx context.Context, ids ...string) error {
	for i := len(ids) - 1; i >= 0; i-- {
		if j.left == 0 {
			return errors.New("killed part-way through the acknowledgement")
		}
		j.left--
		if err := j.Journal.Ack(ctx, ids[i]); err != nil {
			return err
		}
	}
	return nil
}

// failingAppend is a journal whose appends fail once left have succeeded.
type failingAppend struct {
	journal.Journal
	left int
}

func (j *failingAppend) Append(ctx context.Context, e journal.Entry) (string, error) {
	if j.left == 0 {
		return "", errors.New("the process died before appending the entry")
	}
	j.left--
	return j.Journal.Append(ctx, e)
}
