package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/failoverblob/failoverblob"
)

func setupVerify(fs *flag.FlagSet) func(ctx context.Context, e *env, url string) error {
	var o failoverblob.VerifyOptions
	fs.BoolVar(&o.Repair, "repair", false, "repair the keys that differ, by version order as the reconciler does (default: only report them)")
	fs.StringVar(&o.Prefix, "prefix", "", "verify only the keys under this prefix")
	fs.StringVar(&o.After, "after", "", "start after this key: where an earlier run stopped")
	fs.IntVar(&o.MaxKeys, "max-keys", 0, "stop after this many keys (0: no bound)")
	fs.IntVar(&o.KeysPerSecond, "keys-per-second", 0, "pace of the scan (0: no bound)")
	fs.DurationVar(&o.Settle, "settle", 0, "with -repair, how long a difference must last before it is repaired: another instance's change may be in flight between the sides (0: three times the call timeout; negative: at once, for a bucket no instance is changing)")
	return func(ctx context.Context, e *env, url string) error {
		if o.MaxKeys < 0 || o.KeysPerSecond < 0 {
			return usagef("-max-keys and -keys-per-second must not be negative")
		}
		return withBucket(ctx, url, failoverblob.Options{Logger: e.logger}, func(f *opened) error {
			return verify(ctx, e, f.Failover, o)
		})
	}
}

// verifyChunk is how many keys one call of Verify scans: the progress
// display moves once a call, and each call reads the journal afresh (a
// LIST per side while nothing is pending), against the five pages of
// 1,000 keys a side that the scan itself lists. A variable for tests.
var verifyChunk = 5000

// verify runs f.Verify over the bucket a chunk of keys at a time, resuming
// each chunk where the last stopped, shows its progress and prints a
// summary. It returns an error when keys differ unrepaired or the scan
// failed.
func verify(ctx context.Context, e *env, f *failoverblob.Failover, o failoverblob.VerifyOptions) error {
	start := time.Now()
	prog := newProgress(e, "verify", -1, -1, o.Repair)
	var sum failoverblob.VerifyReport
	var errs []error
	chunk := verifyChunk
	if o.KeysPerSecond > 0 {
		chunk = min(max(5*o.KeysPerSecond, 1), verifyChunk) // a display update about every 5 s
	}
	cursor, limited := o.After, false
	for {
		opts := o
		opts.After, opts.MaxKeys = cursor, chunk
		if o.MaxKeys > 0 {
			if left := o.MaxKeys - sum.Scanned; left < chunk {
				opts.MaxKeys = left
			}
		}
		rep, err := f.Verify(ctx, &opts)
		sum.Scanned += rep.Scanned
		sum.Pending += rep.Pending
		sum.Differing += rep.Differing
		sum.Repaired += rep.Repaired
		sum.Bytes += rep.Bytes
		prog.set(int64(sum.Scanned), sum.Bytes, fmt.Sprintf("%d differing, %d repaired", sum.Differing, sum.Repaired))
		if rep.Cursor != "" {
			cursor = rep.Cursor
		}
		if err != nil {
			// A failed listing or the end of ctx stops the scan; an
			// error for one key does not, but cannot be told apart.
			errs = append(errs, err)
		}
		switch {
		case rep.Cursor == "" && err == nil:
			cursor = "" // reached the end
		case err == nil && rep.Scanned == opts.MaxKeys && (o.MaxKeys == 0 || sum.Scanned < o.MaxKeys):
			continue
		case err == nil:
			limited = true
		}
		break
	}
	prog.finish()

	fmt.Fprintf(e.stdout, "scanned %s in %s: %s", plural(sum.Scanned, "key", "keys"), roundDuration(time.Since(start)), plural(sum.Differing, "differs", "differ"))
	switch {
	case sum.Differing == 0:
	case o.Repair:
		fmt.Fprintf(e.stdout, " (%d repaired, %s copied)", sum.Repaired, formatBytes(sum.Bytes))
	default:
		fmt.Fprintf(e.stdout, " (not repaired: -repair repairs them)")
	}
	if sum.Pending > 0 {
		fmt.Fprintf(e.stdout, "; %s skipped, with pending work that drain settles", plural(sum.Pending, "key", "keys"))
	}
	fmt.Fprintln(e.stdout)
	if (limited || len(errs) > 0) && cursor != "" {
		fmt.Fprintf(e.stdout, "stopped after key %s: resume with -after %s\n", printableKey(cursor), shellQuote(cursor))
	}
	var failures []string
	if len(errs) > 0 {
		fmt.Fprintln(e.stderr, "the scan met errors:")
		printErrors(e.stderr, errors.Join(errs...))
		failures = append(failures, "the scan met errors")
	}
	if n := sum.Differing - sum.Repaired; n > 0 {
		failures = append(failures, plural(n, "key differs", "keys differ")+" unrepaired")
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}
