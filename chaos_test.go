package failoverblob_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

var (
	chaosSeeds   = flag.Int("chaos.seeds", 200, "TestChaos: how many seeds to run (seeds 1 to N)")
	chaosOps     = flag.Int("chaos.ops", 2000, "TestChaos: operations per seed")
	chaosSeed    = flag.Int64("chaos.seed", 0, "TestChaos: run only this seed (a replay)")
	chaosMaxSize = flag.Int64("chaos.maxsize", 6<<20, "TestChaos: largest object written, in bytes")
)

// chaosConfig is one failover configuration the chaos test runs. A seed
// picks its configuration (seed modulo the number of configurations), so a
// seed alone names everything a run does.
type chaosConfig struct {
	name string
	opts func() failoverblob.Options
}

// tripFast trips a breaker on the first outage and keeps it open briefly:
// the breaker flaps, which is the hard case for the journal and the
// reconciler.
func tripFast() *circuit.Settings {
	return &circuit.Settings{ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 }, Timeout: 5 * time.Second}
}

var chaosConfigs = []chaosConfig{
	{"redirect", func() failoverblob.Options { return failoverblob.Options{} }},
	{"mirror-either", func() failoverblob.Options { return failoverblob.Options{Mode: failoverblob.Mirror} }},
	{"mirror-both", func() failoverblob.Options {
		return failoverblob.Options{Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth}
	}},
	{"redirect-flapping", func() failoverblob.Options {
		return failoverblob.Options{
			Breaker: tripFast(), CallTimeout: 2 * time.Second, FirstByteTimeout: 2 * time.Second, IdleTimeout: 3 * time.Second,
			SpoolMemory: 64 << 10, BestEffortList: true, ReconcileConcurrency: 2,
		}
	}},
	{"mirror-either-flapping", func() failoverblob.Options {
		return failoverblob.Options{
			Mode: failoverblob.Mirror, Breaker: tripFast(),
			CallTimeout: 2 * time.Second, FirstByteTimeout: 2 * time.Second, IdleTimeout: 3 * time.Second, ReconcileConcurrency: 1,
		}
	}},
	{"mirror-both-flapping", func() failoverblob.Options {
		return failoverblob.Options{
			Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth, Breaker: tripFast(),
			CallTimeout: 2 * time.Second, FirstByteTimeout: 2 * time.Second, IdleTimeout: 3 * time.Second,
		}
	}},
}

func configOf(seed int64) int { return int(seed % int64(len(chaosConfigs))) }

// openChaos returns CheckFailover's open function for a configuration: a
// failover bucket over the two sides with a fresh in-memory journal.
func openChaos(cfg chaosConfig) func(ctx context.Context, primary, secondary *blob.Bucket) (failovertest.Target, error) {
	return func(ctx context.Context, primary, secondary *blob.Bucket) (failovertest.Target, error) {
		opts := cfg.opts()
		opts.Journal = journal.NewMemory()
		f, err := failoverblob.New(ctx, primary, secondary, &opts)
		if err != nil {
			return failovertest.Target{}, err
		}
		return failovertest.Target{
			Bucket: f.Bucket(),
			Reconcile: func(ctx context.Context) (int, error) {
				r, err := f.Drain(ctx)
				return r.Remaining, err
			},
			Mirror: opts.Mode == failoverblob.Mirror,
		}, nil
	}
}

// TestChaos runs concurrent clients against failover buckets while a seeded
// schedule takes the sides down and heals them, and checks the history
// against an oracle: nothing acknowledged lost, no delete undone, no newer
// object replaced by an older one, sides converged, per-key histories
// linearizable. By default it runs seeds 1 to 200 of 2,000 operations each
// (-short: 12 seeds of 500); -chaos.seeds runs more, -chaos.seed replays
// one.
func TestChaos(t *testing.T) {
	seeds, ops := *chaosSeeds, *chaosOps
	if testing.Short() && *chaosSeed == 0 {
		seeds, ops = min(seeds, 12), min(ops, 500)
	}
	bySide := make([][]int64, len(chaosConfigs))
	if *chaosSeed != 0 {
		bySide[configOf(*chaosSeed)] = []int64{*chaosSeed}
	} else {
		for s := int64(1); s <= int64(seeds); s++ {
			bySide[configOf(s)] = append(bySide[configOf(s)], s)
		}
	}
	var total failovertest.CheckReport
	for i, cfg := range chaosConfigs {
		if len(bySide[i]) == 0 {
			continue
		}
		t.Run(cfg.name, func(t *testing.T) {
			rep := failovertest.CheckFailover(t, openChaos(cfg), &failovertest.CheckOptions{
				Seeds:        bySide[i],
				Ops:          ops,
				Clients:      6,
				Keys:         10,
				MaxSize:      *chaosMaxSize,
				PartialLists: cfg.opts().BestEffortList,
				Unavailable:  func(err error) bool { return errors.Is(err, failoverblob.ErrUnavailable) },
				Replay: func(seed int64) string {
					return fmt.Sprintf("go test -race -run '^TestChaos$' -chaos.seed=%d -chaos.ops=%d -chaos.maxsize=%d .", seed, ops, *chaosMaxSize)
				},
			})
			t.Logf("%s:\n%s", cfg.name, rep)
			total.Add(rep)
		})
	}
	t.Logf("all configurations:\n%s", total)
}
