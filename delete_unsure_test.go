package failoverblob

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/journal"
)

// listFailing is a journal whose listings fail while fail is set.
type listFailing struct {
	journal.Journal
	fail atomic.Bool
}

func (j *listFailing) List(ctx context.Context) ([]journal.Entry, error) {
	if j.fail.Load() {
		return nil, errors.New("journal unreadable")
	}
	return j.Journal.List(ctx)
}

// A Mirror-mode delete of a key whose journal entries cannot all be read
// (a withdrawal left its hints in doubt, see index.markUnsure) cannot tell
// whether what it found on a side is the key's newest version or an older
// copy a tombstone covers: it is unavailable, not a success. Here the copy
// is the secondary's, older than an acknowledged delete the secondary
// missed, and success answered a second delete of a deleted key (seed 142
// of the several-writer Mirror configuration).
//
// The same holds in Redirect mode, for the primary's copy older than a
// delete the primary missed.
func TestDeleteOfAKeyInDoubtIsUnavailable(t *testing.T) {
	t.Run("mirror", func(t *testing.T) { testDeleteOfAKeyInDoubt(t, Mirror, ForcePrimary) })
	t.Run("redirect", func(t *testing.T) { testDeleteOfAKeyInDoubt(t, Redirect, ForceSecondary) })
}

// testDeleteOfAKeyInDoubt deletes a key while traffic is forced by force
// (off the side that then keeps an older copy), and deletes it again from
// another instance whose entries of the key are in doubt.
func testDeleteOfAKeyInDoubt(t *testing.T, mode Mode, force ForceMode) {
	ctx := context.Background()
	primary, secondary := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	j := &listFailing{Journal: journal.NewMemory()}
	opts := Options{Mode: mode, Journal: j, ProbeInterval: -1}
	f, err := New(ctx, primary, secondary, &opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // it closes the sides
	if err := f.Bucket().WriteAll(ctx, "k", []byte("v1"), nil); err != nil {
		t.Fatal(err)
	}
	f.Force(force)
	if err := f.Bucket().Delete(ctx, "k"); err != nil {
		t.Fatalf("the delete a side missed: %v", err)
	}
	f.Force(ForceNone)

	g, err := New(ctx, primary, secondary, &opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.Close() }()
	j.fail.Store(true)
	g.idx.markUnsure("k")
	err = g.Bucket().Delete(ctx, "k")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a delete of the key in doubt that removed a side's older copy: %v; want ErrUnavailable", err)
	}
	if err := g.Bucket().Delete(ctx, "k"); gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("a second delete: %v; want NotFound", err)
	}
}
