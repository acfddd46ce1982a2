//go:build unix

// Package killtest is the crash test of failoverblob: a child process runs
// the library over two fileblob buckets while its primary goes down and
// comes back, and dies by SIGKILL at a kill point chosen from a seed; the
// next child carries on over what it left; and once the run's children are
// dead, a fresh failover bucket with only the buckets (and, for the file
// journal, the file) drains, and every key is checked against what the
// children were told.
//
// The children run a binary built from ./killchild (ChildMain), without the
// race detector, so that the test costs little under go test -race; Run is
// the parent's side.
package killtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/failoverblob/failoverblob"
)

// Config describes one run.
type Config struct {
	// Binary is the child program (built from ./killchild).
	Binary string
	// Dir is the run's directory, empty.
	Dir string
	// Mode is the failover bucket's mode; Mirror runs use AckEither.
	Mode failoverblob.Mode
	// Journal is "bucket" (the default journal, on the buckets) or "file"
	// (journal.OpenFile).
	Journal string
	// Seed decides everything else: how many workers each child runs, its
	// workload and its kill point.
	Seed uint64
	// Children is how many children run, one after another, each killed.
	Children int
	// Keys is how many keys the workload uses.
	Keys int
	// MaxKillPoint bounds the kill point chosen for each child, from 1.
	MaxKillPoint int
	// ChildTimeout bounds each child; one that lives longer hung.
	ChildTimeout time.Duration
}

// Result is what one run found.
type Result struct {
	Runs     int
	Children int
	Kills    int            // children that died at their kill point
	Points   map[string]int // kills by kill point
	Ops      map[string]int // operations by kind and outcome ("put acked", ...)
	Keys     int            // keys checked after recovery
	// Violations are the oracle's findings: lost writes, undone deletes
	// (a delete answered NotFound among them), values never written,
	// states that went back, leftovers. A run with none passed.
	Violations []string
	// Flips are states observed that a linearizable history of the
	// acknowledged and unacknowledged operations would not show, though
	// the acknowledged ones allow them (see keyOracle).
	Flips []string
	// Apart counts the keys the sides held apart after the recovery's
	// drains, with no journal entry: in Redirect mode the copy of a write
	// cut by a kill between committing it and recording it (the library
	// does both at once), in Mirror mode a change cut between the two
	// sides. Verify is what the verifier then found and repaired.
	Apart  int
	Verify failoverblob.VerifyReport
	// Reserved counts objects left under the reserved prefix other than
	// journal entries, by name up to its second slash.
	Reserved map[string]int
	// TempFiles counts files the children left in their TMPDIR (spool
	// files, fileblob's temporary files): not in the buckets.
	TempFiles int
	// Drains is how many passes the recovery needed.
	Drains int
	// ChildTime and RecoveryTime are the time the children ran, and the
	// time the recovery and its checks took.
	ChildTime, RecoveryTime time.Duration
}

// child draws the configuration of child i. Most kill points are on the
// write path, where most of the work is; a third of the children are
// aimed at the repair path and some at the delete path, so that those get
// their share.
func (c Config) child(i int, rng *rand.Rand) childConfig {
	workers := 1
	if rng.IntN(2) == 0 {
		workers = 3
	}
	cc := childConfig{
		dir: c.Dir, mode: c.Mode, journal: c.Journal, workers: workers, keys: c.Keys,
		seed: rng.Uint64(), fallback: 3 * int64(c.MaxKillPoint), child: i,
	}
	switch r := rng.IntN(10); {
	case r < 3:
		cc.killPath = "repair"
		cc.killAt = 1 + rng.Int64N(int64(c.MaxKillPoint)/3)
	case r < 4:
		cc.killPath = "delete"
		cc.killAt = 1 + rng.Int64N(int64(c.MaxKillPoint)/4)
	default:
		cc.killAt = 1 + rng.Int64N(int64(c.MaxKillPoint))
	}
	return cc
}

