// Command outage walks a failover bucket through an outage of its primary and
// back, printing a timeline of what happens and why, and checks at the end
// that nothing acknowledged was lost.
//
// With no flags it needs no cloud account and no network: the primary and
// the secondary are fileblob buckets in a fresh temporary directory, which is
// removed afterwards.
//
//	go run ./examples/outage
//
// With -emulators the primary is an S3 emulator and the secondary a GCS
// emulator, both started in-process on loopback and reached through the real
// AWS and Google SDK clients over HTTP:
//
//	go run ./examples/outage -emulators
//
// With -primary and -secondary it runs against the buckets those URLs open
// through the providers package: s3://, gs://, azblob:// (with the provider
// packages this program imports, providers/s3, providers/gcs and
// providers/azure), file:// and mem://,
// with credentials from each SDK's usual chain. The outage is still
// simulated, by a fault-injecting wrapper in front of each side; the
// walkthrough's objects go under a fresh prefix and are deleted from both
// buckets afterwards.
//
//	go run ./examples/outage -primary 's3://my-bucket?region=us-east-1' -secondary 'gs://my-dr-bucket'
//	go run ./examples/outage -primary 'file:///tmp/p?create_dir=1' -secondary 'file:///tmp/s?create_dir=1'
//
// The program exits with status 1 if any check fails.
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
// open for breakerTimeout, short enough for the walkthrough to take well
// under a second. Production settings are the circuit package's defaults.
const (
	tripAfter      = 2
	breakerTimeout = 500 * time.Millisecond
)

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

