package providers_test

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/drivertest"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
	"github.com/failoverblob/failoverblob/internal/emulators"
	"github.com/failoverblob/failoverblob/internal/testrun"
	"github.com/failoverblob/failoverblob/journal"
	"github.com/failoverblob/failoverblob/providers"
)

// conformanceTransport gives each side a deadline per attempt and a single
// attempt, so that a side that is down is given up on at once.
const conformanceTransport = "&attempt_timeout=2s&max_attempts=1"

// conformanceS3URL opens bucket on the S3 emulator srv, signing with the
// credentials setS3Credentials provides, so that SignedURL works (the SDK
// cannot presign with anonymous credentials).
//
// Response checksums are validated only where required: gofakes3 keeps the
// x-amz-* headers of a PUT, x-amz-checksum-crc32 among them, and sends them
// back with every GET, ranged ones included. With the SDK's default
// (when_supported) the raw emulator fails every ranged read ("checksum did
// not match: algorithm CRC32") in TestRead/read_in_full,
// read_a_part_in_middle, read_from_positive_offset_to_end and
// read_in_full_with_negative_length_not_-1. S3 does not send the whole
// object's checksum with a range, so the setting keeps the range reads under
// test rather than skipping them.
func conformanceS3URL(srv *emulators.Server, bucket string) string {
	return "s3://" + bucket + "?endpoint=" + url.QueryEscape(srv.URL()) +
		"&use_path_style=true&region=us-east-1&response_checksum_validation=when_required" + conformanceTransport
}

// conformanceGCSURL opens bucket on the GCS emulator srv. It has no signing
// identity, so SignedURL is Unimplemented and the suite skips its checks:
// gcsblob would sign URLs for https://storage.googleapis.com, which the
// emulator does not serve.
func conformanceGCSURL(srv *emulators.Server, bucket string) string {
	return "gs://" + bucket + "?endpoint=" + url.QueryEscape(srv.URL()) + conformanceTransport
}

// setS3Credentials gives the S3 SDK static credentials through the
// environment, the only way the providers' S3 opener takes them, for the
// rest of t. The emulator checks no signature.
func setS3Credentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "emulator")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "emulator")
	t.Setenv("AWS_SESSION_TOKEN", "")
}

