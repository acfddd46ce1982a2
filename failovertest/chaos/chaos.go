package chaos

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/journal"
)

// Target is a failover bucket for Check to put through an outage rehearsal:
// the bucket, how to reconcile it, and what its mode promises about where
// objects end up.
type Target struct {
	// Bucket is the failover bucket. Check closes it when the seed is done,
	// or when it restarts the bucket.
	Bucket *blob.Bucket

	// Reconcile makes one reconcile pass and reports how many repairs are
	// still pending afterwards. For a *failoverblob.Failover f:
	//
	//	func(ctx context.Context) (int, error) {
	//		r, err := f.Drain(ctx)
	//		return r.Remaining, err
	//	}
	Reconcile func(ctx context.Context) (pending int, err error)

	// Mirror says every object must end up on both sides (Mirror mode).
	// Otherwise (Redirect mode) every object must end up on the primary and
	// none on the secondary, which holds only temporary copies.
	Mirror bool

	// AckBoth says a change is acknowledged only once both sides hold it
	// (Mirror mode with failoverblob.AckBoth), so a change may fail as
	// unavailable while either side is down, without asking the other.
	AckBoth bool

	// StrictReads says a read compares both sides' versions
	// (failoverblob.Options.StrictReads), so a read may fail as unavailable
	// while either side is down.
	StrictReads bool
}

// Env is what open gets to build one instance of the failover bucket: the
// two sides and the journal as this instance sees them, and the name and
// clock of the writer it runs as.
//
// Every writer of a seed opens one instance at the start and one more after
// each restart, over the same sides and the same journal. When the check
// crashes an instance, every call that instance makes from then on to a
// side or to the journal fails at once without taking effect (calls already
// under way finish), as a dead process does no more I/O; the check closes
// the dead instance once its callers are done with it.
type Env struct {
	// Primary and Secondary are the sides as this instance sees them.
	// Closing them (a failover bucket closes its sides when it is closed)
	// leaves the sides open for the other instances.
	Primary, Secondary *blob.Bucket

	// Journal is a journal of the writer's own (for
	// failoverblob.Options.Journal), for a configuration that keeps one per
	// process. It outlives the writer's instances as a durable journal
	// does: what an instance appended is there for the next one, even after
	// a crash. It is a journal.NewMemory, or with Options.JournalFile a
	// journal.File that the check closes and opens again at each restart.
	// A journal kept on the sides (failoverblob's default,
	// journal.NewBucket over Primary and Secondary) needs none of this: it
	// is shared by every writer and instance, and fenced with the sides.
	Journal journal.Journal

	// WriterID names the writer (for failoverblob.Options.WriterID); it is
	// the same for every instance of the writer.
	WriterID string

	// Now is the writer's clock (for failoverblob.Options.Now): the time of
	// the run (virtual, or real over the wire) plus the writer's skew (see
	// Options.MaxClockSkew and Options.FastClock).
	Now func() time.Time

	// Writer numbers the writer, from 0; Instance numbers its instances,
	// from 0, in the order they are opened.
	Writer, Instance int
}

