package failovertest_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/failovertest"
)

// A bucket goes down and comes back.
func Example() {
	ctx := context.Background()
	bucket, in := failovertest.Wrap(memblob.OpenBucket(nil), nil)
	defer bucket.Close()

	in.Outage(nil)
	err := bucket.WriteAll(ctx, "greeting", []byte("hello"), nil)
	fmt.Println("during the outage:", errors.Is(err, failovertest.ErrOutage), errors.Is(err, syscall.ECONNREFUSED), gcerrors.Code(err))

	in.Heal()
	err = bucket.WriteAll(ctx, "greeting", []byte("hello"), nil)
	fmt.Println("after Heal:", err)
	fmt.Println("write calls:", in.Calls(failovertest.OpWrite), "failed:", in.Fired(failovertest.OpWrite))
	// Output:
	// during the outage: true true Unknown
	// after Heal: <nil>
	// write calls: 2 failed: 1
}

// A write fails part-way through its stream and commits nothing.
func ExampleInjector_Set() {
	ctx := context.Background()
	base := memblob.OpenBucket(nil)
	bucket, in := failovertest.Wrap(base, nil)
	in.Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 1000, Times: 1})

	err := bucket.WriteAll(ctx, "video", make([]byte, 1<<20), &blob.WriterOptions{ContentType: "video/mp4"})
	fmt.Println("write:", errors.Is(err, failovertest.ErrOutage))
	exists, _ := base.Exists(ctx, "video")
	fmt.Println("committed:", exists)
	// Output:
	// write: true
	// committed: false
}

// The fault-injecting driver under another gocloud driver.
func ExampleNewDriver() {
	ctx := context.Background()
	base := memblob.OpenBucket(nil)
	drv, in := failovertest.NewDriver(base, nil)
	tenant := blob.NewBucket(driver.NewPrefixedBucket(drv, "tenant-a/"))
	defer tenant.Close()

	in.Set(failovertest.OpDelete, failovertest.Fault{Applied: true})
	_ = tenant.WriteAll(ctx, "report.csv", []byte("a,b\n"), nil)
	err := tenant.Delete(ctx, "report.csv")
	exists, _ := base.Exists(ctx, "tenant-a/report.csv")
	fmt.Println("delete reported an error:", err != nil, "- object still in base:", exists)
	// Output:
	// delete reported an error: true - object still in base: false
}
