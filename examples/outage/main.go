// Command outage walks a failover bucket through an outage of its primary and
// back, printing a timeline of what happens and why, and checks at the end
// that nothing acknowledged was lost. On the way it shows the two things an
// operator on call watches: the active probe noticing that the primary is
// back (its breaker closes with no user call and without waiting out the
// breaker's timeout), and the OpenTelemetry metrics the bucket reports, read
// with the SDK's ManualReader the way an exporter would: calls to each side
// by outcome, failovers, breaker states, the journal's depth and oldest age
// (the recovery point), and the reconciler's repairs.
//
// With no flags it needs no cloud account and no network: the primary and
// the secondary are fileblob buckets in a fresh temporary directory, which is
// removed afterwards, and the outage is injected in process by a
// fault-injecting wrapper (failovertest) in front of the primary.
//
//	go run ./examples/outage
//
// With -emulators the primary is an S3 emulator and the secondary a GCS
// emulator, both started in-process on loopback and reached through the real
// AWS and Google SDK clients over HTTP, and the outage takes the S3 emulator
// itself down: its port is closed, so connections are refused (-fault
// closed, the default), or it answers every request with a 503 SlowDown, as
// S3 does when it sheds load (-fault 503).
//
//	go run ./examples/outage -emulators
//	go run ./examples/outage -emulators -fault 503
//
// With -primary and -secondary it runs against the buckets those URLs open
// through the providers package: s3://, gs://, azblob:// (with the provider
// packages this program imports, providers/s3, providers/gcs and
// providers/azure), file:// and mem://,
// with credentials from each SDK's usual chain. The outage is still
// simulated, by a fault-injecting wrapper in front of each side; the
// walkthrough's objects go under a fresh prefix and are deleted from both
// buckets afterwards (the library's own probe canary and journal entries go
// under .failover/ and are removed as the walkthrough settles them).
//
//	go run ./examples/outage -primary 's3://my-bucket?region=us-east-1' -secondary 'gs://my-dr-bucket'
//	go run ./examples/outage -primary 'file:///tmp/p?create_dir=1' -secondary 'file:///tmp/s?create_dir=1'
//
// The program exits with status 1 if any check fails. -h says what it shows
// and lists the flags.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/internal/emulators"
	"github.com/failoverblob/failoverblob/providers"
	_ "github.com/failoverblob/failoverblob/providers/azure" // azblob:// for -primary, -secondary
	_ "github.com/failoverblob/failoverblob/providers/gcs"   // gs://
	_ "github.com/failoverblob/failoverblob/providers/s3"    // s3://
)

// The breaker of each side trips after tripAfter outages in a row and stays
// open for breakerTimeout, longer than the whole walkthrough: the primary's
// breaker closes because Run's probe, every probeInterval, finds the primary
// answering again, not because the timeout ran out. Production settings are
// the circuit package's defaults and Options.ProbeInterval's (5 s).
const (
	tripAfter      = 2
	breakerTimeout = time.Minute
	probeInterval  = 100 * time.Millisecond
	// reconcileInterval spaces Run's reconcile passes further apart than the
	// walkthrough lasts, so that the repair it shows is the one step 6 asks
	// for with Drain. A service keeps the default (10 s).
	reconcileInterval = time.Hour
	// probeWait bounds the wait for the probe to notice the recovery.
	probeWait = 10 * time.Second
)

