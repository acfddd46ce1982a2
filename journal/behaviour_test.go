package journal_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/failoverblob/failoverblob/journal"
)

func keys(es []journal.Entry) []string {
	var ks []string
	for _, e := range es {
		ks = append(ks, e.Key+"@"+e.Version)
	}
	return ks
}

func ids(es []journal.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// sameEntry reports whether a and b are equal, comparing Recorded as an
// instant.
func sameEntry(a, b journal.Entry) bool {
	return a.ID == b.ID && a.Key == b.Key && a.Op == b.Op && a.Version == b.Version &&
		a.Missing == b.Missing && a.Size == b.Size && a.Recorded.Equal(b.Recorded)
}

func sameEntries(a, b []journal.Entry) bool {
	return slices.EqualFunc(a, b, sameEntry)
}

func mustList(t *testing.T, j journal.Journal) []journal.Entry {
	t.Helper()
	es, err := j.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return es
}

func mustAppend(t *testing.T, j journal.Journal, e journal.Entry) journal.Entry {
	t.Helper()
	id, err := j.Append(context.Background(), e)
	if err != nil {
		t.Fatalf("Append(%q): %v", e.Key, err)
	}
	es := mustList(t, j)
	for _, got := range es {
		if got.ID == id {
			return got
		}
	}
	t.Fatalf("Append(%q) returned ID %q, which List does not show", e.Key, id)
	return journal.Entry{}
}

// testJournal checks the behaviour every Journal shares. open returns a new,
// empty journal that lives until the end of the test.
func testJournal(t *testing.T, open func(t *testing.T) journal.Journal) {
	ctx := context.Background()

	t.Run("AppendListAck", func(t *testing.T) {
		j := open(t)
		var got []string
		for _, k := range []string{"a", "b", "c"} {
			id, err := j.Append(ctx, journal.Entry{Key: k, Version: "v1", Op: journal.Put, Missing: journal.Primary})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, id)
		}
		es := mustList(t, j)
		if want := []string{"a@v1", "b@v1", "c@v1"}; !slices.Equal(keys(es), want) {
			t.Errorf("List: got %q, want %q (append order)", keys(es), want)
		}
		if !slices.Equal(ids(es), got) {
			t.Errorf("List IDs: got %q, want the IDs Append returned, %q", ids(es), got)
		}
		if es[0].Recorded.IsZero() {
			t.Error("first entry: Recorded is zero, want the time of Append")
		}
		if err := j.Ack(ctx, got[1], "unknown", got[1], ""); err != nil {
			t.Fatal(err)
		}
		if want := []string{"a@v1", "c@v1"}; !slices.Equal(keys(mustList(t, j)), want) {
			t.Errorf("List after Ack: got %q, want %q", keys(mustList(t, j)), want)
		}
		if err := j.Ack(ctx, got[1]); err != nil {
			t.Errorf("Ack of an acknowledged ID: %v, want nil", err)
		}
		if err := j.Ack(ctx); err != nil {
			t.Errorf("Ack of nothing: %v, want nil", err)
		}
		if err := j.Ack(ctx, got[0], got[2]); err != nil {
			t.Fatal(err)
		}
		if es := mustList(t, j); len(es) != 0 {
			t.Errorf("List after acknowledging everything: got %q, want none", keys(es))
		}
	})

	t.Run("FieldsKept", func(t *testing.T) {
		j := open(t)
		when := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.UTC)
		in := journal.Entry{ID: "ignored", Key: "dir/ü key\x00", Op: journal.Delete, Version: "v\xff9", Missing: journal.Secondary, Size: 1 << 40, Recorded: when}
		got := mustAppend(t, j, in)
		in.ID = got.ID
		if !sameEntry(got, in) {
			t.Errorf("List: got %+v, want %+v", got, in)
		}
		if got.ID == "ignored" {
			t.Error("Append kept the caller's ID")
		}
	})

	t.Run("ListIsACopy", func(t *testing.T) {
		j := open(t)
		mustAppend(t, j, journal.Entry{Key: "a"})
		es := mustList(t, j)
		es[0].Key = "changed"
		if again := mustList(t, j); again[0].Key != "a" {
			t.Errorf("List after changing a returned entry: got key %q, want %q", again[0].Key, "a")
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		j := open(t)
		kept := mustAppend(t, j, journal.Entry{Key: "kept"})
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := j.Append(cctx, journal.Entry{Key: "a"}); err == nil {
			t.Error("Append with a cancelled context: got nil error")
		}
		if _, err := j.List(cctx); err == nil {
			t.Error("List with a cancelled context: got nil error")
		}
		if err := j.Ack(cctx, kept.ID); err == nil {
			t.Error("Ack with a cancelled context: got nil error")
		}
		if got := keys(mustList(t, j)); !slices.Equal(got, []string{"kept@"}) {
			t.Errorf("List after cancelled calls: got %q, want only %q", got, "kept@")
		}
	})

	t.Run("UniqueIDs", func(t *testing.T) {
		j := open(t)
		seen := map[string]bool{}
		for i := range 50 {
			id, err := j.Append(ctx, journal.Entry{Key: strconv.Itoa(i)})
			if err != nil {
				t.Fatal(err)
			}
			if seen[id] {
				t.Fatalf("Append %d: ID %q was already given", i, id)
			}
			seen[id] = true
			if i%3 == 0 {
				if err := j.Ack(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		j := open(t)
		const workers, each = 6, 20
		var wg sync.WaitGroup
		var mu sync.Mutex
		want := map[string]string{} // ID -> key of the entries left pending
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					key := fmt.Sprintf("w%d/%02d", w, i)
					id, err := j.Append(ctx, journal.Entry{Key: key})
					if err != nil {
						errs <- err
						return
					}
					es, err := j.List(ctx)
					if err != nil {
						errs <- err
						return
					}
					pos := slices.IndexFunc(es, func(e journal.Entry) bool { return e.ID == id })
					if pos < 0 {
						errs <- fmt.Errorf("entry %s (ID %s) missing from List after Append returned", key, id)
						return
					}
					if i%2 == 1 {
						if err := j.Ack(ctx, id); err != nil {
							errs <- err
							return
						}
						continue
					}
					// This worker's pending entries must stay in its append order.
					if prev := slices.IndexFunc(es, func(e journal.Entry) bool { return e.Key == fmt.Sprintf("w%d/%02d", w, i-2) }); prev >= 0 && prev > pos {
						errs <- fmt.Errorf("List order: %s at %d after %s at %d", key, pos, es[prev].Key, prev)
						return
					}
					mu.Lock()
					want[id] = key
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		es := mustList(t, j)
		got := map[string]string{}
		for _, e := range es {
			got[e.ID] = e.Key
		}
		if len(got) != len(es) || len(got) != len(want) {
			t.Fatalf("List: %d entries, %d distinct IDs, want %d", len(es), len(got), len(want))
		}
		for id, k := range want {
			if got[id] != k {
				t.Errorf("entry %s: got key %q, want %q", id, got[id], k)
			}
		}
	})
}
