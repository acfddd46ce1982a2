package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/internal/emulators"
	"github.com/failoverblob/failoverblob/journal"
	"github.com/failoverblob/failoverblob/providers"
)

// The tests run the built failoverctl, a process of its own, against
// buckets on which this test process left work pending, as a service would.

var bin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		_ = os.RemoveAll(bin.dir)
	}
	os.Exit(code)
}

// binary builds failoverctl once per test run, with the race detector if
// the tests run with it (so the build reuses the packages the test binary
// was compiled from, and the runs are checked for races too).
func binary(t *testing.T) string {
	t.Helper()
	bin.once.Do(func() {
		bin.dir, bin.err = os.MkdirTemp("", "failoverctl-test-")
		if bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "failoverctl")
		args := []string{"build", "-o", bin.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			bin.err = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	require.NoError(t, bin.err)
	return bin.path
}

// result is how a run of failoverctl ended.
type result struct {
	code           int
	stdout, stderr string
}

// ctl runs failoverctl with args.
func ctl(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		require.NoError(t, err)
	}
	r := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	t.Logf("failoverctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

func failoverURL(primary, secondary string, params ...string) string {
	u := "failover://?primary=" + url.QueryEscape(primary) + "&secondary=" + url.QueryEscape(secondary)
	for _, p := range params {
		u += "&" + p
	}
	return u
}

func fileURL(dir string) string { return "file://" + filepath.ToSlash(dir) }

func openDir(t *testing.T, dir string) *blob.Bucket {
	t.Helper()
	b, err := fileblob.OpenBucket(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// contents returns b's objects outside the reserved prefix, key to data.
func contents(t *testing.T, b *blob.Bucket) map[string]string {
	t.Helper()
	ctx := context.Background()
	m := map[string]string{}
	it := b.List(nil)
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return m
		}
		require.NoError(t, err)
		if strings.HasPrefix(o.Key, failoverblob.ReservedPrefix) {
			continue
		}
		data, err := b.ReadAll(ctx, o.Key)
		require.NoError(t, err)
		m[o.Key] = string(data)
	}
}

// leaveOutageWork plays a service over file buckets in pdir and sdir: it
// writes keep and gone while both sides are up, then, with the primary
// down, writes three new keys, overwrites keep and deletes gone, and
// closes. What the primary missed is pending in the journal on the
// secondary. It returns what the primary must hold once repaired.
func leaveOutageWork(t *testing.T, pdir, sdir string) map[string]string {
	t.Helper()
	ctx := context.Background()
	base, err := fileblob.OpenBucket(pdir, nil)
	require.NoError(t, err)
	defer base.Close() // Wrap does not close it
	primary, faults := failovertest.Wrap(base, nil)
	secondary, err := fileblob.OpenBucket(sdir, nil)
	require.NoError(t, err)
	f, err := failoverblob.New(ctx, primary, secondary, nil)
	require.NoError(t, err)
	defer f.Close()
	b := f.Bucket()
	require.NoError(t, b.WriteAll(ctx, "keep", []byte("kept"), nil))
	require.NoError(t, b.WriteAll(ctx, "gone", []byte("to be deleted"), nil))

	faults.Outage(nil)
	want := map[string]string{
		"a/1":  strings.Repeat("1", 1024),
		"a/2":  strings.Repeat("2", 2048),
		"b/3":  "333",
		"keep": "rewritten",
	}
	for k, v := range want {
		require.NoError(t, b.WriteAll(ctx, k, []byte(v), nil))
	}
	require.NoError(t, b.Delete(ctx, "gone"))
	require.Equal(t, 5, f.Status().Pending, "journal entries left by the outage")
	return want
}

func TestStatusJournalDrainVerifyOnFileBuckets(t *testing.T) {
	pdir, sdir := t.TempDir(), t.TempDir()
	want := leaveOutageWork(t, pdir, sdir)
	u := failoverURL(fileURL(pdir), fileURL(sdir))

	r := ctl(t, "status", u)
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stdout, "pending:    5 journal entries")
	require.Contains(t, r.stdout, "primary:    answers")

	// Flags after the URL, and the JSON a script reads.
	r = ctl(t, "status", u, "-json")
	require.Equal(t, exitOK, r.code)
	var st struct {
		Mode    string  `json:"mode"`
		Pending int     `json:"pending"`
		Age     float64 `json:"oldest_pending_age_seconds"`
		Primary struct {
			State string `json:"state"`
		} `json:"primary"`
		Probe struct {
			Primary, Secondary probeResult
		} `json:"probe"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	require.Equal(t, "redirect", st.Mode)
	require.Equal(t, 5, st.Pending)
	require.Positive(t, st.Age)
	require.Equal(t, "closed", st.Primary.State)
	require.True(t, st.Probe.Primary.Reachable && st.Probe.Secondary.Reachable, "probes: %+v", st.Probe)

	r = ctl(t, "journal", "-json", u)
	require.Equal(t, exitOK, r.code)
	var entries []entryJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &entries), r.stdout)
	var got []string
	for _, e := range entries {
		require.Equal(t, "primary", e.Missing, "entry %+v", e)
		got = append(got, e.Op+" "+e.Key)
	}
	sort.Strings(got)
	require.Equal(t, []string{"delete gone", "put a/1", "put a/2", "put b/3", "put keep"}, got)

	r = ctl(t, "journal", u)
	require.Equal(t, exitOK, r.code)
	require.Regexp(t, `(?m)^\S+\s+put\s+primary\s+2\.0 KiB\s+a/2$`, r.stdout)
	require.Regexp(t, `(?m)^\S+\s+delete\s+primary\s+-\s+gone$`, r.stdout)
	require.Contains(t, r.stdout, "5 entries: 5 keys to repair, about 3.0 KiB to copy")

	r = ctl(t, "drain", u)
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stdout, "pending: 5 keys (5 journal entries), about 3.0 KiB to copy")
	require.Regexp(t, `(?m)^drain: 5/5 keys, 3\.0 KiB/3\.0 KiB, 0 left, `, r.stdout, "the last progress line")
	require.Contains(t, r.stdout, "settled 5 keys in ")
	require.Contains(t, r.stdout, ": 4 copied (3.0 KiB), 1 deleted, 4 temporary copies removed")
	require.Contains(t, r.stdout, "nothing pending")
	require.Equal(t, want, contents(t, openDir(t, pdir)), "the primary after the drain")
	require.Empty(t, contents(t, openDir(t, sdir)), "the secondary keeps only temporary copies in Redirect mode")

	r = ctl(t, "status", u)
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stdout, "pending:    nothing")
	r = ctl(t, "journal", u)
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "no pending entries\n", r.stdout)

	r = ctl(t, "verify", u)
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stdout, "scanned 4 keys in ")
	require.Regexp(t, `(?m)^scanned 4 keys in \S+: 0 differ$`, r.stdout)
}

func TestVerifyFindsAndRepairsAStrayCopy(t *testing.T) {
	pdir, sdir := t.TempDir(), t.TempDir()
	u := failoverURL(fileURL(pdir), fileURL(sdir))
	ctx := context.Background()
	p, s := openDir(t, pdir), openDir(t, sdir)
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		require.NoError(t, p.WriteAll(ctx, k, []byte("v-"+k), nil))
	}
	// A copy on the secondary that no journal entry accounts for, as a
	// lost entry would leave it.
	require.NoError(t, s.WriteAll(ctx, "k5", []byte("stray"), nil))

	r := ctl(t, "verify", u)
	require.Equal(t, exitFailed, r.code)
	require.Contains(t, r.stdout, "scanned 5 keys in ")
	require.Contains(t, r.stdout, ": 1 differs (not repaired: -repair repairs them)")
	require.Contains(t, r.stderr, "1 key differs unrepaired")

	// A bounded scan stops with where to resume.
	r = ctl(t, "verify", "-max-keys", "2", u)
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stdout, "scanned 2 keys in ")
	require.Contains(t, r.stdout, "stopped after key k2: resume with -after k2")

	r = ctl(t, "verify", "-repair", "-settle", "50ms", "-after", "k2", u)
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stdout, "scanned 3 keys in ")
	require.Contains(t, r.stdout, ": 1 differs (1 repaired, 5 B copied)")
	require.Equal(t, "stray", contents(t, p)["k5"], "moved to the primary")
	require.Empty(t, contents(t, s))
}

func TestOverEmulatorsWithThePrimaryDown(t *testing.T) {
	ctx := context.Background()
	const bucket = "ctl"
	s3, gcs := emulators.StartS3(t, bucket), emulators.StartGCS(t, bucket)
	const fast = "&attempt_timeout=300ms&max_attempts=1"
	u := failoverURL(
		"s3://"+bucket+"?endpoint="+url.QueryEscape(s3.URL())+"&use_path_style=true&region=us-east-1&anonymous=true"+fast,
		"gs://"+bucket+"?endpoint="+url.QueryEscape(gcs.URL())+fast,
		"call_timeout=2s")

	// A service writes while the primary's port is closed, and exits.
	b, err := providers.OpenBucket(ctx, u+"&reconcile=false")
	require.NoError(t, err)
	s3.Set(emulators.Closed)
	want := map[string]string{"x/1": "one", "x/2": "two", "x/3": "three"}
	for k, v := range want {
		require.NoError(t, b.WriteAll(ctx, k, []byte(v), nil))
	}
	require.NoError(t, b.Close())

	r := ctl(t, "status", u)
	require.Equal(t, exitFailed, r.code, "a side does not answer")
	require.Contains(t, r.stdout, "primary:    DOES NOT ANSWER")
	require.Contains(t, r.stdout, "secondary:  answers")
	require.Contains(t, r.stdout, "pending:    3 journal entries")
	require.Contains(t, r.stderr, "a side did not answer")

	r = ctl(t, "drain", u)
	require.Equal(t, exitFailed, r.code, "work remains")
	require.Contains(t, r.stdout, "settled 0 keys")
	require.Contains(t, r.stdout, "still pending: 3 journal entries")
	require.Contains(t, r.stderr, "the last pass failed:\n  failoverblob: checking that the sides are distinct storage: ")
	require.Contains(t, r.stderr, "3 journal entries still pending")

	r = ctl(t, "journal", u)
	require.Equal(t, exitFailed, r.code, "the primary's part of the journal is unread")
	require.Contains(t, r.stdout, "3 entries: 3 keys to repair, about 11 B to copy")
	require.Contains(t, r.stderr, "the list is incomplete: journal: partial listing")

	s3.Set(emulators.Healthy)
	r = ctl(t, "drain", "-v", u)
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stderr, `msg="failoverblob: repaired" key=x/1 side=primary action=copied`, "-v logs the repairs")
	require.Contains(t, r.stdout, ": 3 copied (11 B), 0 deleted, 3 temporary copies removed")
	require.Contains(t, r.stdout, "nothing pending")

	p, err := providers.OpenBucket(ctx, "s3://"+bucket+"?endpoint="+url.QueryEscape(s3.URL())+"&use_path_style=true&region=us-east-1&anonymous=true")
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, want, contents(t, p), "the S3 primary after the drain")
}

func TestJournalFileHeldByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "failover.journal")
	j, err := journal.OpenFile(path)
	require.NoError(t, err)
	defer j.Close()
	r := ctl(t, "status", failoverURL(fileURL(t.TempDir()), fileURL(t.TempDir()), "journal_file="+url.QueryEscape(path)))
	require.Equal(t, exitFailed, r.code)
	require.Contains(t, r.stderr, "the journal_file is held by a running instance")
}

func TestBadCommandLines(t *testing.T) {
	dir := fileURL(t.TempDir())
	good := failoverURL(dir, "mem://")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage: failoverctl COMMAND"},
		{"unknown command", []string{"stats", good}, `unknown command "stats"`},
		{"unknown flag", []string{"status", "-jsn", good}, "flag provided but not defined: -jsn"},
		{"no URL", []string{"drain"}, "want one failover:// URL, got 0 arguments"},
		{"two URLs", []string{"journal", good, good}, "want one failover:// URL, got 2 arguments"},
		{"not a failover URL", []string{"status", dir}, `want a failover:// URL, not one with scheme "file"`},
		{"not a URL", []string{"status", "failover://%zz"}, "not a URL"},
		{"unknown parameter", []string{"status", good + "&mdoe=mirror"}, `bad URL: unknown parameter "mdoe"`},
		{"no secondary", []string{"drain", "failover://?primary=" + url.QueryEscape(dir)}, "bad URL: parameter secondary is required"},
		{"unknown side scheme", []string{"verify", failoverURL("s4://b", "mem://")}, `bad URL: parameter primary: no bucket opener for scheme "s4"`},
		{"bad value", []string{"status", good + "&call_timeout=soon"}, `call_timeout="soon": not a duration`},
		{"bad reconcile", []string{"drain", good + "&reconcile=sometimes"}, `parameter reconcile="sometimes": not true or false`},
		{"negative bound", []string{"verify", "-max-keys", "-1", good}, "must not be negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := ctl(t, c.args...)
			require.Equal(t, exitUsage, r.code)
			require.Contains(t, r.stderr, c.want)
			require.Empty(t, r.stdout)
		})
	}
}
