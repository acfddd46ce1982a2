//go:build unix

package failoverblob_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/internal/killtest"
	"github.com/failoverblob/failoverblob/journal"
)

var (
	killRuns     = flag.Int("kill.runs", 64, "runs of TestKill per configuration (mode × journal); each kills -kill.children children")
	killChildren = flag.Int("kill.children", 4, "children each run of TestKill kills, one after another, before it recovers")
	killSeed     = flag.Uint64("kill.seed", 0, "run only TestKill's run with this seed (printed by a failing run), -kill.runs times")
	killStrict   = flag.Bool("kill.strict", false, "in TestKill, also fail on what the library is known not to keep yet (see killtest.Config.Strict)")
	killKeep     = flag.Bool("kill.keep", false, "keep the directories of all TestKill's runs, not only of the failed ones")
)

// killConfig is one configuration of TestKill.
type killConfig struct {
	mode    failoverblob.Mode
	journal string
}

func (c killConfig) String() string { return c.mode.String() + "/" + c.journal + " journal" }

// The configurations, in the order seeds go round them: seed s runs
// killConfigs[(s-1) % 4].
var killConfigs = []killConfig{
	{failoverblob.Redirect, "bucket"},
	{failoverblob.Redirect, "file"},
	{failoverblob.Mirror, "bucket"},
	{failoverblob.Mirror, "file"},
}

// TestKill is the crash test (see package internal/killtest): children run
// the library over two fileblob buckets while the primary goes down and
// comes back, and die by SIGKILL at a kill point drawn from the run's
// seed, on the write, delete and repair paths; a fresh failover bucket with
// only the buckets (and the journal file) then recovers, and every key is
// checked against what the children were told: nothing acknowledged lost,
// no delete undone, no temporary copy and no journal entry left.
//
// Replay a failing run with go test -run '^TestKill$' -kill.seed=N -v .
func TestKill(t *testing.T) {
	built := time.Now()
	bin := buildKillChild(t)
	t.Logf("built the child in %v", time.Since(built).Round(time.Millisecond))
	root := t.TempDir()
	if *killKeep {
		root = filepath.Join(os.TempDir(), "killtest-"+time.Now().Format("20060102-150405"))
	}
	start := time.Now()
	runs := runKills(bin, root, killSeeds())
	elapsed := time.Since(start)

	failed := 0
	for _, r := range runs {
		if !r.failed() {
			continue
		}
		if failed++; failed <= 10 {
			t.Error(r.failure(t))
		}
	}
	if failed > 10 {
		t.Errorf("... and %d more failed runs", failed-10)
	}
	if !*killStrict {
		logStrict(t, runs)
	}
	if failed > 0 {
		t.Errorf("%d of %d runs failed", failed, len(runs))
	}
	t.Log(killReport(runs, elapsed))
	if *killKeep {
		t.Logf("the runs' directories are kept under %s", root)
	}
}

// killSeeds returns the seeds of the runs: -kill.runs per configuration,
// or -kill.seed -kill.runs times. A run's children race their reconcilers
// and breakers, so a replay takes the same decisions but not always the
// same turns: it is repeated.
func killSeeds() []uint64 {
	var seeds []uint64
	for i := range uint64(*killRuns) {
		if *killSeed != 0 {
			seeds = append(seeds, *killSeed)
			continue
		}
		for c := range uint64(len(killConfigs)) {
			seeds = append(seeds, i*uint64(len(killConfigs))+c+1)
		}
	}
	return seeds
}

// killRun is one run of TestKill and what it found.
type killRun struct {
	seed uint64
	dir  string
	res  killtest.Result
	err  error
}

func (r *killRun) config() killConfig { return killConfigs[(r.seed-1)%uint64(len(killConfigs))] }

// violations returns what fails the run: the lenient checks' violations,
// or with -kill.strict the strict checks'.
func (r *killRun) violations() []string {
	if *killStrict {
		return r.res.Strict
	}
	return r.res.Violations
}

func (r *killRun) failed() bool { return r.err != nil || len(r.violations()) > 0 }