// Options configures Check. A nil *Options, and every zero field, mean the
// documented default: a short check that suits a unit test, with one
// writer, no restarts and no refused keys.
type Options struct {
	// Seeds lists the seeds to run, one subtest each, in parallel. A seed
	// decides the clients' operations, the fault schedule, the restarts and
	// the values written. Nil means 1, 2 and 3.
	Seeds []int64
	// Ops is the number of operations each seed's clients make, in all; a
	// repeated delete (two deletes of one key in a row) counts as one.
	// Zero means 300.
	Ops int
	// Clients is the number of concurrent clients. Zero means 4.
	Clients int
	// Keys is the size of the key space the clients share, small so that
	// they collide. Zero means 8. With several writers, half of it is
	// shared by every writer and the rest is split among the writers, each
	// key changed by the clients of one writer only.
	Keys int
	// MaxSize is the largest object written. Most objects are under 16 KiB
	// (one write in 13 is empty); 16 KiB to 1 MiB is one write in 100, and
	// 1 MiB to MaxSize one in 1,000, since the bytes moved are most of what
	// a check costs. Zero means 1 MiB.
	MaxSize int64
	// PartialLists says the bucket may list only part of its objects while
	// a side is down (failoverblob's BestEffortList), so that a key missing
	// from a listing proves nothing.
	PartialLists bool
	// Unavailable reports whether an error means that the bucket could not
	// answer (for failoverblob: errors.Is(err, failoverblob.ErrUnavailable)).
	// Nil means a gcerrors code of Unknown.
	Unavailable func(error) bool
	// Replay returns what to run to replay one seed; failure messages show
	// it. Nil means a description of the Options to use.
	Replay func(seed int64) string
	// LinearizabilityTimeout bounds the linearizability check of each key's
	// history (in real time), and three times it those of a seed's keys
	// together; a check that runs out, and a key left unchecked, is
	// reported as unknown, not as a failure. A seed that the other checks
	// have failed already is not searched. Zero means 30 seconds.
	LinearizabilityTimeout time.Duration

	// Writers is how many failover buckets run at once over the same
	// sides, each with its own WriterID, journal and clock; client c uses
	// writer c modulo Writers. Zero means 1. See Check for what is checked
	// across writers.
	Writers int
	// MaxClockSkew is the failover bucket's bound on the skew between its
	// writers' clocks (failoverblob.Options.MaxClockSkew). With several
	// writers, each writer's clock is off the run's time by a seeded amount
	// within half of it either way, so that two clocks are at most
	// MaxClockSkew apart, and changes that different writers made less than
	// MaxClockSkew apart in time may end up in either order. Zero means the
	// writers' clocks agree.
	MaxClockSkew time.Duration
	// FastClock, if positive, puts the last writer's clock this far ahead
	// of the run's time, beyond MaxClockSkew: a writer whose clock is wrong.
	// Its changes, too, must be ordered by when they were made once they
	// are more than MaxClockSkew apart from another writer's. It needs
	// Writers of 2 or more.
	FastClock time.Duration
	// RestartEvery is the mean time between restarts while the faults go
	// on (virtual time, or real time over the wire): each restart takes a
	// writer's failover bucket down and opens a new instance over the same
	// sides and the same journal, after a pause for the process to start.
	// Zero means no restarts.
	RestartEvery time.Duration
	// Crashes is the share of restarts, from 0 to 1, that are crashes: the
	// instance is killed with its calls in flight, never closed first (see
	// Env). The others are clean: the instance finishes the calls in flight
	// and is closed, while new calls wait for the next one.
	Crashes float64
	// Conditional gives the in-memory sides of a run in virtual time
	// conditional writes and deletes (driverx.ConditionalWriter and
	// driverx.ConditionalDeleter, through As), as the S3, GCS and Azure
	// buckets opened by the providers packages have: the reconciler's
	// copies and deletes then apply only if the object they examined is
	// still there. Without them (memblob's, fileblob's) a repair can race
	// another writer's change. Over the wire the sides have what their
	// buckets offer.
	Conditional bool
	// JournalFile keeps each writer's journal in a journal.File under a
	// temporary directory, closed and opened again at each restart.
	// Otherwise it is a journal.NewMemory that outlives the instances.
	JournalFile bool

	// Refused names keys (under the seed's key prefix) that the sides
	// refuse, as fileblob refuses keys ending in ".attrs", keys too long for
	// a file name and keys that escape its directory; clients use them in
	// one operation in 16. In a run in virtual time the in-memory sides
	// refuse them (failovertest.Injector.Refuse, with errors that carry no
	// gcerrors code, as fileblob's do); over the wire the sides must refuse
	// them themselves (S3 and GCS refuse keys over 1,024 bytes). No
	// operation on a refused key may succeed, and see RecoverWithin.
	Refused []string
	// RecoverWithin is how long after a side's last fault the failover
	// bucket may still treat it as down: its breaker's timeout plus the
	// longest a call to a side may take (for failoverblob,
	// Breaker.Timeout plus IdleTimeout), plus a little. If positive, an
	// operation fails the check if it answers unavailable although neither
	// side had a fault from RecoverWithin before it began to its end (the
	// first calls a breaker lets through to probe a recovered side
	// excused). A side's fault lasts, for an operation, until the end of
	// its window, or until a stream the operation's instance opened on the
	// side during the window failed, if that came later: the Injector
	// decides a stream's fault as it opens, and the stream carries it to
	// its Close, however long after the heal that comes. An operation on a refused key fails it if it answers
	// unavailable although a side it needs was so free of faults: any side
	// for a read (both with Target.StrictReads), and for a change any side,
	// or the primary for an IfNotExist write or a delete in Redirect mode,
	// or both sides with Target.AckBoth. Zero turns these checks off, and makes every delete in
	// Redirect mode count as one the primary might not have answered (see
	// Check).
	RecoverWithin time.Duration
	// RepeatDeletes follows five deletes in sixteen with a second delete of
	// the key, up to fifteen think times later, and checks that a second
	// delete answers NotFound when the first was acknowledged and nothing
	// may have written the key in between.
	RepeatDeletes bool

	// Sides, if not nil, runs the check over the wire, in real time: the
	// sides are the two buckets Sides returns, and the faults are switched
	// on their network paths through faults, rather than injected in front
	// of in-memory buckets in virtual time. Sides is called once per seed,
	// with the seed's subtest, and must return buckets and fault switches
	// of that seed's own (fresh emulators behind their own fault proxies,
	// say), since seeds run in parallel and every seed switches faults on
	// its own schedule; t's Cleanup is the place to stop them. The check
	// writes only under a prefix of its own for each seed, closes both
	// buckets when the seed is done, and reads them directly at the end to
	// check convergence, once every fault has healed.
	//
	// A call that fails over the wire may still have taken effect, at its
	// side or later (a request held up on the network can land after its
	// caller gave up), so the check takes every failed change to a side as
	// one that may land at any time; an answer of NotFound or
	// FailedPrecondition is taken as no change, so the sides' clients should
	// make one attempt per call.
	//
	// Over the wire a seed fixes the clients' operations, the values written
	// and the fault schedule, but not how they interleave in real time: a
	// replay runs the same plan, and may take a few runs to meet a failure
	// again.
	Sides func(t *testing.T) (primary, secondary *blob.Bucket, faults WireFaults)
	// Window is, for a run over Sides, the longest fault window: each
	// window lasts from a sixth of Window to Window, and the clients and the
	// reconcile passes keep pace with it (a client waits up to Window/20
	// between operations; a reconcile pass runs every Window/20 to
	// Window/2). WireSlow delays reach three times Window. The sides'
	// timeouts should be of the order of Window. Zero means 300 ms. Runs in
	// virtual time ignore it.
	Window time.Duration
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Seeds == nil {
		c.Seeds = []int64{1, 2, 3}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Ops, 300)
	def(&c.Clients, 4)
	def(&c.Keys, 8)
	def(&c.Writers, 1)
	if c.MaxSize <= 0 {
		c.MaxSize = 1 << 20
	}
	if c.Unavailable == nil {
		c.Unavailable = func(err error) bool { return gcerrors.Code(err) == gcerrors.Unknown }
	}
	if c.Replay == nil {
		c.Replay = func(seed int64) string {
			return fmt.Sprintf("Check with Options{Seeds: []int64{%d}, Ops: %d, Clients: %d, Keys: %d, MaxSize: %d, Writers: %d, RestartEvery: %v, Crashes: %v}",
				seed, c.Ops, c.Clients, c.Keys, c.MaxSize, c.Writers, c.RestartEvery, c.Crashes)
		}
	}
	if c.LinearizabilityTimeout <= 0 {
		c.LinearizabilityTimeout = 30 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 300 * time.Millisecond
	}
	return c
}

