package failoverblob

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/failoverblob/failoverblob/circuit"
)

// failoverURL is what a failover URL says.
type failoverURL struct {
	primary, secondary string
	opts               Options
	reconcile          bool
	journalFile        string
	ownBreaker         bool // opts.Breaker is this URL's copy
}

// breaker returns the breaker settings the URL's breaker parameters set: a
// copy of the defaults' settings, made by the first of them.
func (p *failoverURL) breaker() *circuit.Settings {
	if p.opts.Breaker == nil {
		p.opts.Breaker = &circuit.Settings{}
	} else if !p.ownBreaker {
		bs := *p.opts.Breaker
		p.opts.Breaker = &bs
	}
	p.ownBreaker = true
	return p.opts.Breaker
}

// urlParam is one parameter of a failover URL: its name, what it sets (for
// URLOpener's list, which TestURLParameterDocs keeps equal to this table)
// and how its value parses.
type urlParam struct {
	name     string
	required bool
	sets     string
	value    urlValue
}

// urlValue is how a parameter's value parses.
type urlValue struct {
	// takes says what the value may be, for URLOpener's list.
	takes string
	// parse sets p from the value s of parameter name, or says what is
	// wrong with s.
	parse func(p *failoverURL, name, s string) error
}

// urlParams are the parameters of a failover URL, in the order they are
// parsed (the first error found is returned) and documented.
var urlParams = []urlParam{
	{"primary", true, "the primary bucket", sideURL(func(p *failoverURL) *string { return &p.primary })},
	{"secondary", true, "the secondary bucket, which must not be the primary's", sideURL(func(p *failoverURL) *string { return &p.secondary })},
	{"mode", false, "Options.Mode", choice(map[string]Mode{"redirect": Redirect, "mirror": Mirror}, "redirect or mirror",
		func(p *failoverURL, m Mode) { p.opts.Mode = m })},
	{"ack", false, "Options.Ack (Mirror mode only)", choice(map[string]AckPolicy{"either": AckEither, "both": AckBoth}, "either or both",
		func(p *failoverURL, a AckPolicy) { p.opts.Ack = a })},
	{"call_timeout", false, "Options.CallTimeout", duration(func(p *failoverURL) *time.Duration { return &p.opts.CallTimeout })},
	{"first_byte_timeout", false, "Options.FirstByteTimeout", duration(func(p *failoverURL) *time.Duration { return &p.opts.FirstByteTimeout })},
	{"idle_timeout", false, "Options.IdleTimeout", duration(func(p *failoverURL) *time.Duration { return &p.opts.IdleTimeout })},
	{"spool_memory", false, "Options.SpoolMemory, the bytes of each streamed write kept in memory for a replay: as there, 0 means 4 MiB and -1 keeps none",
		integer(-1, func(p *failoverURL, v int64) { p.opts.SpoolMemory = v })},
	{"spool_dir", false, "Options.SpoolDir", text("a directory", func(p *failoverURL, _, s string) error {
		p.opts.SpoolDir = s
		return nil
	})},
	{"writer_id", false, "Options.WriterID", text("1 to 64 letters, digits, '.', '_' or '-'", func(p *failoverURL, name, s string) error {
		if err := checkWriterID(s); err != nil {
			return fmt.Errorf("parameter %s: %w", name, err)
		}
		p.opts.WriterID = s
		return nil
	})},
	{"best_effort_list", false, "Options.BestEffortList", boolean(func(p *failoverURL) *bool { return &p.opts.BestEffortList })},
	{"strict_reads", false, "Options.StrictReads", boolean(func(p *failoverURL) *bool { return &p.opts.StrictReads })},
	{"max_clock_skew", false, "Options.MaxClockSkew", duration(func(p *failoverURL) *time.Duration { return &p.opts.MaxClockSkew })},
	{"force", false, "Options.Force, the routing the bucket starts with",
		choice(map[string]ForceMode{"none": ForceNone, "secondary": ForceSecondary, "primary": ForcePrimary, "read-only": ForceReadOnly},
			"none, secondary, primary or read-only", func(p *failoverURL, m ForceMode) { p.opts.Force = m })},
	{"probe_interval", false, "Options.ProbeInterval; a negative duration turns the probes off",
		signedDuration(func(p *failoverURL) *time.Duration { return &p.opts.ProbeInterval })},
	{"reconcile", false, "whether the bucket runs Run in the background until it is closed (default true); false leaves reconciling to the caller",
		boolean(func(p *failoverURL) *bool { return &p.reconcile })},
	{"reconcile_interval", false, "Options.ReconcileInterval", duration(func(p *failoverURL) *time.Duration { return &p.opts.ReconcileInterval })},
	{"reconcile_concurrency", false, "Options.ReconcileConcurrency",
		integer(1, func(p *failoverURL, v int64) { p.opts.ReconcileConcurrency = int(v) })},
	{"verify_interval", false, "Options.VerifyInterval", duration(func(p *failoverURL) *time.Duration { return &p.opts.VerifyInterval })},
	{"verify_keys_per_second", false, "Options.VerifyKeysPerSecond",
		integer(1, func(p *failoverURL, v int64) { p.opts.VerifyKeysPerSecond = int(min(v, 1<<31-1)) })},
	{"breaker_failures", false, "circuit.Settings.ReadyToTrip: trip a side's breaker after this many outages in a row (default 5); the failure-ratio rule of circuit.DefaultReadyToTrip still applies",
		integer(1, func(p *failoverURL, v int64) { p.breaker().ReadyToTrip = tripAfter(uint32(min(v, 1<<32-1))) })},
	{"breaker_timeout", false, "circuit.Settings.Timeout, how long a tripped breaker stays open (default 30s)",
		duration(func(p *failoverURL) *time.Duration { return &p.breaker().Timeout })},
	{"breaker_interval", false, "circuit.Settings.Interval, the breaker's rolling window (default 60s)",
		duration(func(p *failoverURL) *time.Duration { return &p.breaker().Interval })},
	{"breaker_probes", false, "circuit.Settings.HalfOpenRequests, the probe calls a half-open breaker lets through (default 1)",
		integer(1, func(p *failoverURL, v int64) { p.breaker().HalfOpenRequests = uint32(min(v, 1<<31)) })},
	{"journal_file", false, "a journal in that file (journal.OpenFile), held by the bucket until it is closed, for a single instance; without it the journal is URLOpener.Options.Journal, or else the default, kept on the two buckets and shared by a fleet",
		text("a path", func(p *failoverURL, name, s string) error {
			if s == "" {
				return fmt.Errorf("parameter %s is empty: give the journal's path", name)
			}
			p.journalFile = s
			return nil
		})},
}

