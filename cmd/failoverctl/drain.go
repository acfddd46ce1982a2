package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/journal"
)

func setupDrain(*flag.FlagSet) func(ctx context.Context, e *env, url string) error {
	return func(ctx context.Context, e *env, url string) error {
		// The display exists before the first repair: OnRepair is only
		// called inside Drain.
		var prog *progress
		opts := failoverblob.Options{
			Logger:   e.logger,
			OnRepair: func(r failoverblob.Repair) { prog.add(1, r.Bytes) },
		}
		return withBucket(ctx, url, opts, func(f *opened) error {
			entries, err := f.Options().Journal.List(ctx)
			if err != nil && !errors.Is(err, journal.ErrPartial) {
				return fmt.Errorf("reading the journal: %w", err)
			}
			// A partial listing is taken as far as it goes; the passes
			// report the side they could not list.
			keys, bytes := pendingWork(entries)
			fmt.Fprintf(e.stdout, "pending: %s (%s), about %s to copy\n",
				plural(keys, "key", "keys"), plural(len(entries), "journal entry", "journal entries"), formatBytes(bytes))
			prog = newProgress(e, "drain", int64(keys), bytes, true)
			return drain(ctx, e, f.Failover, prog)
		})
	}
}

// drain runs passes of f.Drain until nothing is pending, a pass settles
// nothing, or ctx is done, and prints a summary. It returns an error when
// work remains.
func drain(ctx context.Context, e *env, f *failoverblob.Failover, prog *progress) error {
	start := time.Now()
	var sum failoverblob.Report
	var lastErr error
	passes := 0
	for ctx.Err() == nil {
		rep, err := f.Drain(ctx)
		passes++
		sum.Keys += rep.Keys
		sum.Copied += rep.Copied
		sum.Deleted += rep.Deleted
		sum.Cleaned += rep.Cleaned
		sum.Bytes += rep.Bytes
		sum.Remaining, sum.Leased, lastErr = rep.Remaining, rep.Leased, err
		if rep.Remaining == 0 || rep.Keys == 0 {
			break
		}
	}
	prog.finish()

	fmt.Fprintf(e.stdout, "settled %s in %s (%s): %d copied (%s), %d deleted, %d temporary copies removed\n",
		plural(sum.Keys, "key", "keys"), roundDuration(time.Since(start)), plural(passes, "pass", "passes"),
		sum.Copied, formatBytes(sum.Bytes), sum.Deleted, sum.Cleaned)
	if sum.Remaining == 0 && lastErr == nil {
		fmt.Fprintln(e.stdout, "nothing pending")
		return nil
	}
	st := f.Status()
	if st.Pending > 0 {
		fmt.Fprintf(e.stdout, "still pending: %s, the oldest recorded %s ago\n",
			plural(st.Pending, "journal entry", "journal entries"), age(time.Now(), st.OldestPending))
	}
	if sum.Leased > 0 {
		fmt.Fprintf(e.stdout, "left to another instance, which holds their reconcile lease: %s\n", plural(sum.Leased, "repair", "repairs"))
	}
	if lastErr != nil {
		fmt.Fprintln(e.stderr, "the last pass failed:")
		printErrors(e.stderr, lastErr)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted with %s pending", plural(st.Pending, "journal entry", "journal entries"))
	}
	if st.Pending == 0 {
		return errors.New("the last pass failed")
	}
	return fmt.Errorf("%s still pending", plural(st.Pending, "journal entry", "journal entries"))
}

// pendingWork counts the repairs entries describe (a key on a side) and
// estimates the bytes they copy: for each, the size its newest entry
// records when that is a put.
func pendingWork(entries []journal.Entry) (keys int, bytes int64) {
	type repair struct {
		key     string
		missing journal.Side
	}
	newest := map[repair]journal.Entry{}
	for _, e := range entries {
		r := repair{e.Key, e.Missing}
		if n, ok := newest[r]; !ok || e.Recorded.After(n.Recorded) {
			newest[r] = e
		}
	}
	for _, e := range newest {
		if e.Op == journal.Put {
			bytes += e.ObjectSize()
		}
	}
	return len(newest), bytes
}
