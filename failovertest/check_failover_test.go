package failovertest_test

import (
	"context"
	"errors"
	"testing"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// How a user proves their own failover configuration: their options, their
// journal, a short check in their own CI.
func TestCheckFailoverOnAUserConfiguration(t *testing.T) {
	report := failovertest.CheckFailover(t, func(ctx context.Context, primary, secondary *blob.Bucket) (failovertest.Target, error) {
		f, err := failoverblob.New(ctx, primary, secondary, &failoverblob.Options{
			Mode:    failoverblob.Mirror,
			Journal: journal.NewMemory(), // a durable journal in production
		})
		if err != nil {
			return failovertest.Target{}, err
		}
		return failovertest.Target{
			Bucket: f.Bucket(),
			Reconcile: func(ctx context.Context) (int, error) {
				r, err := f.Drain(ctx)
				return r.Remaining, err
			},
			Mirror: true,
		}, nil
	}, &failovertest.CheckOptions{
		Unavailable: func(err error) bool { return errors.Is(err, failoverblob.ErrUnavailable) },
	})
	t.Logf("\n%s", report)
	if report.WritesAcked == 0 || report.KeysLinearizable == 0 {
		t.Errorf("the check checked nothing: %+v", report)
	}
}
