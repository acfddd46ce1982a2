package failoverblob_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
)

// A version from a clock that ran fast is ordered by when its object was
// stored. The reconciler's copy of such an object onto the primary was
// stored when the copy was made, later than the object itself, and the
// copy was then taken for newer than a write made just after it by a
// clock a little behind (within MaxClockSkew): that write, redirected, was
// dropped as older when its turn came, and the copy served (seed 2311 of
// redirect-writers-fast-clock). The copy now keeps when the object was
// first stored.
func TestReconcilerCopyOfAFastVersionKeepsWhenItWasStored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 0, failoverblob.Options{})
		fast := fl.start(failoverblob.Options{WriterID: "fast", Now: func() time.Time { return time.Now().Add(time.Hour) }, ProbeInterval: -1})
		w := fl.start(failoverblob.Options{WriterID: "behind", Now: func() time.Time { return time.Now().Add(-time.Second) }, ProbeInterval: -1})
		ctx := fl.ctx

		fast.faults[0].Outage(nil)
		require.NoError(t, fast.f.Bucket().WriteAll(ctx, "k", []byte("old"), nil), "a redirected write by a writer an hour fast")
		time.Sleep(30 * time.Second)
		_, err := w.f.Drain(ctx)
		require.NoError(t, err)
		require.Equal(t, "old", fl.content(0, "k"), "the primary after the reconciler moved the write")
		require.Equal(t, "<absent>", fl.content(1, "k"), "the secondary after the reconciler moved the write")

		time.Sleep(500 * time.Millisecond)
		w.faults[0].Outage(nil)
		require.NoError(t, w.f.Bucket().WriteAll(ctx, "k", []byte("new"), nil), "a redirected write half a second after the move, by a clock a second behind")
		fl.heal()
		_, err = w.f.Drain(ctx)
		require.NoError(t, err)
		assert.Equal(t, "new", fl.content(0, "k"), "the primary after the next pass")
		assert.Equal(t, "new", w.read(ctx, "k"), "a read")
	})
}

// The time a copy keeps is hidden from Attributes, as the version is.
func TestAttributesHideTheStoredTimeOfACopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fl := newFleet(t, 0, failoverblob.Options{})
		fast := fl.start(failoverblob.Options{WriterID: "fast", Now: func() time.Time { return time.Now().Add(time.Hour) }, ProbeInterval: -1})
		r := fl.start(failoverblob.Options{ProbeInterval: -1})
		ctx := fl.ctx
		fast.faults[0].Outage(nil)
		require.NoError(t, fast.f.Bucket().WriteAll(ctx, "k", []byte("old"), &blob.WriterOptions{Metadata: map[string]string{"mine": "1"}}))
		time.Sleep(30 * time.Second)
		_, err := r.f.Drain(ctx)
		require.NoError(t, err)
		raw, err := fl.raw[0].Attributes(ctx, "k")
		require.NoError(t, err)
		require.Contains(t, raw.Metadata, failoverblob.StoredMetadataKey, "the copy's metadata on the primary")
		a, err := r.f.Bucket().Attributes(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"mine": "1"}, a.Metadata, "Attributes through the failover bucket")
	})
}