// failure describes a failed run: its seed, what went wrong, where its
// directory is kept, and how to replay it.
func (r *killRun) failure(t *testing.T) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d (%s): ", r.seed, r.config())
	if r.err != nil {
		fmt.Fprintf(&b, "the run failed: %v\n", r.err)
	}
	if vs := r.violations(); len(vs) > 0 {
		fmt.Fprintf(&b, "%d violations:\n", len(vs))
		for _, v := range vs[:min(len(vs), 10)] {
			fmt.Fprintf(&b, "  %s\n", v)
		}
	}
	fmt.Fprintf(&b, "the run's directory (buckets, journal, children's logs): %s\n", keep(t, r.dir))
	strict := ""
	if *killStrict {
		strict = " -kill.strict"
	}
	fmt.Fprintf(&b, "replay: go test -run '^TestKill$' -kill.seed=%d -kill.children=%d%s -v .", r.seed, *killChildren, strict)
	return b.String()
}

// runKills runs a run per seed, as many at once as there are processors,
// each in a directory of its own under root.
func runKills(bin, root string, seeds []uint64) []*killRun {
	runs := make([]*killRun, len(seeds))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, seed := range seeds {
		r := &killRun{seed: seed, dir: filepath.Join(root, fmt.Sprintf("run-%d-seed-%d", i, seed))}
		runs[i] = r
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if r.err = os.MkdirAll(r.dir, 0o755); r.err != nil {
				return
			}
			c := r.config()
			r.res, r.err = killtest.Run(context.Background(), killtest.Config{
				Binary: bin, Dir: r.dir, Mode: c.mode, Journal: c.journal, Seed: seed,
				Children: *killChildren, Keys: 6, MaxKillPoint: 120, ChildTimeout: time.Minute,
				Strict: *killStrict,
			})
		})
	}
	wg.Wait()
	return runs
}

// logStrict logs the first violations of the strict checks (see
// killtest.Config.Strict) in runs that passed, with their seeds.
func logStrict(t *testing.T, runs []*killRun) {
	var b strings.Builder
	n := 0
	for _, r := range runs {
		if r.failed() {
			continue
		}
		for _, v := range r.res.Strict {
			if n++; n <= 10 {
				fmt.Fprintf(&b, "\n  seed %d: %s", r.seed, v)
			}
		}
	}
	if n > 0 {
		t.Logf("the strict checks (-kill.strict) found %d violations; the first:%s", n, b.String())
	}
}

// keep moves a failed run's directory out of the test's temporary
// directory, which the test removes, and returns where it now is.
func keep(t *testing.T, dir string) string {
	if *killKeep {
		return dir
	}
	kept, err := os.MkdirTemp("", "killtest-failed-")
	if err == nil {
		kept = filepath.Join(kept, filepath.Base(dir))
		err = os.Rename(dir, kept)
	}
	if err != nil {
		t.Logf("keeping %s: %v", dir, err)
		return dir
	}
	return kept
}

// buildKillChild builds the child program, without the race detector
// whatever this test runs with: the children are where the time goes, and
// the race detector would make them several times slower.
func buildKillChild(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "killchild")
	cmd := exec.Command(goBin, "build", "-o", bin, "./internal/killtest/killchild")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the child: %v\n%s", err, out)
	}
	return bin
}

// killReport sums up the runs per configuration, and the kills by point.
func killReport(runs []*killRun, elapsed time.Duration) string {
	per := map[killConfig]*killtest.Result{}
	var all killtest.Result
	for _, r := range runs {
		c := r.config()
		if per[c] == nil {
			per[c] = &killtest.Result{}
		}
		per[c].Add(r.res)
		all.Add(r.res)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d runs, %d kills in %v\n", all.Runs, all.Kills, elapsed.Round(time.Millisecond))
	for _, c := range killConfigs {
		if r := per[c]; r != nil {
			fmt.Fprintf(&b, "%s:\n%s", c, r.Summary("  "))
		}
	}
	fmt.Fprintf(&b, "kills by point:\n%s", all.PointList("  "))
	return b.String()
}

// The defects TestKill found, each cut down to the state a kill leaves,
// built without one. They fail until the library is fixed, so they run
// only with -kill.strict.
func TestKillFindings(t *testing.T) {
	if !*killStrict {
		t.Skip("the defects TestKill found; run with -kill.strict")
	}
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
	// While the primary is down, a delete of the key is answered from the
	// secondary's miss, and keeps no tombstone: once the primary is back,
	// the object is there again.
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
	// deleting it again is NotFound, until the tombstone is applied to the
	// primary; then the secondary's copy, which nothing records, is taken
	// by Verify for a write that missed the primary, and copied back.
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
	// recorded. A later delete that the primary answers NotFound must not
	// leave that copy for Verify to copy back.
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
	// The key is then not pending; a later write goes to the primary,
	// and while the primary is down a read falls back to the secondary
	// and serves the older copy of the write that was cut.
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
