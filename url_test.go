package failoverblob_test

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

func failoverURL(primary, secondary string, params ...string) string {
	u := "failover://?primary=" + url.QueryEscape(primary) + "&secondary=" + url.QueryEscape(secondary)
	for _, p := range params {
		u += "&" + p
	}
	return u
}

func TestURLOpensThroughDefaultMux(t *testing.T) {
	ctx := context.Background()
	dirs := [2]string{t.TempDir(), t.TempDir()}
	b, err := blob.OpenBucket(ctx, failoverURL("file://"+filepath.ToSlash(dirs[0]), "file://"+filepath.ToSlash(dirs[1]),
		"mode=mirror", "ack=both", "reconcile=false"))
	require.NoError(t, err)
	defer b.Close()
	var f *failoverblob.Failover
	require.True(t, b.As(&f), "the failover bucket is reachable through As")
	require.NoError(t, b.WriteAll(ctx, "k", []byte("v"), nil))
	// Mirror mode with AckBoth: both sides hold the object.
	for _, dir := range dirs {
		side, err := fileblob.OpenBucket(dir, nil)
		require.NoError(t, err)
		got, err := side.ReadAll(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "v", string(got))
		require.NoError(t, side.Close())
	}
}

func TestURLParameters(t *testing.T) {
	ctx := context.Background()
	// Every parameter, each with a value other than its default.
	u := failoverURL("mem://", "mem://",
		"mode=redirect", "ack=either", "call_timeout=3s", "first_byte_timeout=4s", "idle_timeout=5s",
		"spool_memory=-1", "spool_dir="+url.QueryEscape(t.TempDir()), "writer_id=w1", "best_effort_list=true",
		"reconcile=false", "reconcile_interval=7s", "reconcile_concurrency=9",
		"breaker_failures=2", "breaker_timeout=11s", "breaker_interval=13s", "breaker_probes=3",
		"strict_reads=true", "max_clock_skew=2s", "force=read-only", "probe_interval=-1s",
		"verify_interval=1h", "verify_keys_per_second=50")
	b, err := blob.OpenBucket(ctx, u)
	require.NoError(t, err)
	defer b.Close()
	var f *failoverblob.Failover
	require.True(t, b.As(&f))
	o := f.Options()
	require.Equal(t, failoverblob.Redirect, o.Mode)
	require.Equal(t, 3*time.Second, o.CallTimeout)
	require.Equal(t, 4*time.Second, o.FirstByteTimeout)
	require.Equal(t, 5*time.Second, o.IdleTimeout)
	require.Equal(t, int64(0), o.SpoolMemory, "-1 keeps nothing in memory")
	require.Equal(t, "w1", o.WriterID)
	require.True(t, o.StrictReads)
	require.Equal(t, 2*time.Second, o.MaxClockSkew)
	require.Equal(t, failoverblob.ForceReadOnly, f.Forced())
	require.Equal(t, -time.Second, o.ProbeInterval)
	require.Equal(t, time.Hour, o.VerifyInterval)
	require.Equal(t, 50, o.VerifyKeysPerSecond)
	require.True(t, o.BestEffortList)
	require.Equal(t, 7*time.Second, o.ReconcileInterval)
	require.Equal(t, 9, o.ReconcileConcurrency)
	require.NotNil(t, o.Breaker)
	require.Equal(t, 11*time.Second, o.Breaker.Timeout)
	require.Equal(t, 13*time.Second, o.Breaker.Interval)
	require.Equal(t, uint32(3), o.Breaker.HalfOpenRequests)
	require.False(t, o.Breaker.ReadyToTrip(circuit.Counts{ConsecutiveFailures: 1}))
	require.True(t, o.Breaker.ReadyToTrip(circuit.Counts{ConsecutiveFailures: 2}))
}

