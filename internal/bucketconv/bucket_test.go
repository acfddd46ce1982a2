package bucketconv_test

import (
	"context"
	"errors"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob/internal/bucketconv"
)

// A write the bucket below refuses when it opens fails cleanly through the
// bucket in front: the driver returns no writer, not a nil one. Without a
// ContentType the portable layer opens the driver's writer late, once it
// has the 512 bytes that content sniffing reads, and would then close what
// it got.
func TestBucketWriterRefusedAtOpen(t *testing.T) {
	ctx := context.Background()
	below := memblob.OpenBucket(nil)
	_ = below.Close() // every call now fails, NewWriter at once
	front := blob.NewBucket(bucketconv.Bucket(below))
	err := front.WriteAll(ctx, "k", make([]byte, 1000), nil)
	if err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("writing through a closed bucket: %v, want its error", err)
	}
}
