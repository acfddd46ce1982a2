package journal_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/failoverblob/failoverblob/journal"
)

func openFile(t testing.TB, path string) *journal.File {
	t.Helper()
	j, err := journal.OpenFile(path)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func closeFile(t testing.TB, j *journal.File) {
	t.Helper()
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestFileJournal(t *testing.T) {
	testJournal(t, func(t *testing.T) journal.Journal {
		return openFile(t, filepath.Join(t.TempDir(), "journal"))
	})
}

func TestFileRoundTripAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openFile(t, path)
	var want []journal.Entry
	for i, k := range []string{"a", "dir/b", "c"} {
		want = append(want, mustAppend(t, j, journal.Entry{
			Key: k, Version: "v" + strconv.Itoa(i), Op: journal.Op(i % 2),
			Missing: journal.Side(i % 2), Size: int64(i) * 1000,
		}))
	}
	if got := mustList(t, j); !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("List before reopening: got IDs %q, want %q", ids(got), ids(want))
	}
	closeFile(t, j)
	j = openFile(t, path)
	if got := mustList(t, j); !sameEntries(got, want) {
		t.Errorf("List after reopening:\n got %+v\nwant %+v", got, want)
	}
}

func TestFileAckPersists(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal")
	j := openFile(t, path)
	var es []journal.Entry
	for _, k := range []string{"a", "b", "c", "d"} {
		es = append(es, mustAppend(t, j, journal.Entry{Key: k}))
	}
	if err := j.Ack(ctx, es[0].ID, es[2].ID); err != nil {
		t.Fatal(err)
	}
	closeFile(t, j)
	j = openFile(t, path)
	if got, want := keys(mustList(t, j)), []string{"b@", "d@"}; !slices.Equal(got, want) {
		t.Fatalf("List after Ack and reopening: got %q, want %q", got, want)
	}
	if err := j.Ack(ctx, es[3].ID); err != nil {
		t.Fatal(err)
	}
	closeFile(t, j)
	j = openFile(t, path)
	if got, want := keys(mustList(t, j)), []string{"b@"}; !slices.Equal(got, want) {
		t.Errorf("List after a second Ack and reopening: got %q, want %q", got, want)
	}
}

func TestFileIDsUniqueAcrossReopen(t *testing.T) {
	ctx := context.Background()
	// Compaction after acknowledging everything leaves no entry behind, so
	// the file must still remember the highest ID given.
	journal.SetCompactMin(t, 3)
	path := filepath.Join(t.TempDir(), "journal")
	seen := map[string]bool{}
	for round := range 4 {
		j := openFile(t, path)
		var got []string
		for i := range 5 {
			id, err := j.Append(ctx, journal.Entry{Key: fmt.Sprintf("r%d/%d", round, i)})
			if err != nil {
				t.Fatal(err)
			}
			if seen[id] {
				t.Fatalf("round %d: Append gave ID %q, already given before reopening", round, id)
			}
			seen[id] = true
			got = append(got, id)
		}
		if round%2 == 0 {
			if err := j.Ack(ctx, got...); err != nil {
				t.Fatal(err)
			}
		}
		closeFile(t, j)
	}
}

