package failoverblob_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest/chaos"
)

var (
	chaosSeeds   = flag.Int("chaos.seeds", 200, "TestChaos: how many seeds to run (seeds 1 to N)")
	chaosOps     = flag.Int("chaos.ops", 2000, "TestChaos and TestChaosFleet: operations per seed")
	chaosSeed    = flag.Int64("chaos.seed", 0, "TestChaos and TestChaosFleet: run only this seed (a replay)")
	chaosMaxSize = flag.Int64("chaos.maxsize", 6<<20, "TestChaos and TestChaosFleet: largest object written, in bytes")
	chaosExt     = flag.Bool("chaos.extended", false, "TestChaos: run the extended configurations (restarts and crashes, several writers, a fast clock, refused keys, repeated deletes, the journal on the sides, strict reads) instead of the basic ones")

	chaosFleetSeeds = flag.Int("chaos.fleet.seeds", 0, "TestChaosFleet: how many seeds to run (seeds 1 to N); 0 skips it")
)

// chaosConfig is one failover configuration the chaos test runs, and the
// fleet it runs as: writers, restarts, refused keys. A seed picks its
// configuration (seed modulo the number of configurations), so a seed alone
// names everything a run does.
type chaosConfig struct {
	name    string
	opts    func() failoverblob.Options
	journal journalKind
	fleet   func(o *chaos.Options)
	// extended configurations run the failover bucket with StrictReads and
	// a Verify after each Drain, and the check with repeated deletes and
	// RecoverWithin; basic ones run neither.
	extended bool
}

// journalKind is where a configuration keeps its journal.
type journalKind int

const (
	// onSides is the failover bucket's default: on the sides themselves
	// (journal.NewBucket), shared by every writer and instance.
	onSides journalKind = iota
	// inMemory is each writer's journal.NewMemory, which the check keeps
	// across the writer's restarts, as a durable journal would be.
	inMemory
	// inFile is each writer's journal.OpenFile, closed and opened again at
	// each restart.
	inFile
)

// tripFast trips a breaker on the first outage and keeps it open briefly:
// the breaker flaps, which is the hard case for the journal and the
// reconciler.
func tripFast() *circuit.Settings {
	return &circuit.Settings{ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 }, Timeout: 5 * time.Second}
}

// flapping sets short breakers and timeouts.
func flapping(o failoverblob.Options) failoverblob.Options {
	o.Breaker = tripFast()
	o.CallTimeout, o.FirstByteTimeout, o.IdleTimeout = 2*time.Second, 2*time.Second, 3*time.Second
	return o
}

// refusedKeys are keys the chaos test's sides refuse, as fileblob does: a
// name ending in ".attrs", one too long for a file name, one that climbs
// out of its directory.
var refusedKeys = []string{"k90.attrs", "k91-" + strings.Repeat("long", 275), "../k92"}

// refuse mixes refused keys into the workload.
func refuse(o *chaos.Options) { o.Refused = refusedKeys }

// restarts restarts a writer about every minute (virtual), crashing it one
// time in two.
func restarts(o *chaos.Options) { o.RestartEvery, o.Crashes = time.Minute, 0.5 }

// chaosSkew bounds the skew between the chaos test's writers' clocks
// (failoverblob.Options.MaxClockSkew).
const chaosSkew = 2 * time.Second

// writers runs n writers whose clocks are up to chaosSkew apart, the last
// fast by an hour if fast is set, over sides with conditional writes and
// deletes, as a fleet's sides must have (see README, Limitations).
func writers(n int, fast bool) func(o *chaos.Options) {
	return func(o *chaos.Options) {
		o.Writers, o.MaxClockSkew, o.Conditional = n, chaosSkew, true
		if fast {
			o.FastClock = time.Hour
		}
	}
}

// none runs one writer that is never restarted, on sides that refuse no
// key.
func none(*chaos.Options) {}

// basicConfigs are the configurations TestChaos runs by default: one
// instance, never restarted, with a journal in memory, over sides that
// refuse no key.
var basicConfigs = []chaosConfig{
	{"redirect", func() failoverblob.Options { return failoverblob.Options{} }, inMemory, none, false},
	{"mirror-either", func() failoverblob.Options { return failoverblob.Options{Mode: failoverblob.Mirror} }, inMemory, none, false},
	{"mirror-both", func() failoverblob.Options {
		return failoverblob.Options{Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth}
	}, inMemory, none, false},
	{"redirect-flapping", func() failoverblob.Options {
		return flapping(failoverblob.Options{SpoolMemory: 64 << 10, BestEffortList: true, ReconcileConcurrency: 2})
	}, inMemory, none, false},
	{"mirror-either-flapping", func() failoverblob.Options {
		return flapping(failoverblob.Options{Mode: failoverblob.Mirror, ReconcileConcurrency: 1})
	}, inMemory, none, false},
	{"mirror-both-flapping", func() failoverblob.Options {
		return flapping(failoverblob.Options{Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth})
	}, inMemory, none, false},
}

