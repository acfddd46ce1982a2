package journal_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob/journal"
)

// A durable journal in a local file, for a single instance: what was
// appended is there after a restart (OpenFile again), until it is
// acknowledged.
func ExampleOpenFile() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "journal-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "failover.journal")

	j, err := journal.OpenFile(path)
	if err != nil {
		log.Fatal(err)
	}
	id, err := j.Append(ctx, journal.Entry{Key: "invoices/1001.pdf", Op: journal.Put, Version: "v1", Missing: journal.Primary})
	if err != nil {
		log.Fatal(err)
	}
	if err := j.Close(); err != nil { // the process stops
		log.Fatal(err)
	}

	j, err = journal.OpenFile(path) // and starts again
	if err != nil {
		log.Fatal(err)
	}
	defer j.Close()
	entries, err := j.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Printf("pending: %s of %s, missing from the %s\n", e.Op, e.Key, e.Missing)
	}
	if err := j.Ack(ctx, id); err != nil {
		log.Fatal(err)
	}
	entries, _ = j.List(ctx)
	fmt.Println("after Ack:", len(entries))
	// Output:
	// pending: put of invoices/1001.pdf, missing from the primary
	// after Ack: 0
}

// The journal a failover bucket keeps on its two sides by default: an
// entry lives on the side holding the data it describes (the secondary, for
// a write redirected while the primary is down), under BucketPrefix.
func ExampleNewBucket() {
	ctx := context.Background()
	primary, secondary := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	defer primary.Close()
	defer secondary.Close()

	j := journal.NewBucket(primary, secondary, nil)
	if _, err := j.Append(ctx, journal.Entry{Key: "k", Op: journal.Put, Version: "v1", Missing: journal.Primary}); err != nil {
		log.Fatal(err)
	}
	objs, _, err := secondary.ListPage(ctx, blob.FirstPageToken, 10, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("objects on the secondary:", len(objs))
	entries, err := j.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("pending: %s of %s, missing from the %s\n", entries[0].Op, entries[0].Key, entries[0].Missing)
	// Output:
	// objects on the secondary: 1
	// pending: put of k, missing from the primary
}