// TestFileTornTail cuts the file inside its last frame at every offset, as a
// crash during the write would, optionally followed by zeros or garbage (the
// file grew but the data did not reach the disk).
func TestFileTornTail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "journal")
	j := openFile(t, path)
	a := mustAppend(t, j, journal.Entry{Key: "a", Version: "1"})
	b := mustAppend(t, j, journal.Entry{Key: "b", Version: "2"})
	before := fileSize(t, path)
	mustAppend(t, j, journal.Entry{Key: "torn", Version: "3"})
	after := fileSize(t, path)
	closeFile(t, j)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for cut := before; cut < after; cut++ {
		for _, fill := range []string{"none", "zeros", "garbage"} {
			name := fmt.Sprintf("cut%d-%s", cut, fill)
			t.Run(name, func(t *testing.T) {
				p := filepath.Join(dir, name)
				data := slices.Clone(orig[:cut])
				switch fill {
				case "zeros":
					data = append(data, make([]byte, after-cut+100)...)
				case "garbage":
					for range after - cut + 100 {
						data = append(data, byte(rng.Uint32()))
					}
				}
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
				j, err := journal.OpenFile(p)
				if err != nil {
					t.Fatalf("OpenFile of a file with a torn tail: %v", err)
				}
				defer j.Close()
				if got := mustList(t, j); !sameEntries(got, []journal.Entry{a, b}) {
					t.Fatalf("List: got %q, want %q", keys(got), keys([]journal.Entry{a, b}))
				}
				if size := fileSize(t, p); size != before {
					t.Errorf("size after OpenFile: got %d, want %d (the torn tail truncated)", size, before)
				}
				id, err := j.Append(ctx, journal.Entry{Key: "c", Version: "4"})
				if err != nil {
					t.Fatalf("Append after recovery: %v", err)
				}
				if id == a.ID || id == b.ID {
					t.Errorf("Append after recovery gave ID %q, already used", id)
				}
				closeFile(t, j)
				j2 := openFile(t, p)
				if got, want := keys(mustList(t, j2)), []string{"a@1", "b@2", "c@4"}; !slices.Equal(got, want) {
					t.Errorf("List after an append and reopening: got %q, want %q", got, want)
				}
			})
		}
	}
}