// run parses args, opens the two sides, walks through the outage, and
// returns an error if the walkthrough could not be completed or any check
// failed. Everything is printed to w.
func run(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("outage", flag.ContinueOnError)
	fs.SetOutput(w)
	primaryURL := fs.String("primary", "", "URL of the primary bucket (default: a fileblob bucket in a temporary directory)")
	secondaryURL := fs.String("secondary", "", "URL of the secondary bucket (default: a fileblob bucket in a temporary directory)")
	useEmulators := fs.Bool("emulators", false, "use in-process S3 (primary) and GCS (secondary) emulators, reached over HTTP by the real SDK clients")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if (*primaryURL == "") != (*secondaryURL == "") {
		return errors.New("give both -primary and -secondary, or neither")
	}
	if *useEmulators {
		if *primaryURL != "" {
			return errors.New("give -emulators or -primary and -secondary, not both")
		}
		s3srv, err := emulators.NewS3("outage-primary")
		if err != nil {
			return err
		}
		defer s3srv.Close()
		gcssrv, err := emulators.NewGCS("outage-secondary")
		if err != nil {
			return err
		}
		defer gcssrv.Close()
		*primaryURL = "s3://outage-primary?endpoint=" + url.QueryEscape(s3srv.URL()) + "&use_path_style=true&region=us-east-1&anonymous=true"
		*secondaryURL = "gs://outage-secondary?endpoint=" + url.QueryEscape(gcssrv.URL())
	}

	d := &demo{ctx: ctx, out: w, start: time.Now(), want: map[string]string{}, deleted: map[string]bool{}}
	var where [2]string
	if *primaryURL == "" {
		dir, err := os.MkdirTemp("", "failoverblob-outage-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		for i, name := range []string{"primary", "secondary"} {
			path := filepath.Join(dir, name)
			b, err := fileblob.OpenBucket(path, &fileblob.Options{CreateDir: true})
			if err != nil {
				return err
			}
			defer func() { _ = b.Close() }()
			d.raw[i], where[i] = b, "fileblob "+path
		}
	} else {
		var id [4]byte
		_, _ = rand.Read(id[:])
		d.prefix = "failoverblob-outage-" + hex.EncodeToString(id[:]) + "/"
		for i, u := range []string{*primaryURL, *secondaryURL} {
			b, err := providers.OpenBucket(ctx, u)
			if err != nil {
				return err
			}
			defer func() { _ = b.Close() }()
			d.raw[i], where[i] = b, u+" under "+d.prefix
		}
		// Runs before the buckets are closed: leave them as they were.
		defer d.removeDemoObjects()
	}

	// Each side behind a fault injector, so the walkthrough can take it down.
	primary, primaryFaults := failovertest.Wrap(d.raw[primarySide], nil)
	secondary, _ := failovertest.Wrap(d.raw[secondarySide], nil)
	d.faults = primaryFaults
	f, err := failoverblob.New(ctx, primary, secondary, &failoverblob.Options{
		Breaker: &circuit.Settings{
			ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= tripAfter },
			Timeout:     breakerTimeout,
		},
		OnRepair: d.repaired,
	})
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	d.f, d.b = f, f.Bucket()

	fmt.Fprintln(w, "failoverblob: an outage of the primary, from start to repair")
	fmt.Fprintf(w, "  primary:   %s\n", where[0])
	fmt.Fprintf(w, "  secondary: %s\n", where[1])
	fmt.Fprintf(w, "  mode:      %s; each breaker trips after %d outages in a row and stays open %v\n",
		f.Status().Mode, tripAfter, breakerTimeout)

	for _, step := range []func() error{
		d.healthy, d.primaryFails, d.redirected, d.reads, d.recovers, d.reconcile, d.finalCheck,
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

// Indexes of the sides in demo.raw.
const (
	primarySide   = 0
	secondarySide = 1
)

// demo is one walkthrough: the raw buckets as stored, the failover bucket in
// front of them, and what was acknowledged, to check against at the end.
type demo struct {
	ctx    context.Context
	out    io.Writer
	start  time.Time
	prefix string // every key of the walkthrough starts with it

	raw    [2]*blob.Bucket // the sides as stored, not through the fault injectors
	faults *failovertest.Injector
	f      *failoverblob.Failover
	b      *blob.Bucket

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

// content returns what side i holds for key (without prefix), quoted, or "-".
func (d *demo) content(i int, key string) string {
	b, err := d.raw[i].ReadAll(d.ctx, d.prefix+key)
	switch {
	case gcerrors.Code(err) == gcerrors.NotFound:
		return "-"
	case err != nil:
		return "<" + err.Error() + ">"
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

// primaryCalls is how many calls have reached the primary's fault injector.
func (d *demo) primaryCalls() int64 {
	var n int64
	for _, op := range failovertest.AllOps {
		n += d.faults.Calls(op)
	}
	return n
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
	d.step("2. The primary goes down: every call to it is refused")
	d.faults.Outage(nil)
	d.say("primary: outage injected (connection refused)")

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
	before := d.primaryCalls()
	if err := d.put("orders/2.json", "total=25"); err != nil {
		return err
	}
	d.why("the primary still holds the old object; it is stale until reconciled")
	if err := d.del("orders/3.json"); err != nil {
		return err
	}
	d.why("recorded as a tombstone in the journal: the primary must not bring it back")
	calls := d.primaryCalls() - before
	d.say("calls that reached the primary meanwhile: %d (an open breaker refuses at once)", calls)
	d.check(calls == 0, "%d calls reached the primary while its breaker was open", calls)

	st := d.f.Status()
	d.say("journal: %d pending, the oldest recorded %v ago", st.Pending, time.Since(st.OldestPending).Round(time.Millisecond))
	d.why("the age of the oldest pending entry is the live recovery-point figure")
	d.check(st.Pending == 4, "%d journal entries pending, want 4", st.Pending)
	return nil
}

func (d *demo) reads() error {
	d.step("4. Reads still return the newest data")
	for _, c := range []struct{ key, want, why string }{
		{"orders/2.json", `"total=25"`, "overwritten during the outage: read from the secondary, which holds the newest version"},
		{"orders/3.json", "not found", "deleted during the outage, although the stale primary still has " + d.content(primarySide, "orders/3.json")},
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
	d.step("5. The primary recovers")
	d.faults.Heal()
	st := d.breaker()
	d.say("primary: healed; its breaker is still %s and refuses calls until %v after it opened", st.State, breakerTimeout)

	// Status does no I/O; the breaker turns half-open when asked after its
	// Timeout.
	deadline := time.Now().Add(breakerTimeout + 2*time.Second)
	for st.State == circuit.StateOpen && time.Now().Before(deadline) {
		select {
		case <-d.ctx.Done():
			return d.ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		st = d.breaker()
	}
	d.say("breaker: primary %s: the next call is a probe", st.State)
	d.check(st.State == circuit.StateHalfOpen, "primary breaker is %s, want half-open", st.State)

	if err := d.put("orders/4.json", "total=44"); err != nil {
		return err
	}
	st = d.breaker()
	d.say("breaker: primary %s: the probe (the write above) succeeded", st.State)
	d.why("the secondary still holds the older redirected copy of orders/4.json;")
	d.why("its version is older, so the reconciler will not copy it over the new one")
	d.check(st.State == circuit.StateClosed, "primary breaker is %s, want closed", st.State)
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
	d.step("6. Reconcile repairs the primary (Drain; a service runs Run in the background)")
	rep, err := d.f.Drain(d.ctx)
	if err != nil {
		return fmt.Errorf("reconciling: %w", err)
	}
	d.say("report: Keys=%d Copied=%d Bytes=%d Deleted=%d Cleaned=%d Remaining=%d",
		rep.Keys, rep.Copied, rep.Bytes, rep.Deleted, rep.Cleaned, rep.Remaining)
	d.why("orders/2 and orders/5 copied; the tombstone of orders/3 applied; orders/4 left as is;")
	d.why("the temporary copies of orders/2, 4 and 5 removed from the secondary")
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
