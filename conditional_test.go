package failoverblob_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/driverx"
	"github.com/failoverblob/failoverblob/failovertest"
)

// conditionalSide is a memblob side with a conditional write of the kind
// S3 and GCS offer: the write fails unless the object is still the one the
// reconciler examined. before, if set, runs just before the condition is
// checked, standing in for another process.
type conditionalSide struct {
	driver.Bucket
	base   *blob.Bucket
	before func()
	priors []*driver.Attributes
}

var errChanged = errors.New("precondition failed: the object changed")

// As offers the side's conditional writes, as the providers' buckets do.
func (c *conditionalSide) As(i any) bool {
	if p, ok := i.(*driverx.ConditionalWriter); ok {
		*p = c
		return true
	}
	return c.Bucket.As(i)
}

func (c *conditionalSide) WriteIf(prior *driver.Attributes) func(func(any) bool) error {
	c.priors = append(c.priors, prior)
	if c.before != nil {
		c.before()
	}
	// memblob holds its lock while it runs BeforeWrite, so the condition is
	// checked here; the hook reports the outcome.
	var failed error
	now, err := c.base.Attributes(context.Background(), "k")
	switch {
	case gcerrors.Code(err) == gcerrors.NotFound:
		if prior != nil {
			failed = errChanged
		}
	case err != nil:
		failed = err
	case prior == nil || now.ETag != prior.ETag:
		failed = errChanged
	}
	return func(func(any) bool) error { return failed }
}

func TestReconcileCopyIsConditionalOnWhatItExamined(t *testing.T) {
	ctx := context.Background()
	pbase := memblob.OpenBucket(nil)
	pdrv, pin := failovertest.NewDriver(pbase, nil)
	side := &conditionalSide{Bucket: pdrv, base: pbase}
	f, err := failoverblob.New(ctx, blob.NewBucket(side), memblob.OpenBucket(nil), nil)
	require.NoError(t, err)
	b := f.Bucket()
	defer b.Close()

	// The primary misses a write.
	pin.Outage(nil)
	require.NoError(t, b.WriteAll(ctx, "k", []byte("from this process"), nil))
	pin.Heal()

	// Another process writes the key on the primary after the reconciler
	// looked (it saw nothing) and before its copy.
	side.before = func() {
		side.before = nil
		require.NoError(t, pbase.WriteAll(ctx, "k", []byte("newer, from another process"), nil))
	}
	_, err = f.Drain(ctx)
	require.Error(t, err, "the refused copy is reported")
	require.Len(t, side.priors, 1)
	require.Nil(t, side.priors[0], "the reconciler saw no object on the primary and said so")
	got, err := pbase.ReadAll(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "newer, from another process", string(got), "the newer object was not overwritten")
	require.Equal(t, 1, f.Status().Pending, "the entry stays for the next pass to decide")
}

// deleteRecorder is a side that offers a conditional delete through As and
// records what each delete was conditioned on.
type deleteRecorder struct {
	driver.Bucket
	priors []*driver.Attributes
}

func (d *deleteRecorder) As(i any) bool {
	if p, ok := i.(*driverx.ConditionalDeleter); ok {
		*p = d
		return true
	}
	return d.Bucket.As(i)
}

func (d *deleteRecorder) DeleteIf(prior *driver.Attributes) func(func(any) bool) error {
	d.priors = append(d.priors, prior)
	return func(func(any) bool) error { return nil }
}

// The reconciler's removal of a temporary copy is conditional on the copy
// it examined, where the side offers a conditional delete through As.
func TestReconcileDeleteIsConditionalOnWhatItExamined(t *testing.T) {
	ctx := context.Background()
	pdrv, pin := failovertest.NewDriver(memblob.OpenBucket(nil), nil)
	sdrv, _ := failovertest.NewDriver(memblob.OpenBucket(nil), nil)
	sec := &deleteRecorder{Bucket: sdrv}
	f, err := failoverblob.New(ctx, blob.NewBucket(pdrv), blob.NewBucket(sec), nil)
	require.NoError(t, err)
	b := f.Bucket()
	defer b.Close()

	pin.Outage(nil)
	require.NoError(t, b.WriteAll(ctx, "k", []byte("redirected"), nil))
	pin.Heal()
	_, err = f.Drain(ctx)
	require.NoError(t, err)
	require.Len(t, sec.priors, 1, "one temporary copy removed")
	require.NotNil(t, sec.priors[0], "conditioned on the copy examined")
}
