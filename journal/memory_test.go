package journal_test

import (
	"context"
	"slices"
	"testing"

	"github.com/failoverblob/failoverblob/journal"
)

func TestMemoryJournal(t *testing.T) {
	testJournal(t, func(t *testing.T) journal.Journal { return journal.NewMemory() })
}

func TestMemoryLen(t *testing.T) {
	ctx := context.Background()
	j := journal.NewMemory()
	a := mustAppend(t, j, journal.Entry{Key: "a"})
	mustAppend(t, j, journal.Entry{Key: "b"})
	if err := j.Ack(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if j.Len() != 1 {
		t.Errorf("Len: got %d, want 1", j.Len())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := j.Append(cctx, journal.Entry{Key: "c"}); err == nil {
		t.Error("Append with a cancelled context: got nil error")
	}
	if j.Len() != 1 {
		t.Errorf("Len after a cancelled Append: got %d, want 1", j.Len())
	}
}

func TestSideAndOpNames(t *testing.T) {
	got := []string{journal.Primary.String(), journal.Secondary.String(), journal.Primary.Other().String(), journal.Put.String(), journal.Delete.String()}
	want := []string{"primary", "secondary", "secondary", "put", "delete"}
	if !slices.Equal(got, want) {
		t.Errorf("names: got %q, want %q", got, want)
	}
}