// signedURLClient is the unauthenticated client the suite fetches signed
// URLs with; its idle connections are closed at the end of the test.
func signedURLClient(t *testing.T) *http.Client {
	tr := &http.Transport{ResponseHeaderTimeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// failoverHarness runs gocloud's conformance suite on a failover bucket over
// an S3 emulator (primary) and a GCS emulator (secondary). Every MakeDriver
// opens a new failover bucket over the same two emulators and the same
// journal, as a restarted process would; none runs the reconciler.
type failoverHarness struct {
	primary, secondary string // the sides' URLs
	mode               failoverblob.Mode
	journal            journal.Journal
	client             *http.Client
}

func (h *failoverHarness) MakeDriver(ctx context.Context) (driver.Bucket, error) {
	primary, err := providers.OpenBucket(ctx, h.primary)
	if err != nil {
		return nil, err
	}
	secondary, err := providers.OpenBucket(ctx, h.secondary)
	if err != nil {
		_ = primary.Close()
		return nil, err
	}
	f, err := failoverblob.New(ctx, primary, secondary, &failoverblob.Options{Mode: h.mode, Journal: h.journal})
	if err != nil {
		_ = primary.Close()
		_ = secondary.Close()
		return nil, err
	}
	return bucketconv.Bucket(f.Bucket()), nil
}

// MakeDriverForNonexistentBucket: a failover bucket has no single bucket
// whose absence the suite could check.
func (h *failoverHarness) MakeDriverForNonexistentBucket(context.Context) (driver.Bucket, error) {
	return nil, nil
}

func (h *failoverHarness) HTTPClient() *http.Client { return h.client }
func (h *failoverHarness) SupportsCopy() bool       { return true }

// SupportsNonSlashDelimiters is false: neither emulator lists correctly with
// a delimiter other than "/".
func (h *failoverHarness) SupportsNonSlashDelimiters() bool { return false }
func (h *failoverHarness) Close()                           {}

// SkipDownloadAt is false: the suite's parallel Download reaches the sides'
// own parallel downloads, over the emulators.
func (h *failoverHarness) SkipDownloadAt() bool { return false }

// rawHarness runs the conformance suite on one emulator's bucket, opened as
// the failover harness opens that side.
type rawHarness struct {
	url, missing string // the bucket's URL, and that of a bucket that does not exist
	client       *http.Client
}

func (h *rawHarness) open(ctx context.Context, u string) (driver.Bucket, error) {
	b, err := providers.OpenBucket(ctx, u)
	if err != nil {
		return nil, err
	}
	return bucketconv.Bucket(b), nil
}

func (h *rawHarness) MakeDriver(ctx context.Context) (driver.Bucket, error) {
	return h.open(ctx, h.url)
}

func (h *rawHarness) MakeDriverForNonexistentBucket(ctx context.Context) (driver.Bucket, error) {
	return h.open(ctx, h.missing)
}

func (h *rawHarness) HTTPClient() *http.Client         { return h.client }
func (h *rawHarness) SupportsCopy() bool               { return true }
func (h *rawHarness) SupportsNonSlashDelimiters() bool { return false }
func (h *rawHarness) SkipDownloadAt() bool             { return false }
func (h *rawHarness) Close()                           {}

// conformanceRuns are the states TestEmulatorConformance runs the suite in.
//
// With the primary down the suite runs in Mirror mode only. In Redirect mode
// the secondary holds only redirected writes, so a read or listing of
// anything else is ErrUnavailable by design (a miss there is not proof of
// absence), where the suite expects NotFound.
var conformanceRuns = []struct {
	name        string
	mode        failoverblob.Mode
	primaryDown bool
}{
	{"both_up_redirect", failoverblob.Redirect, false},
	{"both_up_mirror", failoverblob.Mirror, false},
	{"primary_down_mirror", failoverblob.Mirror, true},
}

// TestEmulatorConformance runs gocloud's conformance suite on a failover
// bucket with an S3 emulator as primary and a GCS emulator as secondary:
// with both up in each mode, and with the primary's port closed for the
// whole run. Each harness (one per check) starts its own emulators. The
// checks in conformanceExclusions are skipped (see TestMain).
func TestEmulatorConformance(t *testing.T) {
	setS3Credentials(t)
	for _, run := range conformanceRuns {
		t.Run(run.name, func(t *testing.T) {
			drivertest.RunConformanceTests(t, func(_ context.Context, t *testing.T) (drivertest.Harness, error) {
				s3 := emulators.StartS3(t, testBucket)
				gcs := emulators.StartGCS(t, testBucket)
				if run.primaryDown {
					s3.Set(emulators.Closed)
				}
				return &failoverHarness{
					primary:   conformanceS3URL(s3, testBucket),
					secondary: conformanceGCSURL(gcs, testBucket),
					mode:      run.mode,
					journal:   journal.NewMemory(),
					client:    signedURLClient(t),
				}, nil
			}, nil)
		})
	}
}

// rawConformanceEnv, set to 1, makes TestRawEmulatorConformance run.
const rawConformanceEnv = "FAILOVERBLOB_RAW_CONFORMANCE"

// TestRawEmulatorConformance runs the conformance suite on each emulator's
// bucket directly, opened as the failover bucket's sides are. It is the
// evidence for conformanceExclusions and fails, so it runs only when
// FAILOVERBLOB_RAW_CONFORMANCE=1; TestConformanceExclusions runs it in a
// child process.
func TestRawEmulatorConformance(t *testing.T) {
	if os.Getenv(rawConformanceEnv) != "1" {
		t.Skipf("set %s=1 to run the suite on the raw emulators (it fails)", rawConformanceEnv)
	}
	setS3Credentials(t)
	emus := []struct {
		name  string
		start func(testing.TB, ...string) *emulators.Server
		url   func(*emulators.Server, string) string
	}{
		{"S3", emulators.StartS3, conformanceS3URL},
		{"GCS", emulators.StartGCS, conformanceGCSURL},
	}
	for _, emu := range emus {
		t.Run(emu.name, func(t *testing.T) {
			drivertest.RunConformanceTests(t, func(_ context.Context, t *testing.T) (drivertest.Harness, error) {
				srv := emu.start(t, testBucket)
				return &rawHarness{
					url:     emu.url(srv, testBucket),
					missing: emu.url(srv, "no-such-bucket"),
					client:  signedURLClient(t),
				}, nil
			}, nil)
		})
	}
}

// exclusion is a conformance check that the failover bucket fails in some
// runs because the emulator answering it there fails it too.
type exclusion struct {
	// test is the check's drivertest path ("TestList/by_1"), runs the
	// TestEmulatorConformance runs it is skipped in.
	test string
	runs []string
	// raw is the TestRawEmulatorConformance subtest that fails the same
	// check ("S3/TestList/by_1"), and evidence what it reports: each string
	// appears in its output, and in the failover bucket's when the
	// exclusion is lifted.
	raw      string
	evidence []string
}

var bothUp = []string{"both_up_redirect", "both_up_mirror"}

// conformanceExclusions are the checks TestEmulatorConformance skips, each
// with the raw emulator's result that justifies it. TestConformanceExclusions
// checks that each still fails, on the raw emulator and on the failover
// bucket, with that result.
//
// With both sides up the S3 emulator (the primary) answers reads, listings
// and signed URLs; with the primary down the GCS emulator does, and it fails
// none of the checks the failover bucket runs (it fails only
// TestWrite/write_to_empty_key_fails, which the failover bucket refuses
// itself). The raw S3 emulator also fails TestKeys/ascii-4: it cuts a copy
// source at its first "?" (to drop a versionId), so CopyObject of
// "weird-keys:;<=>?" answers 404 NoSuchKey; the failover bucket copies by
// reading and writing through itself and passes.
var conformanceExclusions = []exclusion{
	{
		// gofakes3 returns a continuation token with the last page, so the
		// suite sees an extra, empty page.
		test: "TestList/by_1", runs: bothUp, raw: "S3/TestList/by_1",
		evidence: []string{"[[0] [1] [2] []]"},
	},
	{
		test: "TestList/by_3", runs: bothUp, raw: "S3/TestList/by_3",
		evidence: []string{"[[0 1 2] []]"},
	},
	{
		// Of the standard headers gofakes3 keeps only Content-Type,
		// Content-Disposition and Content-Encoding.
		test: "TestAttributes", runs: bothUp, raw: "S3/TestAttributes",
		evidence: []string{`got CacheControl "" want "no-cache"`, `got ContentLanguage "" want "en"`},
	},
	{
		// gofakes3 checks no signature: a GET URL also PUTs and DELETEs, a
		// PUT URL also GETs, and a URL without its query still GETs.
		test: "TestSignedURL", runs: bothUp, raw: "S3/TestSignedURL",
		evidence: []string{
			`PUT to "getURL" with ContentType "" got status code 200, wanted 2xx? false`,
			`GET to "getURLNoParams" got status code 200, want 2xx? false`,
		},
	},
}

// path returns the full name of e's check in run.
func (e exclusion) path(run string) string {
	return "TestEmulatorConformance/" + run + "/" + e.test
}

// skipPattern returns a -test.skip pattern that matches exactly the check
// at path: one anchored, literal regexp per level of the name.
func skipPattern(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// noExclusionsEnv, set to 1, runs TestEmulatorConformance without
// exclusions.
const noExclusionsEnv = "FAILOVERBLOB_CONFORMANCE_NO_EXCLUSIONS"

// skipConformanceExclusions adds conformanceExclusions to -test.skip, as
// alternatives at the top level of the pattern: the testing package splits
// a pattern on each "|" outside brackets and parentheses before it splits
// each alternative on "/", and skips a test that any alternative matches in
// full. A -test.skip given on the command line stays one alternative. It
// must be called after flag.Parse and before m.Run.
func skipConformanceExclusions() {
	if os.Getenv(noExclusionsEnv) == "1" {
		return
	}
	var alts []string
	if s := flag.Lookup("test.skip").Value.String(); s != "" {
		alts = append(alts, s)
	}
	for _, e := range conformanceExclusions {
		for _, run := range e.runs {
			alts = append(alts, skipPattern(e.path(run)))
		}
	}
	if len(alts) == 0 {
		return
	}
	if err := flag.Set("test.skip", strings.Join(alts, "|")); err != nil {
		panic(err)
	}
}

// TestConformanceExclusions runs TestRawEmulatorConformance, and
// TestEmulatorConformance without exclusions, in a child process, and checks
// each exclusion: its check fails on the raw emulator and on the failover
// bucket in each of its runs, both times with the exclusion's evidence.
// So an exclusion is dropped once the failover bucket passes the check, and
// never hides a failure other than the emulator's.
func TestConformanceExclusions(t *testing.T) {
	if os.Getenv(rawConformanceEnv) == "1" {
		t.Skip("this is the child process")
	}
	t.Parallel()
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-5*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, os.Args[0],
		"-test.run=^(TestRawEmulatorConformance|TestEmulatorConformance)$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), rawConformanceEnv+"=1", noExclusionsEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("child run took %v (%v)", time.Since(start).Round(time.Millisecond), err)
	r := testrun.Parse(out.Bytes())
	if err == nil || strings.Contains(out.String(), "\npanic: ") || !r.Failed["TestRawEmulatorConformance"] {
		t.Fatalf("the child run did not fail as expected:\n%s", out.String())
	}

	const rawPrefix = "TestRawEmulatorConformance/"
	excluded := map[string]bool{}
	for _, e := range conformanceExclusions {
		for _, run := range e.runs {
			excluded[e.path(run)] = true
		}
	}
	var rawFailed, failoverFailed []string
	for _, name := range r.FailedChecks() {
		if strings.HasPrefix(name, rawPrefix) {
			rawFailed = append(rawFailed, strings.TrimPrefix(name, rawPrefix))
		} else if strings.HasPrefix(name, "TestEmulatorConformance/") {
			if !excluded[name] {
				name += " (not excluded)"
			}
			failoverFailed = append(failoverFailed, name)
		}
	}
	t.Logf("checks the raw emulators fail (%d):\n\t%s", len(rawFailed), strings.Join(rawFailed, "\n\t"))
	t.Logf("checks the failover bucket fails without exclusions (%d):\n\t%s", len(failoverFailed), strings.Join(failoverFailed, "\n\t"))

	for _, e := range conformanceExclusions {
		raw := rawPrefix + e.raw
		switch {
		case !r.Failed[raw]:
			t.Errorf("exclusion %s: the raw emulator passes %s", e.test, e.raw)
		case !testrun.ContainsAll(r.Output[raw], e.evidence):
			t.Errorf("exclusion %s: %s fails without the evidence %q:\n%s", e.test, e.raw, e.evidence, r.Output[raw])
		}
		for _, run := range e.runs {
			p := e.path(run)
			switch {
			case !r.Failed[p]:
				t.Errorf("exclusion %s: the failover bucket passes it in %s; remove it from the exclusion", e.test, run)
			case !testrun.ContainsAll(r.Output[p], e.evidence):
				t.Errorf("exclusion %s: %s fails otherwise than the raw emulator (evidence %q):\n%s", e.test, p, e.evidence, r.Output[p])
			}
		}
	}
}
