package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/journal"
)

// Scheme is the URL scheme the failover bucket registers its URLOpener under
// on blob.DefaultURLMux.
const Scheme = "failover"

func init() {
	blob.DefaultURLMux().RegisterBucket(Scheme, &URLOpener{})
}

// URLOpener opens failover URLs such as
//
//	failover://?primary=s3%3A%2F%2Forders&secondary=gs%3A%2F%2Forders-dr&mode=mirror
//
// The host and path must be empty. primary and secondary are the URLs of the
// two sides, query-escaped, opened through Mux. The other parameters set
// fields of Options; a parameter left out keeps the value in
// URLOpener.Options, and so its documented zero value. An unknown
// parameter, a repeated one or a value that does not parse is an error.
//
//   - primary, secondary (required): the sides' bucket URLs.
//   - mode: "redirect" or "mirror" (Options.Mode).
//   - ack: "either" or "both" (Options.Ack; Mirror mode only).
//   - call_timeout, first_byte_timeout, idle_timeout: Go durations such as
//     "5s" (Options.CallTimeout, FirstByteTimeout, IdleTimeout).
//   - spool_memory: bytes of each streamed write kept in memory for replay
//     (Options.SpoolMemory); "-1" keeps none.
//   - spool_dir: directory for spool files (Options.SpoolDir).
//   - writer_id: this writer's name in versions (Options.WriterID).
//   - best_effort_list: "true" or "false" (Options.BestEffortList).
//   - reconcile: "true" (the default) starts Run in the background until the
//     bucket is closed; "false" leaves reconciling to the caller.
//   - reconcile_interval, reconcile_concurrency: Options.ReconcileInterval
//     and Options.ReconcileConcurrency.
//   - breaker_failures: trip a side's breaker after this many outages in a
//     row (default 5); the failure-ratio rule of circuit.DefaultReadyToTrip
//     still applies.
//   - breaker_timeout: how long a tripped breaker stays open (default 30s).
//   - breaker_interval: the breaker's rolling window (default 60s).
//   - breaker_probes: probe calls a half-open breaker lets through
//     (default 1).
//   - journal_file: a path for a durable journal (journal.OpenFile), held
//     by this bucket until it is closed, for a single instance. Without
//     it the journal is URLOpener.Options.Journal, or else the default,
//     kept on the two buckets and shared by a fleet.
type URLOpener struct {
	// Mux opens the primary and secondary URLs. Nil means
	// blob.DefaultURLMux().
	Mux *blob.URLMux
	// Options are the defaults the URL's parameters override.
	Options Options
}

// The URL parameters URLOpener understands, in the order its errors list
// them.
var urlParams = []string{
	"primary", "secondary", "mode", "ack",
	"call_timeout", "first_byte_timeout", "idle_timeout",
	"spool_memory", "spool_dir", "writer_id", "best_effort_list",
	"reconcile", "reconcile_interval", "reconcile_concurrency",
	"breaker_failures", "breaker_timeout", "breaker_interval", "breaker_probes",
	"journal_file",
}

// OpenBucketURL opens the failover bucket u describes. Closing the bucket
// closes both sides.
func (o *URLOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	p, err := parseFailoverURL(u, o.Options)
	if err != nil {
		return nil, fmt.Errorf("open failover bucket: %w: %w", ErrBadURL, err)
	}
	mux := o.Mux
	if mux == nil {
		mux = blob.DefaultURLMux()
	}
	if err := checkSideSchemes(mux, p); err != nil {
		return nil, fmt.Errorf("open failover bucket: %w: %w", ErrBadURL, err)
	}
	var closers []func() error
	var closeJournal func() error
	fail := func(err error) (*blob.Bucket, error) {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
		return nil, fmt.Errorf("open failover bucket: %w", err)
	}
	if p.journalFile != "" {
		j, err := journal.OpenFile(p.journalFile)
		if err != nil {
			return fail(err)
		}
		p.opts.Journal, closeJournal = j, j.Close
		closers = append(closers, j.Close)
	}
	primary, err := mux.OpenBucket(ctx, p.primary)
	if err != nil {
		return fail(fmt.Errorf("primary: %w", err))
	}
	closers = append(closers, primary.Close)
	secondary, err := mux.OpenBucket(ctx, p.secondary)
	if err != nil {
		return fail(fmt.Errorf("secondary: %w", err))
	}
	closers = append(closers, secondary.Close)
	f, err := New(ctx, primary, secondary, &p.opts)
	if err != nil {
		return fail(err)
	}
	runDone := make(chan struct{})
	if p.reconcile {
		go func() {
			defer close(runDone)
			_ = f.Run(context.Background())
		}()
	} else {
		close(runDone)
	}
	if closeJournal != nil {
		// Closed once the reconciler has stopped using it.
		f.onClose = func() error {
			<-runDone
			return closeJournal()
		}
	}
	return f.Bucket(), nil
}