// parseFailoverURL reads u's parameters over the defaults in opts.
func parseFailoverURL(u *url.URL, opts Options) (failoverURL, error) {
	p := failoverURL{opts: opts, reconcile: true}
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return p, fmt.Errorf("a failover URL names its sides in the primary and secondary parameters; found %q before the query", strings.TrimPrefix(u.Host+u.Path+u.Opaque, "//"))
	}
	q := u.Query()
	if err := checkParamNames(q); err != nil {
		return p, err
	}
	for _, param := range urlParams {
		vs, ok := q[param.name]
		switch {
		case ok:
			if err := param.value.parse(&p, param.name, vs[0]); err != nil {
				return p, err
			}
		case param.required:
			return p, fmt.Errorf("parameter %s is required: the %s bucket's URL, query-escaped", param.name, param.name)
		}
	}
	return p, nil
}

// checkParamNames refuses an unknown parameter, naming the first in sorted
// order, and a repeated one.
func checkParamNames(q url.Values) error {
	var unknown []string
	for k, vs := range q {
		if lookupParam(k) == nil {
			unknown = append(unknown, k)
			continue
		}
		if len(vs) != 1 {
			return fmt.Errorf("parameter %q is given %d times", k, len(vs))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	names := make([]string, len(urlParams))
	for i, param := range urlParams {
		names[i] = param.name
	}
	hint := ""
	for _, side := range []string{"primary", "secondary"} {
		if strings.Contains(q.Get(side), "?") {
			// "failover://?primary=s3://b?region=x&endpoint=y": the side's
			// second parameter became the failover URL's.
			hint = fmt.Sprintf("; the %s URL has a query: query-escape the side URLs (url.QueryEscape), or its parameters after the first are read as the failover URL's", side)
			break
		}
	}
	return fmt.Errorf("unknown parameter %q (known: %s)%s", slices.Min(unknown), strings.Join(names, ", "), hint)
}

func lookupParam(name string) *urlParam {
	for i := range urlParams {
		if urlParams[i].name == name {
			return &urlParams[i]
		}
	}
	return nil
}

// sideURL parses a side's bucket URL into the field field returns. The
// secondary's must not name the primary's bucket.
func sideURL(field func(*failoverURL) *string) urlValue {
	return urlValue{
		takes: "a bucket URL, query-escaped, such as s3%3A%2F%2Forders",
		parse: func(p *failoverURL, name, s string) error {
			if s == "" {
				return fmt.Errorf("parameter %s is required: the %s bucket's URL, query-escaped", name, name)
			}
			if u, err := url.Parse(s); err != nil || u.Scheme == "" {
				return fmt.Errorf("parameter %s: %q is not a bucket URL such as s3://name", name, redactURL(s))
			}
			*field(p) = s
			if p.primary != "" && p.secondary != "" && sameBucketURL(p.primary, p.secondary) {
				return fmt.Errorf("parameters primary and secondary name the same bucket, %q: %w", redactURL(p.primary), ErrSameStorage)
			}
			return nil
		},
	}
}

// choice parses one of the names in choices (in any case) and hands its
// value to set.
func choice[T any](choices map[string]T, takes string, set func(*failoverURL, T)) urlValue {
	return urlValue{
		takes: takes,
		parse: func(p *failoverURL, name, s string) error {
			v, ok := choices[strings.ToLower(s)]
			if !ok {
				return fmt.Errorf("parameter %s=%q: want %s", name, s, takes)
			}
			set(p, v)
			return nil
		},
	}
}

// duration parses a positive Go duration into the field field returns.
// signedDuration is a non-zero Go duration, negative allowed.
func signedDuration(field func(*failoverURL) *time.Duration) urlValue {
	return urlValue{
		takes: "a non-zero Go duration such as 5s or -1s",
		parse: func(p *failoverURL, name, s string) error {
			v, err := time.ParseDuration(s)
			switch {
			case err != nil:
				return fmt.Errorf("parameter %s=%q: not a duration such as \"5s\"", name, s)
			case v == 0:
				return fmt.Errorf("parameter %s=%q: must not be zero", name, s)
			}
			*field(p) = v
			return nil
		},
	}
}

func duration(field func(*failoverURL) *time.Duration) urlValue {
	return urlValue{
		takes: "a positive Go duration such as 5s",
		parse: func(p *failoverURL, name, s string) error {
			v, err := time.ParseDuration(s)
			switch {
			case err != nil:
				return fmt.Errorf("parameter %s=%q: not a duration such as \"5s\"", name, s)
			case v <= 0:
				return fmt.Errorf("parameter %s=%q: must be positive", name, s)
			}
			*field(p) = v
			return nil
		},
	}
}

// integer parses an integer of at least min and hands it to set.
func integer(min int64, set func(*failoverURL, int64)) urlValue {
	return urlValue{
		takes: fmt.Sprintf("an integer of at least %d", min),
		parse: func(p *failoverURL, name, s string) error {
			v, err := strconv.ParseInt(s, 10, 64)
			switch {
			case err != nil:
				return fmt.Errorf("parameter %s=%q: not an integer", name, s)
			case v < min:
				return fmt.Errorf("parameter %s=%q: must be at least %d", name, s, min)
			}
			set(p, v)
			return nil
		},
	}
}

// boolean parses true or false into the field field returns.
func boolean(field func(*failoverURL) *bool) urlValue {
	return urlValue{
		takes: "true or false",
		parse: func(p *failoverURL, name, s string) error {
			v, err := strconv.ParseBool(s)
			if err != nil {
				return fmt.Errorf("parameter %s=%q: not true or false", name, s)
			}
			*field(p) = v
			return nil
		},
	}
}

// text is a value that parse takes as it is.
func text(takes string, parse func(p *failoverURL, name, s string) error) urlValue {
	return urlValue{takes: takes, parse: parse}
}

// tripAfter is circuit.DefaultReadyToTrip with n outages in a row in place
// of circuit.DefaultConsecutiveFailures.
func tripAfter(n uint32) func(circuit.Counts) bool {
	return func(c circuit.Counts) bool {
		if c.ConsecutiveFailures >= n {
			return true
		}
		decided := uint64(c.TotalSuccesses) + uint64(c.TotalFailures)
		return decided >= circuit.DefaultMinRequests && 2*uint64(c.TotalFailures) >= decided
	}
}