// TestFileCorruptMiddle damages every byte of the first of three frames in
// turn: the frames after it are well formed, so this is no torn write and
// OpenFile must refuse the file rather than drop entries.
func TestFileCorruptMiddle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal")
	j := openFile(t, path)
	start := fileSize(t, path) // the header
	mustAppend(t, j, journal.Entry{Key: "a"})
	end := fileSize(t, path)
	mustAppend(t, j, journal.Entry{Key: "b"})
	mustAppend(t, j, journal.Entry{Key: "c"})
	closeFile(t, j)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := start; i < end; i++ {
		data := slices.Clone(orig)
		data[i] ^= 0x41
		p := filepath.Join(dir, fmt.Sprintf("flip%d", i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		j, err := journal.OpenFile(p)
		if err == nil {
			es, _ := j.List(context.Background())
			j.Close()
			t.Fatalf("byte %d changed: OpenFile succeeded with entries %q, want a corruption error", i, keys(es))
		}
		var ce *journal.CorruptError
		if !errors.As(err, &ce) || ce.Offset != start || !strings.Contains(err.Error(), p) {
			t.Fatalf("byte %d changed: got error %v, want a *CorruptError at offset %d naming %s", i, err, start, p)
		}
		if got, _ := os.ReadFile(p); !slices.Equal(got, data) {
			t.Fatalf("byte %d changed: OpenFile modified the corrupt file", i)
		}
		// The failed open must not hold the lock.
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFileLongBadTail puts more zeros after the last frame than one frame can
// hold: a torn write cannot leave that much, so OpenFile must not truncate it
// away silently.
func TestFileLongBadTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openFile(t, path)
	mustAppend(t, j, journal.Entry{Key: "a"})
	closeFile(t, j)
	end := fileSize(t, path)
	if err := os.Truncate(path, end+5<<20); err != nil {
		t.Fatal(err)
	}
	_, err := journal.OpenFile(path)
	var ce *journal.CorruptError
	if !errors.As(err, &ce) || ce.Offset != end {
		t.Fatalf("OpenFile: got %v, want a *CorruptError at offset %d", err, end)
	}
	if size := fileSize(t, path); size != end+5<<20 {
		t.Errorf("size after OpenFile: got %d, want %d (left as it was)", size, end+5<<20)
	}
}

func TestFileNotAJournal(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "other")
	if err := os.WriteFile(p, []byte("some other file, not a journal"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := journal.OpenFile(p)
	var ce *journal.CorruptError
	if !errors.As(err, &ce) || ce.Offset != 0 {
		t.Fatalf("OpenFile of another file: got %v, want a *CorruptError at offset 0", err)
	}
	// An empty file, made ahead of time, becomes a journal.
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	j := openFile(t, empty)
	e := mustAppend(t, j, journal.Entry{Key: "a"})
	closeFile(t, j)
	if got := mustList(t, openFile(t, empty)); !sameEntries(got, []journal.Entry{e}) {
		t.Errorf("List of a journal started in an empty file: got %q, want %q", keys(got), "a@")
	}
}

func TestFileCompaction(t *testing.T) {
	ctx := context.Background()
	journal.SetCompactMin(t, 10)
	dir := t.TempDir()
	path := filepath.Join(dir, "journal")
	j := openFile(t, path)
	var all []journal.Entry
	for i := range 30 {
		all = append(all, mustAppend(t, j, journal.Entry{Key: fmt.Sprintf("k%02d", i), Version: "v", Size: int64(i)}))
	}
	// Acknowledge in two steps: the first leaves live entries in the
	// majority, so no compaction yet; the second tips the balance.
	var first, second []string
	var live []journal.Entry
	for i, e := range all {
		switch {
		case i == 3 || i == 17 || i == 29:
			live = append(live, e)
		case i < 12:
			first = append(first, e.ID)
		default:
			second = append(second, e.ID)
		}
	}
	if err := j.Ack(ctx, first...); err != nil {
		t.Fatal(err)
	}
	grown := fileSize(t, path)
	if err := j.Ack(ctx, second...); err != nil {
		t.Fatal(err)
	}
	compacted := fileSize(t, path)
	if compacted >= grown/3 {
		t.Errorf("size after compaction: got %d, want well under %d (before the last Ack)", compacted, grown)
	}
	if got := mustList(t, j); !sameEntries(got, live) {
		t.Errorf("List after compaction: got %q, want %q", keys(got), keys(live))
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file after compaction: Stat gave %v, want it gone", err)
	}
	after := mustAppend(t, j, journal.Entry{Key: "after"})
	live = append(live, after)
	closeFile(t, j)

	j = openFile(t, path)
	if got := mustList(t, j); !sameEntries(got, live) {
		t.Errorf("List after compaction and reopening:\n got %+v\nwant %+v", got, live)
	}
	id, err := j.Append(ctx, journal.Entry{Key: "new"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.ID == id || after.ID == id {
			t.Errorf("Append after compaction gave ID %q, already used", id)
		}
	}
}

func TestFileCompactionOnOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal")
	j := openFile(t, path)
	var live []journal.Entry
	for i := range 20 {
		e := mustAppend(t, j, journal.Entry{Key: fmt.Sprintf("k%02d", i)})
		if i%5 == 0 {
			live = append(live, e)
		} else if err := j.Ack(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
	}
	closeFile(t, j)
	grown := fileSize(t, path)
	journal.SetCompactMin(t, 10)
	j = openFile(t, path)
	if size := fileSize(t, path); size >= grown/3 {
		t.Errorf("size after OpenFile: got %d, want well under %d (compacted)", size, grown)
	}
	if got := mustList(t, j); !sameEntries(got, live) {
		t.Errorf("List after compaction on open: got %q, want %q", keys(got), keys(live))
	}
	closeFile(t, j)
	if got := mustList(t, openFile(t, path)); !sameEntries(got, live) {
		t.Errorf("List after reopening the compacted file: got %q, want %q", keys(got), keys(live))
	}
}

// TestFileLeftoverTemp leaves the temporary file of a compaction that
// crashed before its rename: the journal itself is intact and the leftover
// is removed.
func TestFileLeftoverTemp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openFile(t, path)
	a := mustAppend(t, j, journal.Entry{Key: "a"})
	closeFile(t, j)
	if err := os.WriteFile(path+".tmp", []byte("half a compaction"), 0o644); err != nil {
		t.Fatal(err)
	}
	j = openFile(t, path)
	if got := mustList(t, j); !sameEntries(got, []journal.Entry{a}) {
		t.Errorf("List: got %q, want %q", keys(got), "a@")
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover temporary file: Stat gave %v, want it removed", err)
	}
}

// TestFileConcurrentDurable appends, acknowledges and lists from many
// goroutines, with compaction on, and checks that what the calls reported
// is exactly what a reopened journal holds.
func TestFileConcurrentDurable(t *testing.T) {
	ctx := context.Background()
	journal.SetCompactMin(t, 20)
	path := filepath.Join(t.TempDir(), "journal")
	j := openFile(t, path)
	const workers, each = 8, 40
	var mu sync.Mutex
	pending := map[string]string{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []string
			for i := range each {
				key := fmt.Sprintf("w%d/%02d", w, i)
				id, err := j.Append(ctx, journal.Entry{Key: key})
				if err != nil {
					errs <- err
					return
				}
				mine = append(mine, id)
				mu.Lock()
				pending[id] = key
				mu.Unlock()
				if i%4 == 3 {
					// Acknowledge three of the last four, in one call.
					ack := mine[len(mine)-4 : len(mine)-1]
					if err := j.Ack(ctx, ack...); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for _, id := range ack {
						delete(pending, id)
					}
					mu.Unlock()
				}
				if _, err := j.List(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d appends in %d frames", workers*each, journal.Syncs(j))
	check := func(when string, es []journal.Entry) {
		t.Helper()
		got := map[string]string{}
		for _, e := range es {
			got[e.ID] = e.Key
		}
		if len(got) != len(pending) || len(es) != len(pending) {
			t.Fatalf("%s: %d entries (%d IDs), want %d", when, len(es), len(got), len(pending))
		}
		for id, k := range pending {
			if got[id] != k {
				t.Fatalf("%s: entry %s has key %q, want %q", when, id, got[id], k)
			}
		}
		for w := range workers {
			var order []string
			for _, e := range es {
				if strings.HasPrefix(e.Key, fmt.Sprintf("w%d/", w)) {
					order = append(order, e.Key)
				}
			}
			if !slices.IsSorted(order) {
				t.Fatalf("%s: worker %d's entries out of append order: %q", when, w, order)
			}
		}
	}
	check("List", mustList(t, j))
	closeFile(t, j)
	check("List after reopening", mustList(t, openFile(t, path)))
}

// TestFileCloseDuringAppends closes the journal while appends run: each
// Append either succeeds, and its entry is in the reopened file, or fails
// with ErrClosed.
func TestFileCloseDuringAppends(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal")
	j, err := journal.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var okIDs []string
	var wg sync.WaitGroup
	started := make(chan struct{}, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id, err := j.Append(ctx, journal.Entry{Key: fmt.Sprintf("w%d/%d", w, i)})
				if errors.Is(err, journal.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Append: got %v, want nil or ErrClosed", err)
					return
				}
				mu.Lock()
				okIDs = append(okIDs, id)
				mu.Unlock()
				if i == 2 {
					started <- struct{}{}
				}
			}
		}()
	}
	for range 4 {
		<-started
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	got := map[string]bool{}
	for _, e := range mustList(t, openFile(t, path)) {
		got[e.ID] = true
	}
	for _, id := range okIDs {
		if !got[id] {
			t.Errorf("entry %s: Append returned nil before Close, but the reopened journal lacks it", id)
		}
	}
}

// TestFileWriteAndSyncFailures checks that a failed write is undone and
// leaves the journal usable, and that a failed fsync makes it refuse all
// further use until it is reopened.
func TestFileWriteAndSyncFailures(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal")
	j := openFile(t, path)
	a := mustAppend(t, j, journal.Entry{Key: "a"})
	good := fileSize(t, path)
	errDisk := errors.New("disk says no")
	fail := func() error { return errDisk }

	journal.InjectFaults(j, fail, nil)
	if _, err := j.Append(ctx, journal.Entry{Key: "lost", Version: "a long version string"}); !errors.Is(err, errDisk) {
		t.Fatalf("Append with a failing write: got %v, want %v", err, errDisk)
	}
	if err := j.Ack(ctx, a.ID); !errors.Is(err, errDisk) {
		t.Fatalf("Ack with a failing write: got %v, want %v", err, errDisk)
	}
	if got := keys(mustList(t, j)); !slices.Equal(got, []string{"a@"}) {
		t.Fatalf("List after failed writes: got %q, want %q", got, "a@")
	}
	if size := fileSize(t, path); size != good {
		t.Errorf("size after failed writes: got %d, want %d (undone)", size, good)
	}
	journal.InjectFaults(j, nil, nil)
	mustAppend(t, j, journal.Entry{Key: "c"})

	journal.InjectFaults(j, nil, fail)
	if _, err := j.Append(ctx, journal.Entry{Key: "d"}); !errors.Is(err, errDisk) {
		t.Fatalf("Append with a failing fsync: got %v, want %v", err, errDisk)
	}
	journal.InjectFaults(j, nil, nil)
	if _, err := j.Append(ctx, journal.Entry{Key: "e"}); err == nil || !errors.Is(err, errDisk) {
		t.Errorf("Append after a failed fsync: got %v, want an error wrapping %v", err, errDisk)
	}
	if _, err := j.List(ctx); err == nil {
		t.Error("List after a failed fsync: got nil error")
	}
	if err := j.Ack(ctx, a.ID); err == nil {
		t.Error("Ack after a failed fsync: got nil error")
	}
	closeFile(t, j)
	// The frame whose fsync "failed" did reach the file here, so d may be
	// back; a and c must be.
	got := keys(mustList(t, openFile(t, path)))
	if !slices.Equal(got, []string{"a@", "c@"}) && !slices.Equal(got, []string{"a@", "c@", "d@"}) {
		t.Errorf("List after reopening: got %q, want a@, c@ and perhaps d@", got)
	}
}

func TestFileDoubleOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openFile(t, path)
	mustAppend(t, j, journal.Entry{Key: "a"})
	j2, err := journal.OpenFile(path)
	if err == nil {
		j2.Close()
		t.Fatal("second OpenFile of an open journal: got nil error")
	}
	if !errors.Is(err, journal.ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("second OpenFile: got %v, want ErrLocked naming %s", err, path)
	}
	closeFile(t, j)
	j2 = openFile(t, path)
	if got := keys(mustList(t, j2)); !slices.Equal(got, []string{"a@"}) {
		t.Errorf("List after reopening: got %q, want %q", got, "a@")
	}
}

func TestFileUseAfterClose(t *testing.T) {
	ctx := context.Background()
	j, err := journal.OpenFile(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	e := mustAppend(t, j, journal.Entry{Key: "a"})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, journal.Entry{Key: "b"}); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("Append after Close: got %v, want ErrClosed", err)
	}
	if _, err := j.List(ctx); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("List after Close: got %v, want ErrClosed", err)
	}
	if err := j.Ack(ctx, e.ID); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("Ack after Close: got %v, want ErrClosed", err)
	}
	if err := j.Close(); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("second Close: got %v, want ErrClosed", err)
	}
}

func TestFileOpenErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing-dir", "journal")
	_, err := journal.OpenFile(p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("OpenFile in a missing directory: got %v, want an error naming %s", err, p)
	}
}

// BenchmarkFileAppend measures Append, whose cost is mostly the fsync: one
// per call when serial, shared between the calls of one batch when
// parallel. frames/op is the fraction of calls that paid for their own
// write and fsync.
func BenchmarkFileAppend(b *testing.B) {
	ctx := context.Background()
	e := journal.Entry{Key: "some/object/key.bin", Version: "1712345678901234567-0001", Size: 4096}
	run := func(b *testing.B, parallelism int) {
		j := openFile(b, filepath.Join(b.TempDir(), "journal"))
		b.ReportAllocs()
		b.ResetTimer()
		if parallelism == 0 {
			for b.Loop() {
				if _, err := j.Append(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
		} else {
			b.SetParallelism(parallelism)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := j.Append(ctx, e); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		b.StopTimer()
		b.ReportMetric(float64(journal.Syncs(j))/float64(b.N), "frames/op")
	}
	b.Run("serial", func(b *testing.B) { run(b, 0) })
	b.Run("parallel", func(b *testing.B) { run(b, 1) })
	b.Run("parallel16", func(b *testing.B) { run(b, 16) })
}
