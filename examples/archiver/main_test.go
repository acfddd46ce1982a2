package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"
)

const okLine = "OK: every published message is archived exactly once on the primary"

// The whole rehearsal, as go run ./examples/archiver runs it: the primary
// goes down, the archiver is killed mid-batch and between storing a batch
// and committing it, the primary comes back, and every published message
// must end up in exactly one batch on the primary (rehearse checks that, and
// that each kill left the committed offset where it was).
func TestRehearsal(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out bytes.Buffer
	cfg := config{messages: 1000, batch: 100}
	before := runtime.NumGoroutine()
	fig, err := rehearse(context.Background(), &out, cfg)
	if err != nil {
		t.Fatalf("rehearse(%+v) = %v, want nil; output:\n%s", cfg, err, out.String())
	}
	if !strings.Contains(out.String(), okLine) || strings.Contains(out.String(), "FAIL") {
		t.Errorf("output lacks %q or reports a failure:\n%s", okLine, out.String())
	}
	// What the script does, whatever the timing: batches 4 to 6 are written
	// while the primary is down (6 twice), batch 5's first write is
	// aborted, batch 6 is written again after the second kill, and batches
	// 5 and 6 are redelivered whole. One more write may fail over if the
	// reconciler's call is the probe that closes the breaker.
	for _, c := range []struct {
		name      string
		got, want int
		atLeast   bool
	}{
		{"batches on the primary", fig.batches, 10, false},
		{"batch writes acknowledged", fig.writes, 11, false},
		{"batches written again", fig.rewrites, 1, false},
		{"writes aborted", fig.aborted, 1, false},
		{"messages redelivered", fig.redelivered, 200, true},
		{"failed-over writes", fig.failedOver, 4, true},
		{"batches copied by the reconciler", fig.copied, 3, true},
		{"temporary copies removed", fig.cleaned, fig.copied, false},
	} {
		if c.got != c.want && !(c.atLeast && c.got > c.want) {
			t.Errorf("%s: %d, want %d%s", c.name, c.got, c.want, map[bool]string{true: " or more"}[c.atLeast])
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("rehearse left %d entries in the temporary directory, want none (first: %s)", len(left), left[0].Name())
	}
	checkGoroutines(t, before)
}

// With the journal in memory, each killed archiver takes its record of the
// batches it failed over with it: they stay on the secondary, and the final
// check must say which messages the primary lacks.
func TestRehearsalWithoutDurableJournalFails(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	var out bytes.Buffer
	cfg := config{messages: 700, batch: 100, memoryJournal: true}
	_, err := rehearse(context.Background(), &out, cfg)
	if err == nil {
		t.Fatalf("rehearse(%+v) = nil, want an error; output:\n%s", cfg, out.String())
	}
	// Batch 4 was failed over by archiver #1 and batch 5 by archiver #2,
	// and both committed; archiver #3 wrote batch 6 again itself.
	const want = "FAIL: primary: messages 301-500 are in no batch"
	if !strings.Contains(out.String(), want) || strings.Contains(out.String(), okLine) {
		t.Errorf("output lacks %q or claims success:\n%s", want, out.String())
	}
}

func TestFlags(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run(-h) = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "Usage: go run ./examples/archiver") || !strings.Contains(out.String(), "-journal") {
		t.Errorf("run(-h) printed no usage:\n%s", out.String())
	}
	for _, args := range [][]string{
		{"extra"},
		{"-batch", "0"},
		{"-messages", "650"},                 // not whole batches
		{"-messages", "600"},                 // too few batches for the script
		{"-journal", "disk"},                 // unknown journal
		{"-messages", "70", "-batch", "100"}, // less than a batch
	} {
		if _, err := parseFlags(&out, args); err == nil {
			t.Errorf("parseFlags(%q) = nil error, want one", args)
		}
	}
	cfg, err := parseFlags(&out, []string{"-messages", "35", "-batch", "5", "-journal", "memory"})
	if want := (config{messages: 35, batch: 5, memoryJournal: true}); err != nil || cfg != want {
		t.Errorf("parseFlags = %+v, %v; want %+v, nil", cfg, err, want)
	}
}

// verifyArchive is the final check; it must catch every way an archive can
// be wrong.
func TestVerifyArchive(t *testing.T) {
	const p = "events/"
	published := [][]byte{[]byte("m1"), []byte("m2"), []byte("m3"), []byte("m4")}
	// content is a batch object holding data as messages first, first+1, ...
	content := func(first uint64, data ...string) string {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		for i, d := range data {
			if err := enc.Encode(record{Seq: first + uint64(i), Subject: subject, Data: []byte(d)}); err != nil {
				t.Fatal(err)
			}
		}
		return b.String()
	}
	b12, b34, b23, b55 := objectName(p, 1, 2), objectName(p, 3, 4), objectName(p, 2, 3), objectName(p, 5, 5)
	c12, c34 := content(1, "m1", "m2"), content(3, "m3", "m4")
	tests := []struct {
		name    string
		objects map[string]string
		want    []string
	}{
		{"complete", map[string]string{b12: c12, b34: c34}, nil},
		{"a batch missing", map[string]string{b12: c12},
			[]string{"messages 3-4 are in no batch"}},
		{"an overlapping batch", map[string]string{b12: c12, b34: c34, b23: content(2, "m2", "m3")},
			[]string{"messages 2-3 are in 2 batches"}},
		{"wrong bytes", map[string]string{b12: c12, b34: content(3, "m3", "mX")},
			[]string{b34 + `: message 4 holds "mX", want "m4"`}},
		{"fewer messages than its name says", map[string]string{b12: c12, b34: content(3, "m3")},
			[]string{b34 + ": holds messages 3-3, want 3-4", "messages 4-4 are in no batch"}},
		{"out of order", map[string]string{b12: c12, b34: content(4, "m4", "m3")},
			[]string{b34 + ": line 1 holds message 4, want 3", "messages 3-4 are in no batch"}},
		{"a name that gives no range", map[string]string{b12: c12, b34: c34, p + "x.jsonl": c12},
			[]string{p + "x.jsonl: the name does not give a range of sequence numbers"}},
		{"a message never published", map[string]string{b12: c12, b34: c34, b55: content(5, "m5")},
			[]string{b55 + ": holds message 5, which was never published"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			b := memblob.OpenBucket(nil)
			defer b.Close()
			for k, v := range tt.objects {
				if err := b.WriteAll(ctx, k, []byte(v), nil); err != nil {
					t.Fatal(err)
				}
			}
			got, n, err := verifyArchive(ctx, b, p, published)
			if err != nil || n != len(tt.objects) || strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("verifyArchive = %q, %d batches, %v; want %q, %d batches, nil", got, n, err, tt.want, len(tt.objects))
			}
		})
	}
}

// A rehearsal whose context is cancelled half-way stops, and cleans up
// after itself.
func TestRehearsalStopsWhenCancelled(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOn{substr: "primary: DOWN", cancel: cancel}
	before := runtime.NumGoroutine()
	_, err := rehearse(ctx, out, config{messages: 1000, batch: 100})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("rehearse = %v, want context.Canceled; output:\n%s", err, out.String())
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("rehearse left %d entries in the temporary directory, want none (first: %s)", len(left), left[0].Name())
	}
	checkGoroutines(t, before)
}

// checkGoroutines fails t if more goroutines than before are still running
// a few seconds from now (the NATS server's take a moment to end).
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before rehearse, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// cancelOn is an output that cancels once it has been sent substr.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	substr string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.substr) {
		c.cancel()
	}
	return n, err
}

func (c *cancelOn) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
