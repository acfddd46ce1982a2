package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
)

func setupStatus(fs *flag.FlagSet) func(ctx context.Context, e *env, url string) error {
	asJSON := fs.Bool("json", false, "print the status as one JSON object")
	return func(ctx context.Context, e *env, url string) error {
		return withBucket(ctx, url, failoverblob.Options{Logger: e.logger}, func(f *opened) error {
			st := status(ctx, f)
			var err error
			if *asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				err = enc.Encode(st)
			} else {
				st.print(e.stdout)
			}
			if err != nil {
				return err
			}
			if !st.Probe.Primary.Reachable || !st.Probe.Secondary.Reachable {
				return errors.New("a side did not answer")
			}
			return nil
		})
	}
}

// statusReport is what status prints: the bucket's Status, and how each
// side answered a probe.
//
// A bucket just opened has fresh breakers: its Status shows what this
// process has seen, which is little. Opening it read the journal (so
// Pending and OldestPending count the work every instance recorded, on the
// sides that could be listed), and the probe asks each side once, directly,
// whether it answers now.
type statusReport struct {
	failoverblob.Status
	// OldestPendingAge is the live recovery-point figure, in seconds:
	// how long the oldest pending change has existed on one side only.
	OldestPendingAge float64 `json:"oldest_pending_age_seconds,omitempty"`
	Probe            struct {
		Primary   probeResult `json:"primary"`
		Secondary probeResult `json:"secondary"`
	} `json:"probe"`
	now time.Time
}

// probeResult is how a side answered one listing of the reserved prefix.
type probeResult struct {
	Reachable bool    `json:"reachable"`
	Error     string  `json:"error,omitempty"`
	Seconds   float64 `json:"seconds"`
}

func status(ctx context.Context, f *opened) statusReport {
	var r statusReport
	var wg sync.WaitGroup
	timeout := f.Options().CallTimeout
	wg.Go(func() { r.Probe.Primary = probe(ctx, f.sides[0], timeout) })
	wg.Go(func() { r.Probe.Secondary = probe(ctx, f.sides[1], timeout) })
	wg.Wait()
	r.Status = f.Status()
	r.now = time.Now()
	if !r.OldestPending.IsZero() {
		r.OldestPendingAge = r.now.Sub(r.OldestPending).Seconds()
	}
	return r
}

// probe lists one object of b's reserved prefix, where the journal lives:
// a call every side serves, which reads nothing of the caller's data.
func probe(ctx context.Context, b *blob.Bucket, timeout time.Duration) probeResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	_, _, err := b.ListPage(ctx, blob.FirstPageToken, 1, &blob.ListOptions{Prefix: failoverblob.ReservedPrefix})
	r := probeResult{Reachable: err == nil, Seconds: time.Since(start).Seconds()}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

func (r statusReport) print(w io.Writer) {
	fmt.Fprintf(w, "mode:       %s\n", r.Mode)
	printProbe(w, "primary:   ", r.Probe.Primary)
	printProbe(w, "secondary: ", r.Probe.Secondary)
	switch {
	case r.Pending == 0:
		fmt.Fprintf(w, "pending:    nothing\n")
	default:
		fmt.Fprintf(w, "pending:    %s, the oldest recorded %s (%s ago)\n",
			plural(r.Pending, "journal entry", "journal entries"), r.OldestPending.Local().Format(time.RFC3339), age(r.now, r.OldestPending))
	}
	if !r.Probe.Primary.Reachable || !r.Probe.Secondary.Reachable {
		fmt.Fprintf(w, "            (not counting entries kept on a side that did not answer)\n")
	}
	c := r.Clock
	if c.FastVersions == 0 {
		fmt.Fprintf(w, "clock:      no versions from fast clocks (max skew %s)\n", c.MaxSkew)
	} else {
		fmt.Fprintf(w, "clock:      %s from clocks ahead by more than %s; the last %s, key %s on the %s at %s\n",
			plural(c.FastVersions, "version", "versions"), c.MaxSkew, c.LastFastVersion, printableKey(c.LastFastKey), c.LastFastSide, c.LastFastAt.Local().Format(time.RFC3339))
	}
	// A new process's breakers have seen only its own calls; the service's
	// are on its StatusHandler.
	fmt.Fprintf(w, "breakers:   primary %s, secondary %s (this process's own)\n", r.Primary.State, r.Secondary.State)
	for _, s := range []failoverblob.SideStatus{r.Primary, r.Secondary} {
		if s.LastError != "" {
			fmt.Fprintf(w, "            the %s's last error, at %s: %s\n", s.Name, s.LastErrorAt.Local().Format(time.RFC3339), s.LastError)
		}
	}
}

func printProbe(w io.Writer, label string, p probeResult) {
	took := roundDuration(time.Duration(p.Seconds * float64(time.Second)))
	if p.Reachable {
		fmt.Fprintf(w, "%s answers (%s)\n", label, took)
		return
	}
	fmt.Fprintf(w, "%s DOES NOT ANSWER (after %s): %s\n", label, took, p.Error)
}
