// Command archiver archives a durable log into a failover bucket, the way
// Pinterest's Secor archives Kafka topics into S3, and rehearses what an
// outage of the primary cloud asks of such a pipeline.
//
// The log is NATS JetStream, run in-process on a temporary directory and
// reached through in-process connections (no port is opened). A publisher
// writes a stream of messages to it; the archiver (archiver.go, the part to
// copy) stores them in batches named by their offset range, in a failover
// bucket over two fileblob buckets in the same directory, and commits each
// batch on the log only once its write is acknowledged. On the way the
// primary goes down, the archiver is killed twice (once half-way through
// writing a batch, once between storing a batch and committing it) and
// restarted from the committed offset each time, and the primary comes back
// and is repaired by the reconciler. At the end every published message must
// be in exactly one archived batch on the primary.
//
//	go run ./examples/archiver
//
// The program prints a timeline and the figures, and exits with status 1 if
// any check fails. -h lists the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/fileblob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

const (
	streamName   = "EVENTS"
	subject      = "events.orders"
	consumerName = "archiver"
	prefix       = "events/" // where the batches go in the bucket

	// AckWait is how long the log waits for a commit before it delivers a
	// message again. A restarted archiver waits this long for the messages
	// its killed predecessor held, so the rehearsal keeps it short; in
	// production make it longer than a batch can take to collect and write
	// (the bucket's timeouts bound the write), or the log redelivers
	// messages the archiver still holds (ignored, but wasted).
	ackWait = 500 * time.Millisecond

	// Each breaker trips after tripAfter outages in a row and stays open for
	// breakerTimeout; the reconciler looks for work every reconcileInterval.
	// Short, for a rehearsal that takes a second or two; production keeps
	// the library's defaults.
	tripAfter         = 2
	breakerTimeout    = 200 * time.Millisecond
	reconcileInterval = 50 * time.Millisecond
)

// The script, by batch number (batch 1 holds the first -batch messages).
const (
	outageAfter      = 3 // once batch 3 is committed, the primary goes down
	killMidBatch     = 5 // archiver #1 is killed half-way through writing batch 5
	killBeforeCommit = 6 // archiver #2 is killed once batch 6 is stored, before it commits it
	healAfter        = 6 // once archiver #3 has committed batch 6, the primary comes back
	minBatches       = 7 // at least one batch is archived after the primary is back
)