// Check rehearses outages against a failover configuration and checks that
// it keeps its promise: nothing acknowledged is lost, a deleted object never
// comes back, the reconciler never replaces a newer object with an older
// one, and both sides converge once the faults heal.
//
// For each seed, in a subtest run in parallel and in virtual time
// (testing/synctest), Check wraps two in-memory buckets in fault-injecting
// wrappers (failovertest.Wrap) and calls open to build the failover bucket
// over them, with the caller's own options and the journal, writer id and
// clock the Env names. open is called inside the synctest bubble, once per
// instance (see Env), and must build everything afresh; anything it starts
// must end when the bucket is closed. Concurrent clients then put, get,
// delete (now and then the same key twice in a row), copy, list and read
// the attributes of a few keys, each value unique and traceable to the write
// that made it, while a seeded schedule takes the sides down (errors, hangs,
// latency, streams cut part-way, writes and deletes applied but reported as
// failed, both sides at once) and heals them, Target.Reconcile runs now and
// then, and, with Options.RestartEvery, writers' buckets are restarted or
// crashed. Finally every fault heals, Reconcile runs on every writer until
// nothing is pending, and every key is read once more.
//
// The history is then checked:
//
//   - every read is explained by a write or delete that could still be
//     current, and the per-key histories are linearizable
//     (github.com/anishathalye/porcupine; an operation that failed may have
//     taken effect), across restarts and crashes (an operation the crash
//     cut off is one that failed);
//   - reads are monotonic: once a client has seen a value, none of its later
//     reads of the key shows a value whose writes all returned before that
//     value's began, or shows the key absent with no delete since;
//   - a key deleted twice in a row by a client, with no write of it in
//     between, is not acknowledged as deleted the second time if the first
//     was: the second delete answers NotFound (or fails). In Redirect mode
//     the primary cannot be asked while it is down, so a second delete
//     that ran within RecoverWithin of a fault of the primary is exempt;
//   - no operation on a key the sides refuse (Options.Refused) succeeds
//     (a delete in Redirect mode is exempt as above), and with
//     RecoverWithin, no operation answers unavailable while the sides have
//     been free of faults, nor one on a refused key while a side it needs
//     had been (see RecoverWithin);
//   - every change the reconciler made to a side is checked against the
//     operations that wrote what it replaced, and the sides must hold
//     exactly the final state as Target.Mirror promises.
//
// With several writers (Options.Writers), a writer's failover bucket does
// not know at once the work another one has pending (it learns of it from a
// journal on the sides at its next reconcile pass, and never from a journal
// of the other's own), so a read through one writer may show another's
// change late. Then the checks
// above apply in full to the keys only one writer changes, for the
// operations of that writer's clients; the keys every writer changes, and
// other writers' reads, are checked for what holds across writers: every
// value read was written to that key by an operation that began before the
// read ended; the final state (read after convergence) is explained by a
// change that no acknowledged change made later replaced, where a change by
// another writer counts as later only if it began more than MaxClockSkew
// after the first returned; the reconciler's changes to a side are judged
// by the same order; and the sides converge. A fast clock (FastClock) is
// held to the same order.
//
// Each failure names the seed, the operation and how to replay it, and
// tells the story of the keys the violations name: both sides' fault
// windows, the operations on the key, and every change the sides took, with
// the operation or reconcile pass that made it, in time order (a failing
// seed does not always fail again when replayed).
//
// With Options.Sides the same clients, checks and report run over the wire
// and in real time: the sides are buckets the caller provides (real SDK
// clients talking to emulators through fault proxies, say), open gets them
// as they are except that the check logs the changes made to them, and a
// seeded schedule of WireFault windows (connections reset, hung, cut,
// slowed or refused, 503 answers) runs on their network paths. The run is
// as long as the clients take to make their operations; at the end every
// fault heals, the check waits four times Window more for requests held on
// the network to land, and reconciles and checks as above.
//
// Check returns the figures of the run; it fails t if any seed fails.
func Check(t *testing.T, open func(ctx context.Context, env Env) (Target, error), opts *Options) Report {
	t.Helper()
	o := opts.withDefaults()
	var (
		mu     sync.Mutex
		report Report
	)
	t.Run("seeds", func(t *testing.T) {
		for _, seed := range o.Seeds {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Parallel()
				res := checkSeed(t, open, o, seed)
				mu.Lock()
				report.add(res.report)
				mu.Unlock()
				if res.err != nil {
					t.Errorf("seed %d: %v\nreplay: %s", seed, res.err, o.Replay(seed))
					return
				}
				if len(res.unknown) > 0 {
					t.Logf("seed %d: the linearizability check of %s ran out of time (%v a key, three times that a seed) or was not needed (the seed failed already)", seed, strings.Join(res.unknown, ", "), o.LinearizabilityTimeout)
				}
				if len(res.violations) == 0 {
					return
				}
				var b strings.Builder
				fmt.Fprintf(&b, "seed %d: %d violations of the failover promise", seed, len(res.violations))
				for i, v := range res.violations {
					if i == 20 {
						fmt.Fprintf(&b, "\n  ... and %d more", len(res.violations)-i)
						break
					}
					fmt.Fprintf(&b, "\n  - %s", v)
				}
				fmt.Fprintf(&b, "\nreplay: %s", o.Replay(seed))
				b.WriteString(res.story)
				t.Error(b.String())
			})
		}
	})
	sort.Slice(report.FailedSeeds, func(i, j int) bool { return report.FailedSeeds[i] < report.FailedSeeds[j] })
	return report
}

// openFunc builds one instance of the failover bucket (see Check).
type openFunc = func(ctx context.Context, env Env) (Target, error)

// seedResult is what one seed found.
type seedResult struct {
	report     Report
	violations []string
	unknown    []string // keys whose linearizability check timed out
	story      string   // what happened to the keys the violations name (see analysis.story)
	err        error    // the seed could not run
}

// checkSeed runs one seed in a synctest bubble (or over the wire, in real
// time) and checks its history outside it, where the linearizability
// checker's timeout runs in real time.
func checkSeed(t *testing.T, open openFunc, o Options, seed int64) seedResult {
	var (
		r   *run
		err error
	)
	if o.Sides != nil {
		if r, err = newWireRun(t, o, seed, open); err == nil {
			err = r.exercise(t)
		}
	} else {
		synctest.Test(t, func(t *testing.T) {
			r = newRun(o, seed, open)
			err = r.exercise(t)
		})
	}
	if err != nil {
		return seedResult{err: err, report: Report{Seeds: 1, FailedSeeds: []int64{seed}}}
	}
	return r.check()
}
