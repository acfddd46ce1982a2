package chaos

import (
	"context"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/driverx"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
	"github.com/failoverblob/failoverblob/journal"
)

// A recorder with conditional set applies a conditional write or delete
// only while the object is the one its condition names, and answers
// FailedPrecondition otherwise, as S3 and GCS do; without it, it offers
// no conditions.
func TestRecorderConditionalWritesAndDeletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		newSide := func(conditional bool) *blob.Bucket {
			raw := memblob.OpenBucket(nil)
			t.Cleanup(func() { _ = raw.Close() })
			rec := &recorder{base: raw, side: journal.Primary, log: newCommitLog("k"), lat: &latency{rng: rand.New(rand.NewPCG(1, 1))}, conditional: conditional}
			rec.log.now = func() int64 { return time.Now().UnixNano() }
			return blob.NewBucket(rec)
		}
		b := newSide(true)
		var cw driverx.ConditionalWriter
		var cd driverx.ConditionalDeleter
		if !b.As(&cw) || !b.As(&cd) {
			t.Fatal("a conditional recorder offers no ConditionalWriter or ConditionalDeleter")
		}
		write := func(value string, prior *driver.Attributes) error {
			return b.WriteAll(ctx, "k1", []byte(value), &blob.WriterOptions{
				Metadata:    map[string]string{valueMetadataKey: value},
				BeforeWrite: cw.WriteIf(prior),
			})
		}
		attrs := func() *driver.Attributes {
			a, err := b.Attributes(ctx, "k1")
			if err != nil {
				t.Fatal(err)
			}
			return bucketconv.Attributes(a)
		}
		wantCode := func(what string, err error, want gcerrors.ErrorCode) {
			t.Helper()
			if want == gcerrors.OK && err != nil || want != gcerrors.OK && gcerrors.Code(err) != want {
				t.Errorf("%s: %v; want code %v", what, err, want)
			}
		}

		wantCode("a write on condition the key is absent, while it is", write("1", nil), gcerrors.OK)
		first := attrs()
		wantCode("a write on condition the key is absent, while it is not", write("2", nil), gcerrors.FailedPrecondition)
		wantCode("a write on condition of the object there", write("3", first), gcerrors.OK)
		wantCode("a write on condition of an object replaced", write("4", first), gcerrors.FailedPrecondition)
		if got := valueOf(attrs().Metadata); got != 3 {
			t.Errorf("value after the refused writes: %d; want 3", got)
		}
		wantCode("a delete on condition of an object replaced", b.DeleteWithOptions(ctx, "k1", &blob.DeleteOptions{BeforeDelete: cd.DeleteIf(first)}), gcerrors.FailedPrecondition)
		wantCode("a delete on condition of the object there", b.DeleteWithOptions(ctx, "k1", &blob.DeleteOptions{BeforeDelete: cd.DeleteIf(attrs())}), gcerrors.OK)
		if ok, _ := b.Exists(ctx, "k1"); ok {
			t.Error("the key exists after the conditional delete")
		}

		if newSide(false).As(&cw) {
			t.Error("a recorder without conditional offers a ConditionalWriter")
		}
	})
}