const usage = `Usage: go run ./examples/archiver [flags]

Archives a NATS JetStream log (run in-process) into a failover bucket over
two fileblob buckets, in batches named by offset range, committing each
batch on the log only once its write is acknowledged. Mid-run the primary
goes down, the archiver is killed twice and restarted from the committed
offset, and the primary comes back and is reconciled. Then it checks that
every published message is in exactly one archived batch on the primary,
and prints a timeline and the figures. Everything lives in a temporary
directory, removed at the end.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, os.Args[1:])
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, "archiver:", err)
		os.Exit(1)
	}
}

// run parses args and runs the rehearsal. Everything is printed to w.
func run(ctx context.Context, w io.Writer, args []string) error {
	cfg, err := parseFlags(w, args)
	if err != nil {
		return err
	}
	_, err = rehearse(ctx, w, cfg)
	return err
}

// config is what the flags set.
type config struct {
	messages, batch uint64
	memoryJournal   bool
	keep            bool
}

func parseFlags(w io.Writer, args []string) (config, error) {
	fs := flag.NewFlagSet("archiver", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprint(w, usage)
		fs.PrintDefaults()
	}
	var cfg config
	fs.Uint64Var(&cfg.messages, "messages", 1000, "messages to publish: a multiple of -batch, at least 7 batches")
	fs.Uint64Var(&cfg.batch, "batch", 100, "messages per archived batch")
	journalKind := fs.String("journal", "file", `where each archiver keeps its failover journal: "file" (journal.OpenFile, which outlives the archiver) or "memory" (lost when it is killed: the final check then fails)`)
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory, to look at the log, the buckets and the journal")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	switch {
	case fs.NArg() > 0:
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	case cfg.batch == 0 || cfg.messages%cfg.batch != 0 || cfg.messages/cfg.batch < minBatches:
		return config{}, fmt.Errorf("-messages=%d -batch=%d: want at least %d whole batches of at least 1 message", cfg.messages, cfg.batch, minBatches)
	case *journalKind != "file" && *journalKind != "memory":
		return config{}, fmt.Errorf(`-journal=%q: want "file" or "memory"`, *journalKind)
	}
	cfg.memoryJournal = *journalKind == "memory"
	return cfg, nil
}

// rehearse sets up the log and the buckets in a temporary directory, runs
// the script and the final check, and returns the figures, with an error if
// anything failed.
func rehearse(ctx context.Context, w io.Writer, cfg config) (figures, error) {
	dir, err := os.MkdirTemp("", "failoverblob-archiver-")
	if err != nil {
		return figures{}, err
	}
	if cfg.keep {
		defer fmt.Fprintf(w, "kept %s\n", dir)
	} else {
		defer func() { _ = os.RemoveAll(dir) }()
	}
	// A rehearsal takes a second or two; one that hangs is a failure.
	ctx, cancel := context.WithTimeoutCause(ctx, time.Minute, errors.New("the rehearsal did not finish within a minute"))
	defer cancel()
	d := &demo{ctx: ctx, out: w, start: time.Now(), dir: dir, size: cfg.batch, total: cfg.messages,
		memoryJournal: cfg.memoryJournal, stored: map[uint64]int{}}
	err = d.openLog()
	defer d.closeLog()
	if err != nil {
		return figures{}, err
	}
	err = d.openSides()
	defer d.closeSides()
	if err != nil {
		return figures{}, err
	}

	d.intro()
	var publisher sync.WaitGroup
	var publishErr error
	publishCtx, stopPublishing := context.WithCancel(ctx)
	publisher.Go(func() { publishErr = d.publish(publishCtx) })
	defer publisher.Wait()
	defer stopPublishing()
	for _, step := range []func() error{
		func() error { return d.runArchiver(1) }, d.afterMidBatchKill,
		func() error { return d.runArchiver(2) }, d.afterKillBeforeCommit,
		func() error { return d.runArchiver(3) },
		func() error { publisher.Wait(); return publishErr },
		d.finalCheck,
	} {
		if err := step(); err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
				err = fmt.Errorf("%w: %w", cause, err)
			}
			return d.fig, err
		}
	}
	d.printFigures()
	if d.failures > 0 {
		return d.fig, fmt.Errorf("%d checks failed", d.failures)
	}
	fmt.Fprintf(w, "\nOK: every published message is archived exactly once on the primary (%.3fs)\n", time.Since(d.start).Seconds())
	return d.fig, nil
}

// demo is one rehearsal: the log, the two sides, what was published, and
// what happened, to check and count.
type demo struct {
	ctx           context.Context
	start         time.Time
	dir           string
	size, total   uint64 // messages per batch; messages to publish
	memoryJournal bool

	srv *server.Server
	nc  *nats.Conn // the rehearsal's own connection: the publisher, and the checks
	js  jetstream.JetStream

	// The sides as stored, and the drivers every archiver's failover bucket
	// reaches them through: fault injectors that outlive each archiver, as
	// a cloud outlives the processes that use it. Only a failed-over write
	// writes to the secondary in Redirect mode (the reconciler reads and
	// deletes there), so its injector's write count tells where each batch
	// went.
	raw                [2]*blob.Bucket
	primary, secondary driver.Bucket
	primaryFaults      *failovertest.Injector
	secondaryFaults    *failovertest.Injector

	published [][]byte // published[seq-1] is the message with sequence seq

	mu        sync.Mutex // guards out and everything below
	out       io.Writer
	failures  int
	secWrites int64          // the secondary's write count when the last batch write started
	stored    map[uint64]int // acknowledged writes, by first sequence of the batch
	fig       figures
}

// figures counts what the rehearsal did.
type figures struct {
	batches                               int // on the primary at the end
	writes, rewrites, failedOver, aborted int
	redelivered                           int
	copied, cleaned                       int // by the reconciler
}

// Indexes of the sides in demo.raw.
const (
	primarySide   = 0
	secondarySide = 1
)

func (d *demo) openLog() error {
	opts := &server.Options{
		ServerName: "log",
		JetStream:  true,
		StoreDir:   filepath.Join(d.dir, "log"),
		DontListen: true, // clients connect in-process
		NoSigs:     true,
		NoLog:      true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	srv.Start()
	d.srv = srv
	if !srv.ReadyForConnections(10 * time.Second) {
		return errors.New("the NATS server did not start")
	}
	if d.nc, err = nats.Connect("", nats.InProcessServer(srv)); err != nil {
		return err
	}
	if d.js, err = jetstream.New(d.nc); err != nil {
		return err
	}
	if _, err := d.js.CreateStream(d.ctx, jetstream.StreamConfig{
		Name: streamName, Subjects: []string{subject}, Storage: jetstream.FileStorage,
	}); err != nil {
		return err
	}
	// The durable consumer is the archiver's committed offset: its ack
	// floor. See archiver for why AckAll and MaxAckPending = a batch.
	_, err = d.js.CreateConsumer(d.ctx, streamName, jetstream.ConsumerConfig{
		Durable:       consumerName,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       ackWait,
		MaxAckPending: int(d.size),
	})
	return err
}

func (d *demo) closeLog() {
	if d.nc != nil {
		d.nc.Close()
	}
	if d.srv != nil {
		d.srv.Shutdown()
		d.srv.WaitForShutdown()
	}
}

func (d *demo) openSides() error {
	for i, name := range []string{"primary", "secondary"} {
		b, err := fileblob.OpenBucket(filepath.Join(d.dir, name), &fileblob.Options{CreateDir: true})
		if err != nil {
			return err
		}
		d.raw[i] = b
	}
	d.primary, d.primaryFaults = failovertest.NewDriver(d.raw[primarySide], nil)
	d.secondary, d.secondaryFaults = failovertest.NewDriver(d.raw[secondarySide], nil)
	return nil
}

func (d *demo) closeSides() {
	for _, b := range d.raw {
		if b != nil {
			_ = b.Close()
		}
	}
}

func (d *demo) journalPath() string { return filepath.Join(d.dir, "archiver.journal") }

func (d *demo) intro() {
	fmt.Fprintln(d.out, "failoverblob: a Secor-style archiver on a JetStream log, through an outage and two crashes")
	fmt.Fprintf(d.out, "  log:       NATS JetStream in-process, stream %s in %s\n", streamName, filepath.Join(d.dir, "log"))
	fmt.Fprintf(d.out, "             durable consumer %q: ack all, ack wait %v, at most %d unacknowledged\n", consumerName, ackWait, d.size)
	fmt.Fprintf(d.out, "  primary:   fileblob %s\n", filepath.Join(d.dir, "primary"))
	fmt.Fprintf(d.out, "  secondary: fileblob %s\n", filepath.Join(d.dir, "secondary"))
	if d.memoryJournal {
		fmt.Fprintln(d.out, "  journal:   in memory, lost with each archiver")
	} else {
		fmt.Fprintf(d.out, "  journal:   %s (journal.OpenFile), reopened by each archiver\n", d.journalPath())
	}
	fmt.Fprintf(d.out, "  batches:   %d messages each, as %s<first>-<last>.jsonl; mode redirect\n\n", d.size, prefix)
}

// say prints one timeline line, stamped with the time since the start.
func (d *demo) say(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "[%6.3fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// why prints an explanation under the last timeline line.
func (d *demo) why(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "          %s\n", fmt.Sprintf(format, args...))
}

// check counts and prints a failed expectation.
func (d *demo) check(ok bool, format string, args ...any) {
	if !ok {
		d.say("FAIL: "+format, args...)
		d.mu.Lock()
		d.failures++
		d.mu.Unlock()
	}
}

// publish writes the stream of messages, each acknowledged by the log.
func (d *demo) publish(ctx context.Context) error {
	d.published = make([][]byte, 0, d.total)
	for i := uint64(1); i <= d.total; i++ {
		data := fmt.Appendf(nil, `{"order":%d,"total_cents":%d}`, i, i*7919%100000)
		ack, err := d.js.Publish(ctx, subject, data)
		if err != nil {
			return fmt.Errorf("publishing message %d: %w", i, err)
		}
		if ack.Sequence != i {
			return fmt.Errorf("message %d got sequence %d", i, ack.Sequence)
		}
		d.published = append(d.published, data)
	}
	d.say("publisher: %d messages published and acknowledged by the log, sequence 1-%d", d.total, d.total)
	return nil
}

// archiverRun is one run of the archiver, holding what its process would:
// a connection to the log, a handle on the durable consumer, a failover
// bucket with fresh breakers, a handle on the journal, and a reconciler.
type archiverRun struct {
	n      int
	f      *failoverblob.Failover
	kill   context.CancelFunc // the process dies: archiver and reconciler stop where they are
	finish context.CancelFunc // the archive is complete: the archiver stops, the reconciler goes on
	stored string             // where the last batch was stored
}

// runArchiver runs archiver #n until the script stops it.
//
// A kill stops the whole run, not only the archiver's loop, because a crash
// takes the process's failover bucket with it: its breakers, its index of
// pending repairs, and a journal kept in memory. What must survive is on
// disk: the log, the two sides, and the journal file, which the next run
// reopens (journal.OpenFile) so that its reconciler still repairs the
// batches an earlier run failed over. -journal memory shows what happens
// without it.
func (d *demo) runArchiver(n int) error {
	procCtx, kill := context.WithCancel(d.ctx)
	defer kill()
	nc, err := nats.Connect("", nats.InProcessServer(d.srv))
	if err != nil {
		return err
	}
	defer nc.Close() // like a process's connection when it dies: what it held is not acknowledged
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	consumer, err := js.Consumer(procCtx, streamName, consumerName)
	if err != nil {
		return err
	}
	var j journal.Journal = journal.NewMemory()
	if !d.memoryJournal {
		fj, err := journal.OpenFile(d.journalPath())
		if err != nil {
			return err
		}
		defer func() { _ = fj.Close() }()
		j = fj
	}
	// Each process opens its own failover bucket over the same two sides,
	// and the buckets the failover bucket owns are new handles on the
	// shared drivers (closing them does not close the sides).
	f, err := failoverblob.New(procCtx, blob.NewBucket(d.primary), blob.NewBucket(d.secondary), &failoverblob.Options{
		Journal: j,
		Breaker: &circuit.Settings{
			ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= tripAfter },
			Timeout:     breakerTimeout,
		},
		ReconcileInterval: reconcileInterval,
		OnRepair:          d.repaired,
	})
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()

	archiveCtx, finish := context.WithCancel(procCtx)
	defer finish()
	r := &archiverRun{n: n, f: f, kill: kill, finish: finish}
	var reconciler sync.WaitGroup
	reconciler.Go(func() { _ = f.Run(procCtx) })
	a := &archiver{consumer: consumer, bucket: f.Bucket(), prefix: prefix, size: d.size,
		progress: func(e event) { d.progress(r, e) }}
	err = a.Run(archiveCtx)
	if d.ctx.Err() == nil && archiveCtx.Err() != nil {
		err = nil // stopped by the script
	}
	if err == nil && procCtx.Err() == nil {
		err = d.awaitReconciler(f)
	}
	kill()
	reconciler.Wait()
	return err
}

// progress is every archiver's progress hook: it prints the timeline, counts,
// and plays the script.
func (d *demo) progress(r *archiverRun, e event) {
	b := e.batch
	n := b.last / d.size // the batch's number
	switch e.kind {
	case started:
		d.resetWriteCount()
		pending := r.f.Status().Pending
		d.say("archiver #%d: started; resumes after the committed offset, at message %d; journal: %d pending", r.n, b.first, pending)
		if pending > 0 {
			d.why("batches an earlier archiver stored on the secondary: this one's reconciler repairs the primary")
		}
	case wrote:
		if r.n == 1 && n == killMidBatch && e.written == int(d.size/2) {
			d.say("archiver #1: KILLED while writing messages %d-%d, after %d of them", b.first, b.last, e.written)
			d.count(func(f *figures) { f.aborted++ })
			r.kill()
		}
	case stored:
		r.stored = d.storedBatch(b)
		if r.n == 2 && n == killBeforeCommit {
			d.say("archiver #2: messages %d-%d stored %s; KILLED before committing them", b.first, b.last, r.stored)
			r.kill()
		}
	case committed:
		d.say("archiver #%d: messages %d-%d stored %s, committed", r.n, b.first, b.last, r.stored)
		if b.redelivered > 0 {
			d.why("%d of them were redeliveries of messages the killed archiver held", b.redelivered)
		}
		switch {
		case r.n == 1 && n == outageAfter:
			d.primaryFaults.Outage(nil)
			d.say("primary: DOWN (every call to it is refused)")
		case r.n == 3 && n == healAfter:
			d.heal(r)
		case b.last == d.total:
			d.say("archiver #%d: all %d messages committed; the reconciler finishes the repairs", r.n, d.total)
			r.finish()
		}
	}
}

// resetWriteCount starts counting the secondary's writes afresh.
func (d *demo) resetWriteCount() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.secWrites = d.secondaryFaults.Calls(failovertest.OpWrite)
}

func (d *demo) count(fn func(*figures)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fn(&d.fig)
}

// storedBatch counts an acknowledged batch write and says where it went.
func (d *demo) storedBatch(b *batch) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	calls := d.secondaryFaults.Calls(failovertest.OpWrite)
	failedOver := calls > d.secWrites
	d.secWrites = calls
	d.fig.writes++
	d.fig.redelivered += b.redelivered
	where := "on the primary"
	if failedOver {
		d.fig.failedOver++
		where = "on the secondary (failed over)"
	}
	if d.stored[b.first] > 0 {
		d.fig.rewrites++
		where += " again, under the same name"
	}
	d.stored[b.first]++
	return where
}

// heal brings the primary back, and waits until run r's breaker on it
// lets a call through (after breakerTimeout), as a real recovery is noticed.
func (d *demo) heal(r *archiverRun) {
	d.primaryFaults.Heal()
	d.say("primary: healed; archiver #%d's breaker on it is %s", r.n, r.f.Status().Primary.State)
	deadline := time.Now().Add(breakerTimeout + 5*time.Second)
	for r.f.Status().Primary.State == circuit.StateOpen && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	d.say("archiver #%d: its breaker on the primary is %s: writes go there again", r.n, r.f.Status().Primary.State)
}

// awaitReconciler waits until the reconciler has settled every repair.
func (d *demo) awaitReconciler(f *failoverblob.Failover) error {
	deadline := time.Now().Add(30 * time.Second)
	for f.Status().Pending > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("the reconciler left %d journal entries pending", f.Status().Pending)
		}
		select {
		case <-d.ctx.Done():
			return d.ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	d.say("reconciler: nothing pending")
	return nil
}

// repaired is every failover bucket's OnRepair hook.
func (d *demo) repaired(r failoverblob.Repair) {
	what := "the primary already holds the newest copy"
	if r.Action == failoverblob.ActionCopied {
		what = "copied to the primary"
		d.count(func(f *figures) { f.copied++ })
	}
	if r.Cleaned {
		what += ", temporary copy removed from the secondary"
		d.count(func(f *figures) { f.cleaned++ })
	}
	d.say("reconciler: batch %s: %s", batchRange(prefix, r.Key), what)
}

// committedOffset reads the consumer's ack floor from the log.
func (d *demo) committedOffset() (uint64, error) {
	c, err := d.js.Consumer(d.ctx, streamName, consumerName)
	if err != nil {
		return 0, err
	}
	info, err := c.Info(d.ctx)
	if err != nil {
		return 0, err
	}
	return info.AckFloor.Stream, nil
}

// exists reports whether side i holds key.
func (d *demo) exists(i int, key string) bool {
	ok, err := d.raw[i].Exists(d.ctx, key)
	d.check(err == nil, "checking %s: %v", key, err)
	return ok
}

// afterKill checks that the kill committed nothing past the batch before
// batch n.
func (d *demo) afterKill(n uint64) error {
	got, err := d.committedOffset()
	if err != nil {
		return err
	}
	want := (n - 1) * d.size
	d.why("the log's committed offset is %d", got)
	d.check(got == want, "committed offset %d after the kill, want %d", got, want)
	return nil
}

func (d *demo) afterMidBatchKill() error {
	first, last := (killMidBatch-1)*d.size+1, killMidBatch*d.size
	key := objectName(prefix, first, last)
	onP, onS := d.exists(primarySide, key), d.exists(secondarySide, key)
	d.why("the write was aborted: the batch's object is on the primary: %t, on the secondary: %t", onP, onS)
	d.check(!onP && !onS, "the aborted write left %s behind (primary: %t, secondary: %t)", key, onP, onS)
	return d.afterKill(killMidBatch)
}

func (d *demo) afterKillBeforeCommit() error {
	first, last := (killBeforeCommit-1)*d.size+1, killBeforeCommit*d.size
	key := objectName(prefix, first, last)
	onS := d.exists(secondarySide, key)
	d.why("the batch's object is on the secondary: %t", onS)
	d.check(onS, "the batch stored before the kill, %s, is not on the secondary", key)
	return d.afterKill(killBeforeCommit)
}

func (d *demo) finalCheck() error {
	d.say("final check")
	problems, batches, err := verifyArchive(d.ctx, d.raw[primarySide], prefix, d.published)
	if err != nil {
		return err
	}
	for i, p := range problems {
		if i == 10 {
			d.check(false, "... and %d more problems", len(problems)-i)
			break
		}
		d.check(false, "primary: %s", p)
	}
	d.why("the primary holds %d batches; %d problems with them", batches, len(problems))

	left, _, err := listBatches(d.ctx, d.raw[secondarySide], prefix)
	if err != nil {
		return err
	}
	d.why("the secondary holds %d batches (the reconciler removes its temporary copies)", len(left))
	d.check(len(left) == 0, "temporary copies left on the secondary: %v", left)
	if !d.memoryJournal {
		j, err := journal.OpenFile(d.journalPath())
		if err != nil {
			return err
		}
		entries, err := j.List(d.ctx)
		_ = j.Close()
		if err != nil {
			return err
		}
		d.why("the journal file holds %d entries", len(entries))
		d.check(len(entries) == 0, "%d journal entries left", len(entries))
	}
	d.mu.Lock()
	d.fig.batches = batches
	d.mu.Unlock()
	return nil
}

func (d *demo) printFigures() {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.fig
	fmt.Fprintf(d.out, "\nFigures\n")
	fmt.Fprintf(d.out, "  messages published        %d\n", d.total)
	fmt.Fprintf(d.out, "  batches on the primary    %d\n", f.batches)
	fmt.Fprintf(d.out, "  batch writes acknowledged %d, of which %d replayed an uncommitted batch under the same name\n", f.writes, f.rewrites)
	fmt.Fprintf(d.out, "  batch writes aborted      %d (by a kill)\n", f.aborted)
	fmt.Fprintf(d.out, "  messages redelivered      %d (held by a killed archiver, not committed)\n", f.redelivered)
	fmt.Fprintf(d.out, "  failed-over writes        %d (acknowledged by the secondary)\n", f.failedOver)
	fmt.Fprintf(d.out, "  reconciler                %d batches copied to the primary, %d temporary copies removed\n", f.copied, f.cleaned)
}
