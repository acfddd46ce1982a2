package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/journal"
)

func setupJournal(fs *flag.FlagSet) func(ctx context.Context, e *env, url string) error {
	asJSON := fs.Bool("json", false, "print the entries as a JSON array")
	return func(ctx context.Context, e *env, url string) error {
		return withBucket(ctx, url, failoverblob.Options{Logger: e.logger}, func(f *opened) error {
			entries, listErr := f.Options().Journal.List(ctx)
			if listErr != nil && !errors.Is(listErr, journal.ErrPartial) {
				return fmt.Errorf("reading the journal: %w", listErr)
			}
			sort.SliceStable(entries, func(i, j int) bool { return entries[i].Recorded.Before(entries[j].Recorded) })
			now := time.Now()
			var err error
			if *asJSON {
				err = printEntriesJSON(e.stdout, entries, now)
			} else {
				printEntries(e.stdout, entries, now)
			}
			if err != nil {
				return err
			}
			if listErr != nil {
				// Entries are kept on the side holding the data; those on a
				// side that cannot be listed are missing above.
				return fmt.Errorf("the list is incomplete: %w", listErr)
			}
			return nil
		})
	}
}

// entryJSON is how journal -json prints an entry.
type entryJSON struct {
	ID         string    `json:"id"`
	Key        string    `json:"key"`
	Op         string    `json:"op"`
	Missing    string    `json:"missing"`
	Version    string    `json:"version"`
	Size       int64     `json:"size"`
	Recorded   time.Time `json:"recorded"`
	AgeSeconds float64   `json:"age_seconds"`
}

func printEntriesJSON(w io.Writer, entries []journal.Entry, now time.Time) error {
	out := make([]entryJSON, len(entries))
	for i, e := range entries {
		out[i] = entryJSON{
			ID: e.ID, Key: e.Key, Op: e.Op.String(), Missing: e.Missing.String(),
			Version: e.Version, Size: e.ObjectSize(), Recorded: e.Recorded,
			AgeSeconds: now.Sub(e.Recorded).Seconds(),
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// printEntries prints a table of entries, oldest first, and a count.
func printEntries(w io.Writer, entries []journal.Entry, now time.Time) {
	if len(entries) == 0 {
		fmt.Fprintln(w, "no pending entries")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGE\tOP\tMISSING ON\tSIZE\tKEY")
	for _, e := range entries {
		size := "-"
		if e.Op == journal.Put {
			size = formatBytes(e.ObjectSize())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", age(now, e.Recorded), e.Op, e.Missing, size, printableKey(e.Key))
	}
	_ = tw.Flush()
	keys, bytes := pendingWork(entries)
	fmt.Fprintf(w, "%d entries: %d keys to repair, about %s to copy\n", len(entries), keys, formatBytes(bytes))
}
