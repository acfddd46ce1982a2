package failoverblob

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"gocloud.dev/blob"

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
// parameter, a repeated one, a value that does not parse and a missing or
// malformed side URL are errors naming the parameter.
//
// The parameters, the one list of them (generated from the table that
// parses them):
//
//   - primary (a bucket URL, query-escaped, such as s3%3A%2F%2Forders;
//     required): the primary bucket.
//   - secondary (a bucket URL, query-escaped, such as s3%3A%2F%2Forders;
//     required): the secondary bucket, which must not be the primary's.
//   - mode (redirect or mirror): Options.Mode.
//   - ack (either or both): Options.Ack (Mirror mode only).
//   - call_timeout (a positive Go duration such as 5s): Options.CallTimeout.
//   - first_byte_timeout (a positive Go duration such as 5s):
//     Options.FirstByteTimeout.
//   - idle_timeout (a positive Go duration such as 5s): Options.IdleTimeout.
//   - spool_memory (an integer of at least -1): Options.SpoolMemory, the
//     bytes of each streamed write kept in memory for a replay: as there, 0
//     means 4 MiB and -1 keeps none.
//   - spool_dir (a directory): Options.SpoolDir.
//   - writer_id (1 to 64 letters, digits, '.', '_' or '-'):
//     Options.WriterID.
//   - best_effort_list (true or false): Options.BestEffortList.
//   - strict_reads (true or false): Options.StrictReads.
//   - max_clock_skew (a positive Go duration such as 5s):
//     Options.MaxClockSkew.
//   - force (none, secondary, primary or read-only): Options.Force, the
//     routing the bucket starts with.
//   - probe_interval (a non-zero Go duration such as 5s or -1s):
//     Options.ProbeInterval; a negative duration turns the probes off.
//   - reconcile (true or false): whether the bucket runs Run in the
//     background until it is closed (default true); false leaves reconciling
//     to the caller.
//   - reconcile_interval (a positive Go duration such as 5s):
//     Options.ReconcileInterval.
//   - reconcile_concurrency (an integer of at least 1):
//     Options.ReconcileConcurrency.
//   - verify_interval (a positive Go duration such as 5s):
//     Options.VerifyInterval.
//   - verify_keys_per_second (an integer of at least 1):
//     Options.VerifyKeysPerSecond.
//   - breaker_failures (an integer of at least 1):
//     circuit.Settings.ReadyToTrip: trip a side's breaker after this many
//     outages in a row (default 5); the failure-ratio rule of
//     circuit.DefaultReadyToTrip still applies.
//   - breaker_timeout (a positive Go duration such as 5s):
//     circuit.Settings.Timeout, how long a tripped breaker stays open
//     (default 30s).
//   - breaker_interval (a positive Go duration such as 5s):
//     circuit.Settings.Interval, the breaker's rolling window (default 60s).
//   - breaker_probes (an integer of at least 1):
//     circuit.Settings.HalfOpenRequests, the probe calls a half-open breaker
//     lets through (default 1).
//   - journal_file (a path): a journal in that file (journal.OpenFile), held
//     by the bucket until it is closed, for a single instance; without it
//     the journal is URLOpener.Options.Journal, or else the default, kept on
//     the two buckets and shared by a fleet.
type URLOpener struct {
	// Mux opens the primary and secondary URLs. Nil means
	// blob.DefaultURLMux().
	Mux *blob.URLMux
	// Options are the defaults the URL's parameters override.
	Options Options
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
		return fail(fmt.Errorf("primary: %w", redactedError(err, p.primary)))
	}
	closers = append(closers, primary.Close)
	secondary, err := mux.OpenBucket(ctx, p.secondary)
	if err != nil {
		return fail(fmt.Errorf("secondary: %w", redactedError(err, p.secondary)))
	}
	closers = append(closers, secondary.Close)
	f, err := New(ctx, primary, secondary, &p.opts)
	if err != nil {
		return fail(err)
	}
	if p.reconcile {
		f.runInBackground()
	}
	if closeJournal != nil {
		// Closed once the reconciler has stopped using it.
		f.onClose = closeJournal
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

// redactedError returns err with the query of the side URL u elided from
// its text, as redactURL elides it: the opener that failed may quote the
// URL, and a query may carry a secret. errors.Is and errors.As see err.
func redactedError(err error, u string) error {
	pu, perr := url.Parse(u)
	if perr != nil || pu.RawQuery == "" || !strings.Contains(err.Error(), pu.RawQuery) {
		return err
	}
	return &redacted{err: err, msg: strings.ReplaceAll(err.Error(), pu.RawQuery, "…")}
}

type redacted struct {
	err error
	msg string
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
