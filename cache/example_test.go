package cache_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/cache"
	"github.com/failoverblob/failoverblob/failovertest"
)

// A failover bucket that serves copies up to ten minutes old, from a
// cache of 64 MiB in a directory, while no side that could answer is up.
func ExampleOpenDir() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "failover-cache")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	c, err := cache.OpenDir(filepath.Join(dir, "reads"), 64<<20)
	if err != nil {
		log.Fatal(err)
	}
	base := memblob.OpenBucket(nil)
	defer base.Close()
	primary, faults := failovertest.Wrap(base, nil)
	f, err := failoverblob.New(ctx, primary, memblob.OpenBucket(nil), &failoverblob.Options{
		Cache:      c,
		ServeStale: 10 * time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	b := f.Bucket()
	if err := b.WriteAll(ctx, "report.txt", []byte("all good"), nil); err != nil {
		log.Fatal(err)
	}
	if _, err := b.ReadAll(ctx, "report.txt"); err != nil { // keeps a copy
		log.Fatal(err)
	}

	faults.Outage(nil) // the primary goes down
	r, err := b.NewReader(ctx, "report.txt", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	body, err := io.ReadAll(r)
	if err != nil {
		log.Fatal(err)
	}
	var sr *failoverblob.StaleRead
	if r.As(&sr) {
		fmt.Printf("%s (a copy: the sides are unavailable: %v)\n", body, errors.Is(sr.Cause, failoverblob.ErrUnavailable))
	}
	// Output:
	// all good (a copy: the sides are unavailable: true)
}
