//go:build unix

package killtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/journal"
)

// recoveryClockSkew is the MaxClockSkew of the children and the recovery.
// The clocks are one machine's, and a dead child's reconcile leases count
// as live for this long past their expiry.
const recoveryClockSkew = 20 * time.Millisecond

// childReconcileInterval is the children's ReconcileInterval. Their
// reconcile leases last three of them.
const childReconcileInterval = 2 * time.Millisecond

// childCallTimeout and childIdleTimeout are the CallTimeout and IdleTimeout
// of the children and the recovery, short for calls to a local disk: a
// repair leaves the entry of a write that no side holds while the write
// may still be committing, a time these bound (see Options.CallTimeout),
// so a recovery right after a kill waits about that long for such entries.
const (
	childCallTimeout = 200 * time.Millisecond
	childIdleTimeout = 200 * time.Millisecond
)

// settleTimeout bounds the drains of a recovery.
const settleTimeout = 10 * time.Second

// recoverAndCheck is the recovery: a fresh failover bucket over the run's
// sides (and journal file), with the primary healed, drains until nothing
// is pending, and verifies. Then every key is checked through it and on
// both sides, and the sides and journal for leftovers; and a second fresh
// failover bucket drains again and must find everything as the first left
// it.
func recoverAndCheck(ctx context.Context, c Config, ch *checker) error {
	res := ch.res
	for i := range c.Keys {
		ch.oracle(keyName(i))
	}
	known := ch.oracles
	raw, err := openSides(c.Dir)
	if err != nil {
		return err
	}
	defer raw[0].Close()
	defer raw[1].Close()

	settled := map[string]string{}
	start := time.Now()
	err = withFailover(ctx, c, func(f *failoverblob.Failover, j journal.Journal) error {
		settle(ctx, f, res, "the recovery")
		checkApart(ctx, c.Mode, raw, known, res)
		var err error
		if res.Verify, err = f.Verify(ctx, &failoverblob.VerifyOptions{Repair: true, Settle: -1}); err != nil {
			res.violation(fmt.Sprintf("the recovery's Verify failed: %v", err))
		}
		settle(ctx, f, res, "the recovery after Verify")
		for _, key := range sortedKeys(known) {
			state, err := readState(ctx, f.Bucket(), key)
			if err != nil {
				res.violation(fmt.Sprintf("%s at the recovery: the read failed: %v", key, err))
				continue
			}
			res.Keys++
			ch.observe(key, state, "the recovery")
			settled[key] = state
			checkSides(ctx, c.Mode, raw, key, state, "the recovery", res)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The children's leases have expired (and are counted as live for
	// MaxClockSkew longer) by the time the second recovery starts: a lease
	// it leaves is left for good.
	time.Sleep(time.Until(start.Add(3*childReconcileInterval + recoveryClockSkew)))
	return withFailover(ctx, c, func(f *failoverblob.Failover, j journal.Journal) error {
		settle(ctx, f, res, "a second recovery")
		for _, key := range sortedKeys(settled) {
			state, err := readState(ctx, f.Bucket(), key)
			switch {
			case err != nil:
				res.violation(fmt.Sprintf("%s at a second recovery: the read failed: %v", key, err))
			case state != settled[key]:
				res.violation(fmt.Sprintf("%s flipped after the recovery settled it: %s, then %s at a second recovery", key, show(settled[key]), show(state)))
			}
			checkSides(ctx, c.Mode, raw, key, settled[key], "a second recovery", res)
		}
		checkLeftovers(ctx, raw, j, known, res)
		return nil
	})
}

// openSides opens the run's two fileblob buckets.
func openSides(dir string) ([2]*blob.Bucket, error) {
	var b [2]*blob.Bucket
	for i, name := range []string{"primary", "secondary"} {
		var err error
		if b[i], err = fileblob.OpenBucket(filepath.Join(dir, name), &fileblob.Options{CreateDir: true}); err != nil {
			if i == 1 {
				b[0].Close()
			}
			return b, err
		}
	}
	return b, nil
}

// withFailover runs fn with a fresh failover bucket over the run's sides,
// both up, and its journal: the default one on the buckets, or the run's
// journal file.
func withFailover(ctx context.Context, c Config, fn func(*failoverblob.Failover, journal.Journal) error) error {
	sides, err := openSides(c.Dir)
	if err != nil {
		return err
	}
	opts := &failoverblob.Options{Mode: c.Mode, MaxClockSkew: recoveryClockSkew, CallTimeout: childCallTimeout, IdleTimeout: childIdleTimeout}
	if c.Journal == "file" {
		jf, err := openJournalFile(filepath.Join(c.Dir, "journal"))
		if err != nil {
			sides[0].Close()
			sides[1].Close()
			return err
		}
		defer jf.Close()
		opts.Journal = jf
	}
	f, err := failoverblob.New(ctx, sides[0], sides[1], opts)
	if err != nil {
		sides[0].Close()
		sides[1].Close()
		return err
	}
	err = fn(f, f.Options().Journal)
	return errors.Join(err, f.Close())
}

// openJournalFile opens the journal file, waiting a little for its lock:
// the lock is an flock, which a process forked by the parent (another
// run's child, between its fork and its exec) shares for a moment, and so
// keeps after the recovery that took it has closed the file.
func openJournalFile(path string) (*journal.File, error) {
	for try := 0; ; try++ {
		jf, err := journal.OpenFile(path)
		if !errors.Is(err, journal.ErrLocked) || try == 100 {
			return jf, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settle drains until nothing is pending. A dead child's reconcile leases
// hold their shards until they expire, so a pass may leave work; it
// retries until settleTimeout, and then the run failed to converge.
func settle(ctx context.Context, f *failoverblob.Failover, res *Result, who string) {
	deadline := time.Now().Add(settleTimeout)
	for {
		rep, err := f.Drain(ctx)
		res.Drains++
		if err == nil && rep.Remaining == 0 && rep.Leased == 0 {
			return
		}
		if time.Now().After(deadline) {
			res.violation(fmt.Sprintf("%s did not converge in %v: the last pass left %d entries (%d leased): %v", who, settleTimeout, rep.Remaining, rep.Leased, err))
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readState reads key from b as the oracle names states: a value id, or
// absent.
func readState(ctx context.Context, b *blob.Bucket, key string) (string, error) {
	r, err := b.NewReader(ctx, key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return absent, nil
	}
	if err != nil {
		return "", err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	return valueOf(data), nil
}

// checkApart counts the keys the sides hold apart once the drains have
// settled every journal entry: a kill can leave a change on one side with
// no entry (a redirected write's copy, committed alongside its entry; in
// Mirror mode, a change cut between the two sides), and the verifier
// settles them. In Redirect mode such a copy must be of a write the
// kill cut: an acknowledged write was recorded.
func checkApart(ctx context.Context, mode failoverblob.Mode, raw [2]*blob.Bucket, oracles map[string]*keyOracle, res *Result) {
	for _, key := range sortedKeys(oracles) {
		var got [2]string
		for i := range raw {
			var err error
			if got[i], err = readState(ctx, raw[i], key); err != nil {
				res.violation(fmt.Sprintf("%s after the recovery's drains: reading a side directly: %v", key, err))
				return
			}
		}
		switch {
		case mode == failoverblob.Redirect && got[1] != absent && oracles[key].acked[got[1]]:
			res.violation(fmt.Sprintf("%s after the recovery's drains: the secondary holds a copy of the acknowledged %s that no journal entry describes", key, got[1]))
		case mode == failoverblob.Redirect && got[1] != absent, mode == failoverblob.Mirror && got[0] != got[1]:
			res.Apart++
		}
	}
}

// checkSides checks what each side holds of key against state, what the
// failover bucket reads: the primary holds it, and the secondary holds it
// in Mirror mode and nothing in Redirect mode (no temporary copy left).
func checkSides(ctx context.Context, mode failoverblob.Mode, raw [2]*blob.Bucket, key, state, when string, res *Result) {
	want := [2]string{state, absent}
	if mode == failoverblob.Mirror {
		want[1] = state
	}
	for i, name := range []string{"primary", "secondary"} {
		got, err := readState(ctx, raw[i], key)
		switch {
		case err != nil:
			res.violation(fmt.Sprintf("%s at %s: reading the %s directly: %v", key, when, name, err))
		case got != want[i] && i == 1 && state == absent && mode == failoverblob.Redirect:
			res.violation(fmt.Sprintf("%s at %s: a temporary copy left on the secondary (%s)", key, when, show(got)))
		case got != want[i]:
			res.violation(fmt.Sprintf("%s at %s: the %s holds %s, the failover bucket reads %s", key, when, name, show(got), show(state)))
		}
	}
}

// checkLeftovers lists both sides whole: objects that are no key of the
// run, journal entries and reconcile leases are violations; other reserved
// objects are counted. A journal of another kind must be empty.
func checkLeftovers(ctx context.Context, raw [2]*blob.Bucket, j journal.Journal, oracles map[string]*keyOracle, res *Result) {
	for i, name := range []string{"primary", "secondary"} {
		it := raw[i].List(nil)
		for {
			o, err := it.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				res.violation(fmt.Sprintf("listing the %s: %v", name, err))
				break
			}
			switch {
			case strings.HasPrefix(o.Key, journal.BucketPrefix):
				res.violation(fmt.Sprintf("a journal entry left on the %s: %s", name, o.Key))
			case strings.HasPrefix(o.Key, failoverblob.ReservedPrefix):
				rest := strings.TrimPrefix(o.Key, failoverblob.ReservedPrefix)
				kind, _, _ := strings.Cut(rest, "/")
				res.Reserved[name+" "+failoverblob.ReservedPrefix+kind+"/"]++
				if kind == "leases" {
					// A converged bucket holds no lease: the children's
					// have expired, and a drain removes them.
					res.violation(fmt.Sprintf("a reconcile lease left on the %s after convergence: %s", name, o.Key))
				}
			case oracles[o.Key] == nil:
				res.violation(fmt.Sprintf("an object no operation wrote, on the %s: %s", name, o.Key))
			}
		}
	}
	if _, onBuckets := j.(*journal.Bucket); onBuckets {
		return
	}
	entries, err := j.List(ctx)
	switch {
	case err != nil:
		res.violation(fmt.Sprintf("listing the journal file: %v", err))
	case len(entries) > 0:
		res.violation(fmt.Sprintf("%d entries left in the journal file, the first for %q", len(entries), entries[0].Key))
	}
}
