package journal_test

import (
	"context"
	"slices"
	"testing"

	"github.com/failoverblob/failoverblob/journal"
)

func keys(es []journal.Entry) []string {
	var ks []string
	for _, e := range es {
		ks = append(ks, e.Key+"@"+e.Version)
	}
	return ks
}

func TestMemoryAppendListAck(t *testing.T) {
	ctx := context.Background()
	j := journal.NewMemory()
	var ids []string
	for _, k := range []string{"a", "b", "c"} {
		id, err := j.Append(ctx, journal.Entry{Key: k, Version: "v1", Op: journal.Put, Missing: journal.Primary})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	got, err := j.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a@v1", "b@v1", "c@v1"}; !slices.Equal(keys(got), want) {
		t.Errorf("List: got %q, want %q (append order)", keys(got), want)
	}
	if got[0].Recorded.IsZero() || got[0].ID != ids[0] {
		t.Errorf("first entry: got ID %q recorded %v, want ID %q and a time", got[0].ID, got[0].Recorded, ids[0])
	}
	if err := j.Ack(ctx, ids[1], "unknown", ids[1]); err != nil {
		t.Fatal(err)
	}
	got, _ = j.List(ctx)
	if want := []string{"a@v1", "c@v1"}; !slices.Equal(keys(got), want) {
		t.Errorf("List after Ack: got %q, want %q", keys(got), want)
	}
	if j.Len() != 2 {
		t.Errorf("Len: got %d, want 2", j.Len())
	}
}

func TestMemoryListIsACopy(t *testing.T) {
	ctx := context.Background()
	j := journal.NewMemory()
	if _, err := j.Append(ctx, journal.Entry{Key: "a"}); err != nil {
		t.Fatal(err)
	}
	got, _ := j.List(ctx)
	got[0].Key = "changed"
	again, _ := j.List(ctx)
	if again[0].Key != "a" {
		t.Errorf("List after changing a returned entry: got key %q, want %q", again[0].Key, "a")
	}
}

func TestMemoryCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	j := journal.NewMemory()
	if _, err := j.Append(ctx, journal.Entry{Key: "a"}); err == nil {
		t.Error("Append with a cancelled context: got nil error")
	}
	if j.Len() != 0 {
		t.Errorf("Len after a cancelled Append: got %d, want 0", j.Len())
	}
}

func TestSideAndOpNames(t *testing.T) {
	got := []string{journal.Primary.String(), journal.Secondary.String(), journal.Primary.Other().String(), journal.Put.String(), journal.Delete.String()}
	want := []string{"primary", "secondary", "secondary", "put", "delete"}
	if !slices.Equal(got, want) {
		t.Errorf("names: got %q, want %q", got, want)
	}
}