func TestURLErrors(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name, url, want string
	}{
		{"unknown parameter", failoverURL("mem://", "mem://", "mdoe=mirror"), `unknown parameter "mdoe"`},
		{"no primary", "failover://?secondary=mem%3A%2F%2F", "parameter primary is required"},
		{"no secondary", "failover://?primary=mem%3A%2F%2F", "parameter secondary is required"},
		{"nested URL without scheme", failoverURL("orders", "mem://"), "primary: \"orders\" is not a bucket URL"},
		{"nested URL unparseable", "failover://?primary=%25zz%3A%2F%2F&secondary=mem%3A%2F%2F", "is not a bucket URL"},
		{"nested scheme unknown", failoverURL("nosuch://b", "mem://"), `primary: no bucket opener for scheme "nosuch" (known: `},
		{"bad mode", failoverURL("mem://", "mem://", "mode=mirrored"), `mode="mirrored": want redirect or mirror`},
		{"bad ack", failoverURL("mem://", "mem://", "ack=all"), `ack="all": want either or both`},
		{"bad duration", failoverURL("mem://", "mem://", "call_timeout=10"), `call_timeout="10": not a duration`},
		{"negative duration", failoverURL("mem://", "mem://", "idle_timeout=-1s"), "must be positive"},
		{"bad integer", failoverURL("mem://", "mem://", "reconcile_concurrency=many"), "not an integer"},
		{"zero concurrency", failoverURL("mem://", "mem://", "reconcile_concurrency=0"), "must be at least 1"},
		{"bad bool", failoverURL("mem://", "mem://", "reconcile=maybe"), "not true or false"},
		{"repeated", failoverURL("mem://", "mem://", "mode=mirror", "mode=redirect"), `"mode" is given 2 times`},
		{"empty journal file", failoverURL("mem://", "mem://", "journal_file="), "parameter journal_file is empty"},
		{"host given", "failover://orders?primary=mem%3A%2F%2F&secondary=mem%3A%2F%2F", "names its sides in the primary and secondary parameters"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := blob.OpenBucket(ctx, c.url)
			if err == nil {
				b.Close()
			}
			require.ErrorIs(t, err, failoverblob.ErrBadURL)
			require.Contains(t, err.Error(), c.want)
		})
	}
}

// TestURLOpenErrorsAreNotBadURLs: a URL the opener accepts whose side then
// fails to open is not ErrBadURL, so tools can tell a mistyped URL from a
// storage they cannot reach.
func TestURLOpenErrorsAreNotBadURLs(t *testing.T) {
	missing := "file://" + filepath.ToSlash(filepath.Join(t.TempDir(), "no-such-dir"))
	b, err := blob.OpenBucket(context.Background(), failoverURL(missing, "mem://"))
	if err == nil {
		b.Close()
	}
	require.Error(t, err)
	require.NotErrorIs(t, err, failoverblob.ErrBadURL)
}

func TestURLErrorsHideNestedQueries(t *testing.T) {
	// A nested URL's query is where an S3-compatible service's options
	// live; an error about its shape shows the URL without it.
	_, err := blob.OpenBucket(context.Background(), failoverURL("bucket?token=s3cr3t", "mem://"))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cr3t")
	require.True(t, strings.Contains(err.Error(), "bucket?…"), err.Error())
}

// openerFunc opens a bucket URL with a function.
type openerFunc func(context.Context, *url.URL) (*blob.Bucket, error)

func (f openerFunc) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	return f(ctx, u)
}

func TestURLNestedThroughSameMuxAndReconcilesInBackground(t *testing.T) {
	ctx := context.Background()
	// A mux of our own with a fault-injecting scheme: the failover opener
	// registered on it opens its sides through it.
	m := new(blob.URLMux)
	faulty := map[string]*failovertest.Injector{}
	raw := map[string]*blob.Bucket{}
	m.RegisterBucket("faulty", openerFunc(func(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
		raw[u.Host] = memblob.OpenBucket(nil)
		b, in := failovertest.Wrap(raw[u.Host], nil)
		faulty[u.Host] = in
		return b, nil
	}))
	m.RegisterBucket(failoverblob.Scheme, &failoverblob.URLOpener{Mux: m})
	b, err := m.OpenBucket(ctx, failoverURL("faulty://p", "faulty://s",
		"reconcile_interval=5ms", "breaker_failures=1", "breaker_timeout=5ms"))
	require.NoError(t, err)
	defer b.Close()
	var f *failoverblob.Failover
	require.True(t, b.As(&f))

	faulty["p"].Outage(nil)
	require.NoError(t, b.WriteAll(ctx, "k", []byte("v"), nil), "the write goes to the secondary")
	faulty["p"].Heal()
	// Run, started by the opener, copies it back to the primary.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := raw["p"].ReadAll(ctx, "k")
		if err == nil {
			require.Equal(t, "v", string(got))
			break
		}
		require.True(t, time.Now().Before(deadline), "the background reconciler did not repair the primary: %v", err)
		time.Sleep(5 * time.Millisecond)
	}
}

func TestURLJournalFileKeepsPendingWorkAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "failover.journal")
	// The sides outlive the failover buckets: a mux whose scheme hands out
	// the same two memblob buckets, behind fault injectors, each time.
	raw := map[string]*blob.Bucket{"p": memblob.OpenBucket(nil), "s": memblob.OpenBucket(nil)}
	faults := map[string]*failovertest.Injector{}
	m := new(blob.URLMux)
	m.RegisterBucket("shared", openerFunc(func(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
		b, in := failovertest.Wrap(raw[u.Host], nil)
		faults[u.Host] = in
		return b, nil
	}))
	m.RegisterBucket(failoverblob.Scheme, &failoverblob.URLOpener{Mux: m})
	u := failoverURL("shared://p", "shared://s", "reconcile=false", "journal_file="+url.QueryEscape(path))

	b, err := m.OpenBucket(ctx, u)
	require.NoError(t, err)
	faults["p"].Outage(nil)
	require.NoError(t, b.WriteAll(ctx, "k", []byte("redirected"), nil))
	require.NoError(t, b.Delete(ctx, "gone"))
	_, err = m.OpenBucket(ctx, u)
	require.ErrorIs(t, err, journal.ErrLocked, "one bucket at a time holds the journal file")
	require.NoError(t, b.Close())

	// Reopened, as after a restart: the pending work is still known.
	b, err = m.OpenBucket(ctx, u)
	require.NoError(t, err)
	defer b.Close()
	var f *failoverblob.Failover
	require.True(t, b.As(&f))
	require.Equal(t, 2, f.Status().Pending)
	got, err := b.ReadAll(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "redirected", string(got))
	rep, err := f.Drain(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, rep.Remaining)
	got, err = raw["p"].ReadAll(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "redirected", string(got))
}

// Options reports what is in effect: the random writer id, the breakers'
// defaults and the default journal.
func TestOptionsReportWhatIsInEffect(t *testing.T) {
	ctx := context.Background()
	f, err := failoverblob.New(ctx, memblob.OpenBucket(nil), memblob.OpenBucket(nil), nil)
	require.NoError(t, err)
	defer f.Close()
	o := f.Options()
	require.NotEmpty(t, o.WriterID, "the writer id chosen")
	require.NotNil(t, o.Breaker)
	require.Equal(t, circuit.DefaultTimeout, o.Breaker.Timeout)
	require.Equal(t, circuit.DefaultInterval, o.Breaker.Interval)
	require.Equal(t, uint32(1), o.Breaker.HalfOpenRequests)
	require.NotNil(t, o.Breaker.ReadyToTrip)
	_, bucketJournal := o.Journal.(*journal.Bucket)
	require.True(t, bucketJournal, "the default journal is on the buckets")
}

// An unescaped side URL with two parameters loses the second to the
// failover URL: the error says to escape the side URLs. A side opener's
// error does not show the side URL's query.
func TestURLErrorsHelpAndRedact(t *testing.T) {
	ctx := context.Background()
	_, err := blob.OpenBucket(ctx, "failover://?primary=mem://?a=1&endpoint=x&secondary=mem://")
	require.Error(t, err)
	require.Contains(t, err.Error(), "url.QueryEscape")

	for _, side := range []string{"nosuch://assets?secret=hunter2", "file://" + filepath.ToSlash(t.TempDir()) + "?secret=hunter2"} {
		_, err = blob.OpenBucket(ctx, failoverURL(side, "mem://"))
		require.Error(t, err)
		require.NotContains(t, err.Error(), "hunter2", "the error of opening %s", side)
	}
}