// ErrBadURL is wrapped by the errors URLOpener returns for a URL it refuses
// before opening anything: a host or path before the query, an unknown,
// repeated or unparseable parameter, a missing or malformed side URL, or a
// side URL whose scheme the mux does not open. Errors met while opening
// the sides (a driver's refusal of its own parameters, a service that
// cannot be reached) and the journal file do not wrap it. Test with
// errors.Is.
var ErrBadURL = errors.New("bad URL")

// checkSideSchemes refuses side URLs whose scheme mux does not open.
func checkSideSchemes(mux *blob.URLMux, p failoverURL) error {
	for _, s := range []struct{ param, url string }{{"primary", p.primary}, {"secondary", p.secondary}} {
		u, err := url.Parse(s.url)
		if err != nil {
			return fmt.Errorf("parameter %s: %q is not a bucket URL", s.param, redactURL(s.url))
		}
		if !mux.ValidBucketScheme(u.Scheme) {
			return fmt.Errorf("parameter %s: no bucket opener for scheme %q (known: %s)", s.param, u.Scheme, strings.Join(mux.BucketSchemes(), ", "))
		}
	}
	return nil
}

type failoverURL struct {
	primary, secondary string
	opts               Options
	reconcile          bool
	journalFile        string
}

// parseFailoverURL reads u's parameters over the defaults in opts.
func parseFailoverURL(u *url.URL, opts Options) (failoverURL, error) {
	p := failoverURL{opts: opts, reconcile: true}
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return p, fmt.Errorf("a failover URL names its sides in the primary and secondary parameters; found %q before the query", strings.TrimPrefix(u.Host+u.Path+u.Opaque, "//"))
	}
	q := u.Query()
	var unknown []string
	for k, vs := range q {
		if !isURLParam(k) {
			unknown = append(unknown, k)
			continue
		}
		if len(vs) != 1 {
			return p, fmt.Errorf("parameter %q is given %d times", k, len(vs))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return p, fmt.Errorf("unknown parameter %q (known: %s)", unknown[0], strings.Join(urlParams, ", "))
	}
	var err error
	get := func(k string) (string, bool) {
		vs, ok := q[k]
		if !ok {
			return "", false
		}
		return vs[0], true
	}
	dur := func(k string, d *time.Duration) {
		if s, ok := get(k); ok && err == nil {
			v, perr := time.ParseDuration(s)
			switch {
			case perr != nil:
				err = fmt.Errorf("parameter %s=%q: not a duration such as \"5s\"", k, s)
			case v <= 0:
				err = fmt.Errorf("parameter %s=%q: must be positive", k, s)
			default:
				*d = v
			}
		}
	}
	integer := func(k string, min int64, set func(int64)) {
		if s, ok := get(k); ok && err == nil {
			v, perr := strconv.ParseInt(s, 10, 64)
			switch {
			case perr != nil:
				err = fmt.Errorf("parameter %s=%q: not an integer", k, s)
			case v < min:
				err = fmt.Errorf("parameter %s=%q: must be at least %d", k, s, min)
			default:
				set(v)
			}
		}
	}
	boolean := func(k string, b *bool) {
		if s, ok := get(k); ok && err == nil {
			v, perr := strconv.ParseBool(s)
			if perr != nil {
				err = fmt.Errorf("parameter %s=%q: not true or false", k, s)
				return
			}
			*b = v
		}
	}
	side := func(k string) string {
		s, ok := get(k)
		if err != nil {
			return ""
		}
		if !ok || s == "" {
			err = fmt.Errorf("parameter %s is required: the %s bucket's URL, query-escaped", k, k)
			return ""
		}
		nu, perr := url.Parse(s)
		if perr != nil || nu.Scheme == "" {
			err = fmt.Errorf("parameter %s: %q is not a bucket URL such as s3://name", k, redactURL(s))
			return ""
		}
		return s
	}
	p.primary = side("primary")
	p.secondary = side("secondary")
	if err == nil && sameBucketURL(p.primary, p.secondary) {
		err = fmt.Errorf("parameters primary and secondary name the same bucket, %q: %w", redactURL(p.primary), ErrSameStorage)
	}
	if s, ok := get("mode"); ok && err == nil {
		switch strings.ToLower(s) {
		case "redirect":
			p.opts.Mode = Redirect
		case "mirror":
			p.opts.Mode = Mirror
		default:
			err = fmt.Errorf("parameter mode=%q: want redirect or mirror", s)
		}
	}
	if s, ok := get("ack"); ok && err == nil {
		switch strings.ToLower(s) {
		case "either":
			p.opts.Ack = AckEither
		case "both":
			p.opts.Ack = AckBoth
		default:
			err = fmt.Errorf("parameter ack=%q: want either or both", s)
		}
	}
	dur("call_timeout", &p.opts.CallTimeout)
	dur("first_byte_timeout", &p.opts.FirstByteTimeout)
	dur("idle_timeout", &p.opts.IdleTimeout)
	integer("spool_memory", -1, func(v int64) {
		if v == 0 {
			v = -1 // zero would mean the default, not "keep nothing"
		}
		p.opts.SpoolMemory = v
	})
	if s, ok := get("spool_dir"); ok {
		p.opts.SpoolDir = s
	}
	if s, ok := get("writer_id"); ok {
		if cerr := checkWriterID(s); cerr != nil && err == nil {
			err = fmt.Errorf("parameter writer_id: %w", cerr)
		}
		p.opts.WriterID = s
	}
	if s, ok := get("journal_file"); ok {
		if s == "" {
			err = fmt.Errorf("parameter journal_file is empty: give the journal's path")
		}
		p.journalFile = s
	}
	boolean("best_effort_list", &p.opts.BestEffortList)
	boolean("reconcile", &p.reconcile)
	dur("reconcile_interval", &p.opts.ReconcileInterval)
	integer("reconcile_concurrency", 1, func(v int64) { p.opts.ReconcileConcurrency = int(v) })

	var bs circuit.Settings
	if p.opts.Breaker != nil {
		bs = *p.opts.Breaker
	}
	breaker := false
	integer("breaker_failures", 1, func(v int64) {
		breaker = true
		n := uint32(v)
		bs.ReadyToTrip = func(c circuit.Counts) bool {
			if c.ConsecutiveFailures >= n {
				return true
			}
			decided := uint64(c.TotalSuccesses) + uint64(c.TotalFailures)
			return decided >= circuit.DefaultMinRequests && 2*uint64(c.TotalFailures) >= decided
		}
	})
	for _, d := range []struct {
		k string
		v *time.Duration
	}{{"breaker_timeout", &bs.Timeout}, {"breaker_interval", &bs.Interval}} {
		if _, ok := get(d.k); ok {
			breaker = true
			dur(d.k, d.v)
		}
	}
	integer("breaker_probes", 1, func(v int64) {
		breaker = true
		bs.HalfOpenRequests = uint32(min(v, 1<<31))
	})
	if breaker {
		p.opts.Breaker = &bs
	}
	return p, err
}

func isURLParam(k string) bool {
	for _, p := range urlParams {
		if p == k {
			return true
		}
	}
	return false
}

// redactURL drops the user information and query of a bucket URL, where
// credentials could be, for use in an error.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	return u.String()
}

// sameBucketURL reports whether two side URLs name the same bucket: the
// same URL, up to the order of its query parameters. Each mem:// URL opens a
// bucket of its own.
func sameBucketURL(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil || ua.Scheme == "mem" {
		return false
	}
	return ua.Scheme == ub.Scheme && ua.Host == ub.Host && ua.Path == ub.Path && ua.Opaque == ub.Opaque &&
		ua.Query().Encode() == ub.Query().Encode()
}
