package chaos_test

import (
	"context"
	"errors"
	"testing"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest/chaos"
)

// How a user proves their own failover configuration: their options, their
// journal, a short check in their own CI.
func TestCheckOnAUserConfiguration(t *testing.T) {
	report := chaos.Check(t, func(ctx context.Context, env chaos.Env) (chaos.Target, error) {
		f, err := failoverblob.New(ctx, env.Primary, env.Secondary, &failoverblob.Options{
			Mode:     failoverblob.Mirror,
			Journal:  env.Journal, // the check's stand-in for a durable journal
			WriterID: env.WriterID,
			Now:      env.Now,
		})
		if err != nil {
			return chaos.Target{}, err
		}
		return chaos.Target{
			Bucket: f.Bucket(),
			Reconcile: func(ctx context.Context) (int, error) {
				r, err := f.Drain(ctx)
				return r.Remaining, err
			},
			Mirror: true,
		}, nil
	}, &chaos.Options{
		Unavailable: func(err error) bool { return errors.Is(err, failoverblob.ErrUnavailable) },
	})
	t.Logf("\n%s", report)
	if report.WritesAcked == 0 || report.KeysLinearizable == 0 {
		t.Errorf("the check checked nothing: %+v", report)
	}
}