// fleetConfigs are the extended configurations of one writer: restarts
// and crashes, refused keys, the journal on the sides or in a file, strict
// reads. TestChaosFleet runs them by default.
var fleetConfigs = []chaosConfig{
	{"redirect", func() failoverblob.Options { return failoverblob.Options{} }, onSides, restarts, true},
	{"mirror-either", func() failoverblob.Options { return failoverblob.Options{Mode: failoverblob.Mirror} }, inMemory, restarts, true},
	{"mirror-both", func() failoverblob.Options {
		return failoverblob.Options{Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth}
	}, onSides, none, true},
	{"redirect-flapping", func() failoverblob.Options {
		return flapping(failoverblob.Options{SpoolMemory: 64 << 10, BestEffortList: true, ReconcileConcurrency: 2})
	}, inFile, restarts, true},
	{"mirror-either-flapping", func() failoverblob.Options {
		return flapping(failoverblob.Options{Mode: failoverblob.Mirror, ReconcileConcurrency: 1})
	}, onSides, restarts, true},
	{"mirror-both-flapping", func() failoverblob.Options {
		return flapping(failoverblob.Options{Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth})
	}, onSides, refuse, true},
	{"redirect-refused-keys", func() failoverblob.Options { return flapping(failoverblob.Options{}) }, onSides, refuse, true},
	{"mirror-either-memory", func() failoverblob.Options { return failoverblob.Options{Mode: failoverblob.Mirror} }, inMemory, none, true},
	{"mirror-both-memory-flapping", func() failoverblob.Options {
		return flapping(failoverblob.Options{Mode: failoverblob.Mirror, Ack: failoverblob.AckBoth})
	}, inMemory, none, true},
}

// writerConfigs are the extended configurations of several writers over
// the same sides, which offer conditional writes and deletes (as S3, GCS
// and Azure do) to keep their repairs from racing the other writers'
// changes: three writers with skewed clocks, two with one an hour fast,
// and three in each mode whose instances restart and crash (a fleet of
// replicas).
var writerConfigs = []chaosConfig{
	{"redirect-writers", func() failoverblob.Options { return flapping(failoverblob.Options{}) }, onSides, writers(3, false), true},
	{"redirect-writers-fast-clock", func() failoverblob.Options { return flapping(failoverblob.Options{}) }, onSides, writers(2, true), true},
	{"redirect-writers-restarts", func() failoverblob.Options { return failoverblob.Options{} }, onSides, both(writers(3, false), restarts), true},
	{"mirror-writers-restarts", func() failoverblob.Options { return failoverblob.Options{Mode: failoverblob.Mirror} }, onSides, both(writers(3, false), restarts), true},
}

// both applies a and then b.
func both(a, b func(o *chaos.Options)) func(o *chaos.Options) {
	return func(o *chaos.Options) { a(o); b(o) }
}

// extendedConfigs are the configurations TestChaos runs with
// -chaos.extended: the fleet's and the writers'.
var extendedConfigs = append(append([]chaosConfig{}, fleetConfigs...), writerConfigs...)

// chaosConfigs returns the configurations this run of TestChaos runs.
func chaosConfigs() []chaosConfig {
	if *chaosExt {
		return extendedConfigs
	}
	return basicConfigs
}

// recoverWithin is how long after a side's last fault a failover bucket
// with opts may still take it for down: its breaker's timeout, plus the
// longest call to a side, plus a second.
func recoverWithin(opts failoverblob.Options) time.Duration {
	o := opts.Breaker
	if o == nil {
		o = &circuit.Settings{}
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = circuit.DefaultTimeout
	}
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = 30 * time.Second
	}
	return timeout + max(idle, opts.CallTimeout, opts.FirstByteTimeout) + time.Second
}

// openChaos returns chaos.Check's open function for a configuration: a
// failover bucket over the instance's sides, with its writer's id and
// clock, and the journal the configuration names.
func openChaos(cfg chaosConfig) func(ctx context.Context, env chaos.Env) (chaos.Target, error) {
	return func(ctx context.Context, env chaos.Env) (chaos.Target, error) {
		opts := cfg.opts()
		opts.WriterID, opts.Now, opts.MaxClockSkew = env.WriterID, env.Now, chaosSkew
		if cfg.journal != onSides {
			opts.Journal = env.Journal
		}
		// Extended configurations' reads compare both sides' versions of
		// keys this instance knows of no pending work for: read-your-writes
		// across instances, and while a side's journal entries cannot be
		// read, as the oracle holds every instance to.
		opts.StrictReads = cfg.extended
		f, err := failoverblob.New(ctx, env.Primary, env.Secondary, &opts)
		if err != nil {
			return chaos.Target{}, err
		}
		return chaos.Target{
			Bucket: f.Bucket(),
			Reconcile: func(ctx context.Context) (int, error) {
				// A pass of Run with VerifyInterval set: the journal's
				// repairs, then the verifier's, which settle what a crash
				// kept from being recorded (the Mirror-mode crash window).
				r, err := f.Drain(ctx)
				if !cfg.extended {
					return r.Remaining, err
				}
				v, verr := f.Verify(ctx, &failoverblob.VerifyOptions{Prefix: "chaos/", Repair: true})
				return r.Remaining + v.Differing - v.Repaired, errors.Join(err, verr)
			},
			Mirror:      opts.Mode == failoverblob.Mirror,
			AckBoth:     opts.Mode == failoverblob.Mirror && opts.Ack == failoverblob.AckBoth,
			StrictReads: opts.StrictReads,
		}, nil
	}
}