// Run runs the children of one run, one after another, then recovers and
// checks. An error means the run could not be carried out (a child that
// failed or hung); what the checks found is in the Result.
func Run(ctx context.Context, c Config) (Result, error) {
	res := Result{Runs: 1, Points: map[string]int{}, Ops: map[string]int{}, Reserved: map[string]int{}}
	if err := os.MkdirAll(filepath.Join(c.Dir, "tmp"), 0o755); err != nil {
		return res, err
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x6b696c6c))
	var logs []*childLog
	for i := range c.Children {
		cc := c.child(i, rng)
		start := time.Now()
		cl, err := runOne(ctx, c, cc)
		res.ChildTime += time.Since(start)
		if err != nil {
			return res, err
		}
		res.Children++
		if cl.killed != "" {
			res.Kills++
			res.Points[cl.killed]++
		}
		logs = append(logs, cl)
	}
	start := time.Now()
	ch := newChecker(&res)
	replay(logs, ch)
	if err := recoverAndCheck(ctx, c, ch); err != nil {
		return res, err
	}
	res.RecoveryTime = time.Since(start)
	entries, _ := os.ReadDir(filepath.Join(c.Dir, "tmp"))
	res.TempFiles = len(entries)
	return res, nil
}

// runOne runs one child to its death and reads its log.
func runOne(ctx context.Context, c Config, cc childConfig) (*childLog, error) {
	ctx, cancel := context.WithTimeout(ctx, c.ChildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Binary, cc.args()...)
	cmd.Env = append(os.Environ(), "TMPDIR="+cc.path("tmp"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	describe := func(what string) error {
		return fmt.Errorf("child %d (%s %s): %s\n%s", cc.child, c.Binary, strings.Join(cc.args(), " "), what, out.String())
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return nil, describe(fmt.Sprintf("hung: still running after %v", c.ChildTimeout))
	case !errors.As(err, &ee):
		return nil, describe(fmt.Sprintf("did not run, or exited 0: %v", err))
	}
	ws, _ := ee.Sys().(syscall.WaitStatus)
	killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
	if !killed && ee.ExitCode() != 3 { // 3: it ran out of operations
		return nil, describe(fmt.Sprintf("failed: %v", err))
	}
	cl, err := readOpLog(cc.logPath())
	switch {
	case err != nil:
		return nil, describe(err.Error())
	case killed != (cl.killed != ""):
		return nil, describe(fmt.Sprintf("%v, and its log names the kill point %q", ee, cl.killed))
	}
	return cl, nil
}

// replay runs the children's logs through the checker, and counts
// operations. What the observations made during the run got wrong goes to
// the Result.
func replay(logs []*childLog, ch *checker) {
	for i, cl := range logs {
		for _, op := range cl.ops {
			ch.res.count(op)
			if op.kind == "put" || op.kind == "delete" || op.kind == "read" {
				check(op, fmt.Sprintf("child %d op %s (%s)", i, op.id, op.kind), ch)
			}
		}
	}
}

// count counts op by kind and outcome.
func (r *Result) count(op *loggedOp) {
	outcomes := [...]string{inFlight: "in flight", acked: "acked", failed: "failed"}
	switch {
	case op.kind == "down" || op.kind == "up":
		r.Ops[op.kind]++
	case op.notFound():
		r.Ops["delete not found"]++
	default:
		r.Ops[op.kind+" "+outcomes[op.outcome]]++
	}
}

// notFound reports whether op is a delete answered NotFound.
func (op *loggedOp) notFound() bool {
	return op.kind == "delete" && op.outcome == acked && op.result == "absent"
}

// check takes op, a put, delete or read at where, into the checker. A
// delete answered NotFound is a delete: the key stays absent until a later
// put.
func check(op *loggedOp, where string, ch *checker) {
	switch {
	case op.kind == "put":
		ch.change(op.key, op.value, op.outcome, where)
	case op.notFound():
		ch.observe(op.key, absent, where+", answered NotFound")
		ch.change(op.key, absent, acked, where+", answered NotFound")
	case op.kind == "delete":
		ch.change(op.key, absent, op.outcome, where)
	case op.kind == "read" && op.outcome == acked && op.result == "absent":
		ch.observe(op.key, absent, where)
	case op.kind == "read" && op.outcome == acked:
		ch.observe(op.key, op.result, where)
	case op.kind == "read" && op.outcome == failed && !isUnavailable(op.result):
		ch.res.violation(fmt.Sprintf("%s at %s: the read failed with an error other than ErrUnavailable: %s", op.key, where, op.result))
	}
}

// violation records v, found outside the oracles.
func (r *Result) violation(v string) {
	if v != "" {
		r.Violations = append(r.Violations, v)
	}
}

func isUnavailable(msg string) bool { return strings.HasPrefix(msg, unavailable) }

// Keys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
