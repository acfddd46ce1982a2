//go:build unix

package failoverblob_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/internal/killtest"
)

var (
	killRuns     = flag.Int("kill.runs", 64, "runs of TestKill per configuration (mode × journal); each kills -kill.children children")
	killChildren = flag.Int("kill.children", 4, "children each run of TestKill kills, one after another, before it recovers")
	killSeed     = flag.Uint64("kill.seed", 0, "run only TestKill's run with this seed (printed by a failing run), -kill.runs times")
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
// no delete undone (one answered NotFound included), no read older than
// the last acknowledged write, no temporary copy, journal entry or
// reconcile lease left.
//
// Replay a failing run with go test -run '^TestKill$' -v . -kill.seed=N
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

func (r *killRun) failed() bool { return r.err != nil || len(r.res.Violations) > 0 }

// failure describes a failed run: its seed, what went wrong, where its
// directory is kept, and how to replay it.
func (r *killRun) failure(t *testing.T) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d (%s): ", r.seed, r.config())
	if r.err != nil {
		fmt.Fprintf(&b, "the run failed: %v\n", r.err)
	}
	if vs := r.res.Violations; len(vs) > 0 {
		fmt.Fprintf(&b, "%d violations:\n", len(vs))
		for _, v := range vs[:min(len(vs), 10)] {
			fmt.Fprintf(&b, "  %s\n", v)
		}
	}
	fmt.Fprintf(&b, "the run's directory (buckets, journal, children's logs): %s\n", keep(t, r.dir))
	fmt.Fprintf(&b, "replay: go test -run '^TestKill$' -v . -kill.seed=%d -kill.children=%d", r.seed, *killChildren)
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
			})
		})
	}
	wg.Wait()
	return runs
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