// TestChaos runs concurrent clients against failover buckets while a seeded
// schedule takes the sides down and heals them, and checks the history
// against an oracle: nothing acknowledged lost, no delete undone, no newer
// object replaced by an older one, sides converged, per-key histories
// linearizable. By default it runs the basic configurations, seeds 1 to
// 200 of 2,000 operations each (-short: 12 seeds of 500); -chaos.extended
// runs the extended ones instead (those of TestChaosFleet, and several
// writers with skewed clocks); -chaos.seeds runs more, -chaos.seed
// replays one.
func TestChaos(t *testing.T) {
	runChaos(t, "TestChaos", chaosConfigs(), *chaosSeeds, fmt.Sprintf(" -chaos.extended=%t", *chaosExt))
}

// TestChaosFleet runs the chaos check on the extended configurations of
// one writer: restarts about every virtual minute, half of them crashes;
// keys the sides refuse; the journal on the sides, in a file or in memory;
// strict reads and a Verify after each Drain; repeated deletes. Besides
// TestChaos's checks, reads must be monotonic per client, a repeated
// delete must answer NotFound, no operation on a refused key may succeed,
// and nothing may answer ErrUnavailable once the sides have been quiet for
// the breaker's timeout and the longest call. It still finds rare defects
// (see README, What we test), so it runs only when asked:
// -chaos.fleet.seeds=N runs seeds 1 to N, -chaos.seed replays one.
func TestChaosFleet(t *testing.T) {
	if *chaosFleetSeeds == 0 && *chaosSeed == 0 {
		t.Skip("the fleet tier runs with -chaos.fleet.seeds=N (or -chaos.seed=N to replay one)")
	}
	runChaos(t, "TestChaosFleet", fleetConfigs, *chaosFleetSeeds, "")
}

// runChaos runs the chaos check of test on configs, seeds 1 to seeds (or
// -chaos.seed alone), each on the configuration its number picks (seed
// modulo the number of configurations). flags are the replay line's
// flags that pick configs.
func runChaos(t *testing.T, test string, configs []chaosConfig, seeds int, flags string) {
	ops := *chaosOps
	if testing.Short() && *chaosSeed == 0 {
		seeds, ops = min(seeds, 2*len(configs)), min(ops, 500)
	}
	configOf := func(seed int64) int { return int(seed % int64(len(configs))) }
	byConfig := make([][]int64, len(configs))
	if *chaosSeed != 0 {
		byConfig[configOf(*chaosSeed)] = []int64{*chaosSeed}
	} else {
		for s := int64(1); s <= int64(seeds); s++ {
			byConfig[configOf(s)] = append(byConfig[configOf(s)], s)
		}
	}
	var total chaos.Report
	for i, cfg := range configs {
		if len(byConfig[i]) == 0 {
			continue
		}
		t.Run(cfg.name, func(t *testing.T) {
			o := &chaos.Options{
				Seeds:        byConfig[i],
				Ops:          ops,
				Clients:      6,
				Keys:         10,
				MaxSize:      *chaosMaxSize,
				PartialLists: cfg.opts().BestEffortList,
				Unavailable:  func(err error) bool { return errors.Is(err, failoverblob.ErrUnavailable) },
				Replay: func(seed int64) string {
					return fmt.Sprintf("go test -race -run '^%s$' .%s -chaos.seed=%d -chaos.ops=%d -chaos.maxsize=%d", test, flags, seed, ops, *chaosMaxSize)
				},
				// A history that is not linearizable can take the search
				// long to refute; ten seconds a key bounds a failing run (a
				// key it gives up on is reported, and the oracle's own
				// checks still judge its reads).
				LinearizabilityTimeout: 10 * time.Second,
			}
			if cfg.extended {
				o.RecoverWithin, o.RepeatDeletes = recoverWithin(cfg.opts()), true
			}
			o.JournalFile = cfg.journal == inFile
			cfg.fleet(o)
			rep := chaos.Check(t, openChaos(cfg), o)
			t.Logf("%s:\n%s", cfg.name, rep)
			total.Add(rep)
		})
	}
	t.Logf("all configurations:\n%s", total)
}