// usage is the -h text: what the walkthrough shows, before the flags.
const usage = `usage: outage [-emulators [-fault closed|503] | -primary URL -secondary URL]

Walks a failover bucket through an outage of its primary and back, printing
a timeline of what happens and why:

  1. the primary is healthy: writes land on it, stamped with a version;
  2. the primary goes down: a write fails over to the secondary, recorded in
     the journal, and the primary's breaker opens;
  3. writes and deletes go around the primary, which the open breaker keeps
     every call away from;
  4. reads still return the newest data (or say "unavailable" rather than
     answer wrongly);
  5. the primary comes back: the bucket's active probe notices it with no
     user traffic, well before the breaker's timeout, and closes the breaker;
  6. the reconciler repairs the primary (copies, tombstones, temporary
     copies removed);
  7. a final check that nothing acknowledged was lost and no deleted object
     came back;
  8. what a dashboard saw: the OpenTelemetry metrics the bucket reported
     (calls by outcome, failovers, breaker state, journal pending and oldest
     age, reconciled objects and bytes), checked against the walkthrough.

By default both sides are fileblob buckets in a temporary directory and the
outage is injected in process. -emulators uses in-process S3 and GCS
emulators over HTTP and takes the S3 emulator itself down. -primary and
-secondary run it on real buckets (objects under a fresh prefix, removed
afterwards). Exits with status 1 if any check fails.

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
		fmt.Fprintln(os.Stderr, "outage:", err)
		os.Exit(1)
	}
}

// emulatorFaults are the -fault values: how the S3 emulator goes down.
var emulatorFaults = map[string]struct {
	fault emulators.Fault
	says  string
}{
	"closed": {emulators.Closed, "the S3 emulator's port is closed (its listener stopped): connections are refused"},
	"503":    {emulators.Unavailable, "the S3 emulator answers every request with 503 SlowDown, as S3 does when it sheds load"},
}

// config is what the command line asks for.
type config struct {
	primaryURL, secondaryURL string // both empty: fileblob buckets in a temporary directory
	emulators                bool
	fault                    emulators.Fault // with emulators: how the S3 emulator goes down
	faultSays                string
}

// parseFlags parses args into a config; -h returns flag.ErrHelp after
// printing the usage to w.
func parseFlags(w io.Writer, args []string) (config, error) {
	fs := flag.NewFlagSet("outage", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	var c config
	fs.StringVar(&c.primaryURL, "primary", "", "URL of the primary bucket (default: a fileblob bucket in a temporary directory)")
	fs.StringVar(&c.secondaryURL, "secondary", "", "URL of the secondary bucket (default: a fileblob bucket in a temporary directory)")
	fs.BoolVar(&c.emulators, "emulators", false, "use in-process S3 (primary) and GCS (secondary) emulators, reached over HTTP by the real SDK clients, and take the S3 emulator down for the outage")
	faultName := fs.String("fault", "closed", "with -emulators, how the S3 emulator goes down: closed (its port closed, connections refused) or 503 (every request answered 503 SlowDown)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	faultSet := false
	fs.Visit(func(f *flag.Flag) { faultSet = faultSet || f.Name == "fault" })
	ef, known := emulatorFaults[*faultName]
	c.fault, c.faultSays = ef.fault, ef.says
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	case (c.primaryURL == "") != (c.secondaryURL == ""):
		return c, errors.New("give both -primary and -secondary, or neither")
	case c.emulators && c.primaryURL != "":
		return c, errors.New("give -emulators or -primary and -secondary, not both")
	case !known:
		return c, fmt.Errorf("-fault %q: want closed or 503", *faultName)
	case faultSet && !c.emulators:
		return c, errors.New("-fault needs -emulators (other runs inject the outage in process)")
	}
	return c, nil
}

// run parses args, opens the two sides, walks through the outage, and
// returns an error if the walkthrough could not be completed or any check
// failed. Everything is printed to w.
func run(ctx context.Context, w io.Writer, args []string) error {
	c, err := parseFlags(w, args)
	if err != nil {
		return err
	}
	d := &demo{ctx: ctx, out: w, start: time.Now(), want: map[string]string{}, deleted: map[string]bool{}}
	var cleanup cleanups
	defer cleanup.run()
	where, err := d.openSides(c, &cleanup)
	if err != nil {
		return err
	}
	if err := d.openFailover(&cleanup); err != nil {
		return err
	}

	fmt.Fprintln(w, "failoverblob: an outage of the primary, from start to repair")
	fmt.Fprintf(w, "  primary:   %s\n", where[primarySide])
	fmt.Fprintf(w, "  secondary: %s\n", where[secondarySide])
	fmt.Fprintf(w, "  mode:      %s; each breaker trips after %d outages in a row and stays open %v,\n",
		d.f.Status().Mode, tripAfter, breakerTimeout)
	fmt.Fprintf(w, "             unless Run's probe (every %v while a breaker is not closed) finds its side answering\n", probeInterval)

	for _, step := range []func() error{
		d.healthy, d.primaryFails, d.redirected, d.reads, d.recovers, d.reconcile, d.finalCheck, d.dashboard,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	if d.failures > 0 {
		return fmt.Errorf("%d checks failed", d.failures)
	}
	fmt.Fprintf(w, "\nOK: nothing acknowledged was lost (objects checked: %d, deletes checked: %d, %.3fs)\n",
		len(d.want), len(d.deleted), time.Since(d.start).Seconds())
	return nil
}

// cleanups are run last first, as defers are.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }

func (c *cleanups) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
}

// openSides opens the two sides as c asks, sets how the walkthrough takes
// the primary down, and returns where each side is, for the timeline.
func (d *demo) openSides(c config, cleanup *cleanups) (where [2]string, err error) {
	if c.emulators {
		s3srv, err := emulators.NewS3("outage-primary")
		if err != nil {
			return where, err
		}
		cleanup.add(s3srv.Close)
		gcssrv, err := emulators.NewGCS("outage-secondary")
		if err != nil {
			return where, err
		}
		cleanup.add(gcssrv.Close)
		c.primaryURL = "s3://outage-primary?endpoint=" + url.QueryEscape(s3srv.URL()) + "&use_path_style=true&region=us-east-1&anonymous=true"
		c.secondaryURL = "gs://outage-secondary?endpoint=" + url.QueryEscape(gcssrv.URL())
		d.outage = outage{
			down:     func() { s3srv.Set(c.fault) },
			heal:     func() { s3srv.Set(emulators.Healthy) },
			downSays: c.faultSays,
			healSays: "the S3 emulator serves again, on the same port",
			overWire: true,
		}
	}
	if c.primaryURL == "" {
		dir, err := os.MkdirTemp("", "failoverblob-outage-")
		if err != nil {
			return where, err
		}
		cleanup.add(func() { _ = os.RemoveAll(dir) })
		for i, name := range []string{"primary", "secondary"} {
			path := filepath.Join(dir, name)
			b, err := fileblob.OpenBucket(path, &fileblob.Options{CreateDir: true})
			if err != nil {
				return where, err
			}
			cleanup.add(func() { _ = b.Close() })
			d.raw[i], where[i] = b, "fileblob "+path
		}
		return where, nil
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	d.prefix = "failoverblob-outage-" + hex.EncodeToString(id[:]) + "/"
	for i, u := range []string{c.primaryURL, c.secondaryURL} {
		b, err := providers.OpenBucket(d.ctx, u)
		if err != nil {
			return where, err
		}
		cleanup.add(func() { _ = b.Close() })
		d.raw[i], where[i] = b, u+" under "+d.prefix
	}
	// Runs before the buckets are closed: leave them as they were.
	cleanup.add(d.removeDemoObjects)
	return where, nil
}

// openFailover opens the failover bucket over the sides, reporting its
// metrics to the walkthrough's dashboard, and starts Run in the background,
// as a service runs it (failoverblob.OpenBucket and URL-opened buckets do):
// it probes a side whose breaker is not closed every probeInterval.
// Without an outage of its own (the emulators'), each side goes behind a
// fault injector, so the walkthrough can take the primary down.
func (d *demo) openFailover(cleanup *cleanups) error {
	primary, secondary := d.raw[primarySide], d.raw[secondarySide]
	if d.outage.down == nil {
		var faults *failovertest.Injector
		primary, faults = failovertest.Wrap(d.raw[primarySide], nil)
		secondary, _ = failovertest.Wrap(d.raw[secondarySide], nil)
		d.outage = outage{
			down:     func() { faults.Outage(nil) },
			heal:     faults.Heal,
			downSays: "outage injected in process: every call to the primary fails like a refused connection",
			healSays: "the injected outage is over",
		}
	}

	// The bucket's metrics go to an SDK meter provider read by hand, as an
	// exporter would read it; step 8 shows what a dashboard saw.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cleanup.add(func() { _ = mp.Shutdown(context.WithoutCancel(d.ctx)) })
	d.dash = &dashboard{ctx: d.ctx, reader: reader}

	f, err := failoverblob.New(d.ctx, primary, secondary, &failoverblob.Options{
		Breaker: &circuit.Settings{
			ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= tripAfter },
			Timeout:     breakerTimeout,
		},
		ProbeInterval:     probeInterval,
		ReconcileInterval: reconcileInterval,
		OnRepair:          d.repaired,
		MeterProvider:     mp,
	})
	if err != nil {
		return err
	}
	cleanup.add(func() { _ = f.Close() })
	d.f, d.b = f, f.Bucket()

	runCtx, stopRun := context.WithCancel(d.ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- f.Run(runCtx) }()
	cleanup.add(func() { // before the bucket is closed
		stopRun()
		<-runDone
	})
	// Run's first pass, at once, finds nothing pending; the walkthrough
	// waits for it, so that its outage does not begin before the pass ran
	// (on a busy machine the pass could otherwise run late, in step 5, and
	// do the repair step 6 shows).
	return d.waitFor(func(st failoverblob.Status) bool { return st.Reconcile.Passes > 0 }, "Run's first reconcile pass")
}

// waitFor polls the bucket's Status, which does no I/O, until done holds,
// for at most probeWait.
func (d *demo) waitFor(done func(failoverblob.Status) bool, what string) error {
	for start := time.Now(); !done(d.f.Status()); {
		if time.Since(start) > probeWait {
			return fmt.Errorf("%s did not happen within %v", what, probeWait)
		}
		select {
		case <-d.ctx.Done():
			return d.ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// Indexes of the sides in demo.raw.
const (
	primarySide   = 0
	secondarySide = 1
)

// outage takes the primary down and brings it back, and says how.
type outage struct {
	down, heal         func()
	downSays, healSays string
	// overWire says the outage is the S3 emulator's own, met over the
	// network: the primary as stored cannot be looked at meanwhile.
	overWire bool
	on       bool // between down and heal
}

// demo is one walkthrough: the raw buckets as stored, the failover bucket in
// front of them, and what was acknowledged, to check against at the end.
type demo struct {
	ctx    context.Context
	out    io.Writer
	start  time.Time
	prefix string // every key of the walkthrough starts with it

	raw    [2]*blob.Bucket // the sides as stored, not through the fault injectors
	outage outage
	f      *failoverblob.Failover
	b      *blob.Bucket
	dash   *dashboard

	// The metrics as a dashboard saw them during the outage (step 3), and
	// the reconciler's report (step 6).
	duringOutage snapshot
	report       failoverblob.Report

	want     map[string]string // acknowledged writes: key (without prefix) → newest content
	deleted  map[string]bool   // acknowledged deletes, by key without prefix
	failures int
}

// step starts a section of the timeline.
func (d *demo) step(title string) { fmt.Fprintf(d.out, "\n%s\n", title) }

// say prints one timeline line, stamped with the time since the start.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%6.3fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// why prints an explanation under the last timeline line.
func (d *demo) why(format string, args ...any) {
	fmt.Fprintf(d.out, "          %s\n", fmt.Sprintf(format, args...))
}

// check counts and prints a failed expectation.
func (d *demo) check(ok bool, format string, args ...any) {
	if !ok {
		d.failures++
		d.say("FAIL: "+format, args...)
	}
}

// content returns what side i holds for key (without prefix), quoted, "-",
// or "(unreachable)" while the side cannot be read: the primary is not
// even asked while the emulator is down, since its SDK would retry.
func (d *demo) content(i int, key string) string {
	if i == primarySide && d.outage.overWire && d.outage.on {
		return "(unreachable)"
	}
	b, err := d.raw[i].ReadAll(d.ctx, d.prefix+key)
	switch {
	case gcerrors.Code(err) == gcerrors.NotFound:
		return "-"
	case err != nil:
		return "(unreachable)"
	}
	return fmt.Sprintf("%q", b)
}

// sides describes where key is stored, reading the raw buckets.
func (d *demo) sides(key string) string {
	return fmt.Sprintf("primary: %s, secondary: %s", d.content(primarySide, key), d.content(secondarySide, key))
}

// read returns what the failover bucket serves for key: its content, quoted,
// "not found" or "unavailable".
func (d *demo) read(key string) string {
	b, err := d.b.ReadAll(d.ctx, d.prefix+key)
	switch {
	case errors.Is(err, failoverblob.ErrUnavailable):
		return "unavailable"
	case gcerrors.Code(err) == gcerrors.NotFound:
		return "not found"
	case err != nil:
		return "error: " + err.Error()
	}
	return fmt.Sprintf("%q", b)
}

// put writes through the failover bucket and remembers what was
// acknowledged.
func (d *demo) put(key, value string) error {
	if err := d.b.WriteAll(d.ctx, d.prefix+key, []byte(value), nil); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	d.want[key] = value
	delete(d.deleted, key)
	d.say("put %s %q: acknowledged; %s", key, value, d.sides(key))
	return nil
}

// del deletes through the failover bucket and remembers what was
// acknowledged.
func (d *demo) del(key string) error {
	if err := d.b.Delete(d.ctx, d.prefix+key); err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	delete(d.want, key)
	d.deleted[key] = true
	d.say("delete %s: acknowledged; %s", key, d.sides(key))
	return nil
}

func (d *demo) breaker() failoverblob.SideStatus { return d.f.Status().Primary }

func (d *demo) healthy() error {
	d.step("1. The primary is healthy: writes land on it")
	for _, kv := range [][2]string{
		{"orders/1.json", "total=10"},
		{"orders/2.json", "total=20"},
		{"orders/3.json", "total=30"},
	} {
		if err := d.put(kv[0], kv[1]); err != nil {
			return err
		}
		d.check(d.content(primarySide, kv[0]) != "-", "%s is not on the primary", kv[0])
		d.check(d.content(secondarySide, kv[0]) == "-", "%s is on the secondary too", kv[0])
	}

	// Versions order the writes; the reconciler relies on them, so the
	// buckets must keep object metadata (fileblob keeps it in .attrs files).
	key := d.prefix + "orders/1.json"
	attrs, err := d.raw[primarySide].Attributes(d.ctx, key)
	if err != nil {
		return err
	}
	stamp := attrs.Metadata[failoverblob.VersionMetadataKey]
	v, err := failoverblob.ParseVersion(stamp)
	if err != nil || v.IsZero() {
		return fmt.Errorf("the primary did not keep the version stamped in %s's metadata (got %q): "+
			"the buckets must store object metadata", key, stamp)
	}
	seen, err := d.b.Attributes(d.ctx, key)
	if err != nil {
		return err
	}
	_, visible := seen.Metadata[failoverblob.VersionMetadataKey]
	d.check(!visible, "the version metadata is visible through the failover bucket")
	d.say("orders/1.json is stored with metadata %s=%s", failoverblob.VersionMetadataKey, stamp)
	d.why("the version (clock reading + writer id) orders writes; callers' Attributes do not show it")
	return nil
}

func (d *demo) primaryFails() error {
	d.step("2. The primary goes down")
	d.outage.down()
	d.outage.on = true
	d.say("primary: %s", d.outage.downSays)

	if err := d.put("orders/4.json", "total=40"); err != nil {
		return err
	}
	d.why("the write failed on the primary, was replayed to the secondary, and a repair")
	d.why("was recorded in the journal before Close returned nil")
	st := d.breaker()
	d.say("breaker: primary %s, outages counted: %d of the %d that trip it", st.State, st.Failures, tripAfter)
	d.check(d.content(secondarySide, "orders/4.json") != "-", "orders/4.json is not on the secondary")

	if err := d.put("orders/5.json", "total=50"); err != nil {
		return err
	}
	st = d.breaker()
	d.say("breaker: primary %s after %d outages in a row", st.State, tripAfter)
	d.why("last error: %s", st.LastError)
	d.check(st.State == circuit.StateOpen, "primary breaker is %s, want open", st.State)
	return nil
}

func (d *demo) redirected() error {
	d.step("3. Writes and deletes go around the primary")
	before := d.dash.snapshot()
	if err := d.put("orders/2.json", "total=25"); err != nil {
		return err
	}
	d.why("the primary still holds the old object; it is stale until reconciled")
	if err := d.del("orders/3.json"); err != nil {
		return err
	}
	d.why("recorded as a tombstone in the journal: the primary must not bring it back")
	now := d.dash.snapshot()
	made := now.primaryCallsMade() - before.primaryCallsMade()
	refused := now.sum(metricCalls, attrIs("side", "primary"), attrIs("outcome", "rejected-by-breaker")) -
		before.sum(metricCalls, attrIs("side", "primary"), attrIs("outcome", "rejected-by-breaker"))
	d.say("calls to the primary meanwhile: %.0f made, %.0f refused by its open breaker", made, refused)
	d.why("an open breaker refuses at once; Run's probe checks the primary around it, with a canary")
	d.check(made == 0, "%.0f calls were made to the primary while its breaker was open", made)
	d.check(refused > 0, "no call was refused by the primary's open breaker")

	st := d.f.Status()
	d.say("journal: %d pending, the oldest recorded %v ago", st.Pending, time.Since(st.OldestPending).Round(time.Millisecond))
	d.why("the age of the oldest pending entry is the live recovery-point figure")
	d.check(st.Pending == 4, "%d journal entries pending, want 4", st.Pending)
	d.duringOutage = now
	d.say("dashboard: breaker.state{side=primary}=%.0f journal.pending=%.0f journal.oldest_age=%.3fs failovers=%.0f",
		now.value(metricBreaker, attrIs("side", "primary")), now.value(metricPending), now.value(metricOldestAge),
		now.sum(metricFailovers))
	d.why("the same figures, as the bucket's OpenTelemetry metrics report them (step 8 has the rest)")
	d.check(now.value(metricPending) == float64(st.Pending), "journal.pending is %.0f, Status says %d",
		now.value(metricPending), st.Pending)
	return nil
}

func (d *demo) reads() error {
	d.step("4. Reads still return the newest data")
	stale := "although the stale primary still has " + d.content(primarySide, "orders/3.json")
	if d.outage.overWire {
		stale = "although the stale primary, out of reach now, still has it"
	}
	for _, c := range []struct{ key, want, why string }{
		{"orders/2.json", `"total=25"`, "overwritten during the outage: read from the secondary, which holds the newest version"},
		{"orders/3.json", "not found", "deleted during the outage, " + stale},
		{"orders/4.json", `"total=40"`, "written during the outage: only the secondary has it"},
		{"orders/1.json", "unavailable", "only on the primary: in redirect mode the secondary holds just the outage's writes, so a miss there is not proof of absence"},
	} {
		got := d.read(c.key)
		d.say("get %s: %s", c.key, got)
		d.why("%s", c.why)
		d.check(got == c.want, "get %s = %s, want %s", c.key, got, c.want)
	}
	_, err := d.b.List(&blob.ListOptions{Prefix: d.prefix}).Next(d.ctx)
	d.say("list: unavailable=%t", errors.Is(err, failoverblob.ErrUnavailable))
	d.why("without the primary a listing could be silently partial (Options.BestEffortList opts into that)")
	d.check(errors.Is(err, failoverblob.ErrUnavailable), "list during the outage: %v, want ErrUnavailable", err)
	return nil
}

func (d *demo) recovers() error {
	d.step("5. The primary recovers: the probe notices, with no user traffic")
	before := d.dash.snapshot()
	d.outage.heal()
	d.outage.on = false
	healed := time.Now()
	st := d.breaker()
	d.say("primary: %s; its breaker is still %s", d.outage.healSays, st.State)
	d.why("left alone it would refuse calls until %v after it opened; no call is made meanwhile", breakerTimeout)

	// Status does no I/O: the wait only watches the breaker that Run's
	// probe closes. Its timing out is reported by the check below.
	closed := func(st failoverblob.Status) bool { return st.Primary.State == circuit.StateClosed }
	if err := d.waitFor(closed, "the probe closing the primary's breaker"); err != nil && d.ctx.Err() != nil {
		return err
	}
	st = d.breaker()
	made := d.dash.snapshot().primaryCallsMade() - before.primaryCallsMade()
	d.say("breaker: primary %s %v after the primary came back", st.State, time.Since(healed).Round(time.Millisecond))
	d.why("Run's probe wrote, read back and removed its canary under %sprobe/, around the breaker,", failoverblob.ReservedPrefix)
	d.why("and closed the breaker when the primary answered: no user call, no wait for the %v timeout", breakerTimeout)
	d.check(st.State == circuit.StateClosed, "primary breaker is %s %v after healing, want closed by the probe", st.State, probeWait)
	d.check(made == 0, "%.0f calls were made to the primary through its breaker before it closed, want none", made)

	if err := d.put("orders/4.json", "total=44"); err != nil {
		return err
	}
	d.why("the write went straight to the primary; the secondary still holds the older")
	d.why("redirected copy of orders/4.json, whose older version the reconciler will not copy over it")
	d.check(d.content(primarySide, "orders/4.json") == `"total=44"`, "orders/4.json on the primary is %s, want \"total=44\"",
		d.content(primarySide, "orders/4.json"))
	return nil
}

// repaired is the failover bucket's OnRepair hook.
func (d *demo) repaired(r failoverblob.Repair) {
	key := strings.TrimPrefix(r.Key, d.prefix)
	var what string
	switch r.Action {
	case failoverblob.ActionCopied:
		what = fmt.Sprintf("copied %d bytes from the %s", r.Bytes, r.Side.Other())
	case failoverblob.ActionDeleted:
		what = "tombstone applied"
	default:
		what = "already holds the newest version"
	}
	if r.Cleaned {
		what += ", temporary copy removed"
	}
	d.say("repaired %s on the %s: %s (journal entries: %d)", key, r.Side, what, r.Entries)
}

func (d *demo) reconcile() error {
	d.step("6. Reconcile repairs the primary (Drain now; Run, in the background, would on its next pass)")
	rep, err := d.f.Drain(d.ctx)
	if err != nil {
		return fmt.Errorf("reconciling: %w", err)
	}
	d.say("report: Keys=%d Copied=%d Bytes=%d Deleted=%d Cleaned=%d Remaining=%d",
		rep.Keys, rep.Copied, rep.Bytes, rep.Deleted, rep.Cleaned, rep.Remaining)
	d.why("orders/2 and orders/5 copied; the tombstone of orders/3 applied; orders/4 left as is;")
	d.why("the temporary copies of orders/2, 4 and 5 removed from the secondary")
	d.report = rep
	d.check(rep.Remaining == 0, "%d journal entries remain", rep.Remaining)
	d.check(rep.Keys == 4 && rep.Copied == 2 && rep.Deleted == 1 && rep.Cleaned == 3,
		"report %+v, want 4 keys, 2 copied, 1 deleted, 3 cleaned", rep)
	return nil
}

// list returns the keys of b under the walkthrough's prefix (without it),
// leaving out the library's reserved keys.
func (d *demo) list(b *blob.Bucket) ([]string, error) {
	var keys []string
	it := b.List(&blob.ListOptions{Prefix: d.prefix})
	for {
		obj, err := it.Next(d.ctx)
		if err == io.EOF {
			return keys, nil
		}
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(obj.Key, failoverblob.ReservedPrefix) {
			keys = append(keys, strings.TrimPrefix(obj.Key, d.prefix))
		}
	}
}

func (d *demo) finalCheck() error {
	d.step("7. Final check")
	var listed [3][]string
	for i, b := range []*blob.Bucket{d.raw[primarySide], d.raw[secondarySide], d.b} {
		keys, err := d.list(b)
		if err != nil {
			return err
		}
		listed[i] = keys
	}
	show := func(keys []string) string {
		if len(keys) == 0 {
			return "(empty)"
		}
		return strings.Join(keys, " ")
	}
	d.say("primary lists:   %s", show(listed[0]))
	d.say("secondary lists: %s", show(listed[1]))
	d.say("failover lists:  %s", show(listed[2]))

	var want []string
	for k := range d.want {
		want = append(want, k)
	}
	sort.Strings(want)
	d.check(strings.Join(listed[0], " ") == strings.Join(want, " "), "the primary lists %v, want %v", listed[0], want)
	d.check(strings.Join(listed[2], " ") == strings.Join(want, " "), "the failover bucket lists %v, want %v", listed[2], want)
	d.check(len(listed[1]) == 0, "temporary copies left on the secondary: %v", listed[1])

	for _, k := range want {
		v := fmt.Sprintf("%q", d.want[k])
		d.check(d.content(primarySide, k) == v, "%s on the primary is %s, want %s", k, d.content(primarySide, k), v)
		d.check(d.read(k) == v, "%s through the failover bucket is %s, want %s", k, d.read(k), v)
	}
	for k := range d.deleted {
		for i, name := range []string{"primary", "secondary"} {
			d.check(d.content(i, k) == "-", "deleted %s is back on the %s: %s", k, name, d.content(i, k))
		}
		d.check(d.read(k) == "not found", "deleted %s reads as %s", k, d.read(k))
	}
	st := d.f.Status()
	d.check(st.Pending == 0, "%d journal entries pending", st.Pending)
	d.check(st.Primary.State == circuit.StateClosed && st.Secondary.State == circuit.StateClosed,
		"breakers: primary %s, secondary %s; want both closed", st.Primary.State, st.Secondary.State)
	d.say("every acknowledged write is on the primary with its bytes, deleted keys are gone from both sides,")
	d.why("no temporary copies remain on the secondary, and the journal is empty")
	return nil
}

// removeDemoObjects deletes the walkthrough's objects from both buckets the
// caller named.
func (d *demo) removeDemoObjects() {
	ctx := context.WithoutCancel(d.ctx)
	for _, b := range d.raw {
		it := b.List(&blob.ListOptions{Prefix: d.prefix})
		for {
			obj, err := it.Next(ctx)
			if err != nil {
				break
			}
			_ = b.Delete(ctx, obj.Key)
		}
	}
}
