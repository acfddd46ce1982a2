package providers_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/driverx"
	"github.com/failoverblob/failoverblob/internal/bucketconv"
	"github.com/failoverblob/failoverblob/internal/emulators"
	"github.com/failoverblob/failoverblob/providers"
)

func TestOpenEachProvider(t *testing.T) {
	ctx := context.Background()
	s3srv, gcssrv := startS3(t), startGCS(t)
	for _, c := range []struct {
		name string
		url  string
		as   any
	}{
		{"s3", s3srv.url, new(*s3.Client)},
		{"gs", gcssrv.url, new(*storage.Client)},
		{"file", "file://" + t.TempDir(), nil},
		{"mem", "mem://", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := providers.OpenBucket(ctx, c.url)
			require.NoError(t, err)
			defer b.Close()
			require.NoError(t, b.WriteAll(ctx, "dir/key", []byte("hello"), &blob.WriterOptions{Metadata: map[string]string{"m": "v"}}))
			got, err := b.ReadAll(ctx, "dir/key")
			require.NoError(t, err)
			require.Equal(t, "hello", string(got))
			a, err := b.Attributes(ctx, "dir/key")
			require.NoError(t, err)
			require.Equal(t, "v", a.Metadata["m"])
			require.NoError(t, b.Delete(ctx, "dir/key"))
			_, err = b.ReadAll(ctx, "dir/key")
			require.Equal(t, gcerrors.NotFound, gcerrors.Code(err))
			if c.as != nil {
				require.True(t, b.As(c.as), "the provider's client is reachable with As")
			}
		})
	}
}

// The failover bucket's As and ErrorAs reach the provider types of its
// sides, through the sides' public API: the S3 primary's client and its
// error for a missing key.
func TestFailoverAsReachesTheSides(t *testing.T) {
	ctx := context.Background()
	s3e, gcse := startS3(t), startGCS(t)
	b, err := providers.OpenBucket(ctx, failoverURL(s3e.url, gcse.url, "reconcile=false"))
	require.NoError(t, err)
	defer b.Close()
	var client *s3.Client
	require.True(t, b.As(&client), "the primary's S3 client")
	var gclient *storage.Client
	require.True(t, b.As(&gclient), "the secondary's GCS client")

	_, err = b.ReadAll(ctx, "missing")
	require.Equal(t, gcerrors.NotFound, gcerrors.Code(err), "%v", err)
	var apiErr smithy.APIError
	require.True(t, b.ErrorAs(err, &apiErr), "the S3 error behind %v", err)
	require.Equal(t, "NoSuchKey", apiErr.ErrorCode())
}

func TestFailoverURLOverProviders(t *testing.T) {
	ctx := context.Background()
	s3e, gcse := startS3(t), startGCS(t)
	u := failoverURL(s3e.url, gcse.url, "mode=mirror", "reconcile=false")
	b, err := providers.OpenBucket(ctx, u)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.WriteAll(ctx, "k", []byte("both"), nil))
	var f *failoverblob.Failover
	require.True(t, b.As(&f))
	for _, side := range []*blob.Bucket{s3e.open(t), gcse.open(t)} {
		got, err := side.ReadAll(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "both", string(got))
	}

	// blob.OpenBucket reaches the failover scheme too, with the sides
	// opened by gocloud's own openers on the default mux.
	b2, err := blob.OpenBucket(ctx, failoverURL(s3URL(s3e.srv), "mem://", "reconcile=false"))
	require.NoError(t, err)
	defer b2.Close()
	require.NoError(t, b2.WriteAll(ctx, "k2", []byte("v"), nil))
	got, err := b2.ReadAll(ctx, "k2")
	require.NoError(t, err)
	require.Equal(t, "v", string(got))
}

func TestProviderURLErrors(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ url, want string }{
		{"s3://b?attempt_timeout=soon", `attempt_timeout="soon"`},
		{"s3://b?max_attempts=0", `max_attempts="0"`},
		{"s3://b?region=us-east-1&colour=blue", `unknown query parameter "colour"`},
		{"s3://b?region=us-east-1&use_path_style=maybe", `use_path_style="maybe"`},
		{"s3://b?region=us-east-1&ssetype=rot13", `ssetype="rot13"`},
		{"s3://b?region=us-east-1&rate_limiter_capacity=lots", `rate_limiter_capacity="lots"`},
		{"gs://b?colour=blue", `unknown parameter "colour"`},
		{"gs://b?endpoint=localhost:1", `endpoint="localhost:1"`},
		{"gs://b?max_backoff=-1s", `max_backoff="-1s"`},
		{"azblob://c?colour=blue", `unknown query parameter "colour"`},
		{"azblob://c?max_attempts=x", `max_attempts="x"`},
		{"nosuch://b", `no driver registered for "nosuch"`},
	} {
		b, err := providers.OpenBucket(ctx, c.url)
		if err == nil {
			b.Close()
		}
		require.Error(t, err, c.url)
		require.Contains(t, err.Error(), c.want, c.url)
	}
}

// rate_limiter_capacity is the S3 retryer's budget of retry tokens: with
// too few for one retry (a retry costs 5), a 503 is tried once.
func TestS3RateLimiterCapacityIsHonoured(t *testing.T) {
	ctx := context.Background()
	e := startS3(t)
	for _, c := range []struct {
		param string
		want  int64
	}{{"", 3}, {"&rate_limiter_capacity=1", 1}} {
		b, err := providers.OpenBucket(ctx, s3URL(e.srv)+"&attempt_timeout=200ms&max_attempts=3&max_backoff=10ms"+c.param)
		require.NoError(t, err)
		require.NoError(t, b.WriteAll(ctx, "k", []byte("v"), nil))
		e.srv.Set(emulators.Unavailable)
		before := e.srv.Requests()
		_, err = b.Attributes(ctx, "k")
		require.Error(t, err)
		require.Equal(t, c.want, e.srv.Requests()-before, "attempts with %q: %v", c.param, err)
		e.srv.Set(emulators.Healthy)
		require.NoError(t, b.Close())
	}
}

// TestAttemptsAreBounded checks the transport each provider gets: a side
// answering 503 is asked exactly max_attempts times, and a hung side is
// given up on after max_attempts attempt deadlines instead of never.
func TestAttemptsAreBounded(t *testing.T) {
	ctx := context.Background()
	for _, start := range []func(*testing.T) emulator{startS3, startGCS} {
		e := start(t)
		base := s3URL(e.srv)
		if e.name == "gcs" {
			base = gcsURL(e.srv)
		}
		t.Run(e.name, func(t *testing.T) {
			b, err := providers.OpenBucket(ctx, base+"&attempt_timeout=200ms&max_attempts=3&max_backoff=10ms")
			require.NoError(t, err)
			defer b.Close()
			require.NoError(t, b.WriteAll(ctx, "k", []byte("v"), nil))

			e.srv.Set(emulators.Unavailable)
			before := e.srv.Requests()
			_, err = b.Attributes(ctx, "k")
			require.Error(t, err)
			require.Equal(t, int64(3), e.srv.Requests()-before, "a 503 is tried max_attempts times: %v", err)

			e.srv.Set(emulators.Hang)
			before = e.srv.Requests()
			done := make(chan error, 1)
			go func() { _, err := b.Attributes(ctx, "k"); done <- err }()
			select {
			case err := <-done:
				require.Error(t, err)
				require.Equal(t, int64(3), e.srv.Requests()-before, "a hung call is tried max_attempts times: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("a call to a hung side did not return: attempts have no deadline")
			}
			e.srv.Set(emulators.Healthy)
		})
	}
}

// TestGCSSmallWriteBuffer measures the memory one 1 KiB write allocates:
// with the small-write path it is far below the client's 16 MiB chunk
// buffer, which the same write allocates with the path turned off.
func TestGCSSmallWriteBuffer(t *testing.T) {
	ctx := context.Background()
	e := startGCS(t)
	allocated := func(tr providers.Transport) uint64 {
		b, err := providers.NewMux(tr).OpenBucket(ctx, gcsURL(e.srv))
		require.NoError(t, err)
		defer b.Close()
		data := bytes.Repeat([]byte("x"), 1024)
		require.NoError(t, b.WriteAll(ctx, "warm-up", data, nil))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		require.NoError(t, b.WriteAll(ctx, "small", data, nil))
		runtime.ReadMemStats(&after)
		got, err := b.ReadAll(ctx, "small")
		require.NoError(t, err)
		require.Equal(t, data, got)
		return after.TotalAlloc - before.TotalAlloc
	}
	small := allocated(providers.Transport{})
	chunked := allocated(providers.Transport{SmallWrite: -1})
	t.Logf("allocated by one 1 KiB write: %d KiB with the small-write path, %d KiB without", small>>10, chunked>>10)
	require.Less(t, small, uint64(1<<20), "a small write allocates less than 1 MiB")
	require.GreaterOrEqual(t, chunked, uint64(16<<20), "without the path the client allocates its 16 MiB chunk (so the measurement is sound)")
}

// A write's MD5 reaches GCS, which checks the object against it: through
// gcsblob alone, and through a Mirror-mode failover bucket, which hands it
// over in the write's context rather than as a ContentMD5 the side's
// portable layer would hash every byte to check again (both its sides are
// GCS: the caller's hook runs for the first side it reaches).
func TestGCSWriteSendsItsMD5(t *testing.T) {
	for _, c := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"gcs", func(t *testing.T) string { return startGCS(t).url }},
		{"failover", func(t *testing.T) string {
			return failoverURL(startGCS(t).url, startGCS(t).url, "mode=mirror", "reconcile=false")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			b, err := providers.OpenBucket(ctx, c.url(t))
			require.NoError(t, err)
			defer b.Close()
			data := []byte("an object with an MD5")
			var w *storage.Writer
			err = b.WriteAll(ctx, "k", data, &blob.WriterOptions{BeforeWrite: func(as func(any) bool) error {
				require.True(t, as(&w), "the GCS writer is reachable with As")
				return nil
			}})
			require.NoError(t, err)
			sum := md5.Sum(data)
			require.Equal(t, sum[:], w.MD5, "the MD5 the GCS writer sent")
		})
	}
}

// Each bucket says whether its provider takes a write's MD5
// (driverx.MD5Taker): GCS does (see TestGCSWriteSendsItsMD5), S3, through
// s3blob, does not.
func TestBucketsSayWhetherTheyTakeMD5(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		start func(*testing.T) emulator
		want  bool
	}{{startS3, false}, {startGCS, true}} {
		e := c.start(t)
		t.Run(e.name, func(t *testing.T) {
			b, err := providers.OpenBucket(ctx, e.url)
			require.NoError(t, err)
			defer b.Close()
			var mt driverx.MD5Taker
			require.True(t, b.As(&mt), "the %s bucket says whether it takes an MD5", e.name)
			require.Equal(t, c.want, mt.TakesMD5(), "the %s bucket takes an MD5", e.name)
		})
	}
}

// TestConditionalWritesOnEmulators checks the conditional write each
// provider gives the reconciler, against the emulators' own precondition
// checks: a write over the object examined succeeds, over anything else it
// fails with FailedPrecondition and leaves the object alone.
func TestConditionalWritesOnEmulators(t *testing.T) {
	ctx := context.Background()
	for _, start := range []func(*testing.T) emulator{startS3, startGCS} {
		e := start(t)
		t.Run(e.name, func(t *testing.T) {
			b, err := providers.OpenBucket(ctx, e.url)
			require.NoError(t, err)
			defer b.Close()
			var cw driverx.ConditionalWriter
			require.True(t, b.As(&cw), "the %s bucket offers conditional writes", e.name)
			attrs := func(key string) *driver.Attributes {
				a, err := b.Attributes(ctx, key)
				require.NoError(t, err)
				return bucketconv.Attributes(a)
			}
			writeIf := func(key, data string, prior *driver.Attributes) error {
				hook := cw.WriteIf(prior)
				require.NotNil(t, hook, "the condition can be expressed")
				return b.WriteAll(ctx, key, []byte(data), &blob.WriterOptions{BeforeWrite: hook})
			}
			read := func(key string) string {
				got, err := b.ReadAll(ctx, key)
				require.NoError(t, err)
				return string(got)
			}

			require.NoError(t, writeIf("k", "first", nil), "absent and expected absent")
			err = writeIf("k", "over an object thought absent", nil)
			require.Equal(t, gcerrors.FailedPrecondition, gcerrors.Code(err), "%v", err)
			require.Equal(t, "first", read("k"))

			seen := attrs("k")
			require.NoError(t, b.WriteAll(ctx, "k", []byte("another writer's"), nil))
			err = writeIf("k", "over a stale object", seen)
			require.Equal(t, gcerrors.FailedPrecondition, gcerrors.Code(err), "%v", err)
			require.Equal(t, "another writer's", read("k"))

			require.NoError(t, writeIf("k", "over the object examined", attrs("k")))
			require.Equal(t, "over the object examined", read("k"))
		})
	}
}

// TestConditionalDeletesOnEmulators checks the conditional delete each
// provider gives the reconciler, against the emulators' own precondition
// checks: a delete of the object examined succeeds; of anything else it
// fails with FailedPrecondition and leaves the object alone.
func TestConditionalDeletesOnEmulators(t *testing.T) {
	ctx := context.Background()
	for _, start := range []func(*testing.T) emulator{startS3, startGCS} {
		e := start(t)
		t.Run(e.name, func(t *testing.T) {
			b, err := providers.OpenBucket(ctx, e.url)
			require.NoError(t, err)
			defer b.Close()
			var cd driverx.ConditionalDeleter
			require.True(t, b.As(&cd), "the %s bucket offers conditional deletes", e.name)
			attrs := func(key string) *driver.Attributes {
				a, err := b.Attributes(ctx, key)
				require.NoError(t, err)
				return bucketconv.Attributes(a)
			}
			deleteIf := func(key string, prior *driver.Attributes) error {
				hook := cd.DeleteIf(prior)
				require.NotNil(t, hook, "the condition can be expressed")
				return b.DeleteWithOptions(ctx, key, &blob.DeleteOptions{BeforeDelete: hook})
			}
			require.NoError(t, b.WriteAll(ctx, "k", []byte("first"), nil))
			seen := attrs("k")
			require.NoError(t, b.WriteAll(ctx, "k", []byte("another writer's"), nil))
			err = deleteIf("k", seen)
			require.Equal(t, gcerrors.FailedPrecondition, gcerrors.Code(err), "%v", err)
			got, err := b.ReadAll(ctx, "k")
			require.NoError(t, err)
			require.Equal(t, "another writer's", string(got))

			require.NoError(t, deleteIf("k", attrs("k")))
			_, err = b.Attributes(ctx, "k")
			require.Equal(t, gcerrors.NotFound, gcerrors.Code(err), "%v", err)
		})
	}
}

// TestCredentialsStayOutOfErrorsLogsAndStatus runs an outage with
// credentials in the environment and checks that no error, log line or
// status report carries the secret.
func TestCredentialsStayOutOfErrorsLogsAndStatus(t *testing.T) {
	const secret = "wJalrXUtnFEMI-K7MDENG-SECRET-do-not-print"
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID")
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	ctx := context.Background()
	s3e, gcse := startS3(t), startGCS(t)
	// Signed requests this time (no anonymous=true).
	signed := strings.Replace(s3e.url, "&anonymous=true", "", 1)
	var logs bytes.Buffer
	primary, err := providers.OpenBucket(ctx, signed)
	require.NoError(t, err)
	secondary, err := providers.OpenBucket(ctx, gcse.url)
	require.NoError(t, err)
	f, err := failoverblob.New(ctx, primary, secondary, &failoverblob.Options{
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	require.NoError(t, err)
	b := f.Bucket()
	defer b.Close()
	require.NoError(t, b.WriteAll(ctx, "k", []byte("v"), nil))

	var errs []error
	for _, fault := range []emulators.Fault{emulators.Unavailable, emulators.Reset, emulators.Closed} {
		s3e.srv.Set(fault)
		_, err := primary.Attributes(ctx, "k")
		errs = append(errs, err)
		errs = append(errs, b.WriteAll(ctx, "k", []byte("v2"), nil))
		_, err = b.ReadAll(ctx, "k")
		errs = append(errs, err)
	}
	s3e.srv.Set(emulators.Healthy)
	_, err = providers.OpenBucket(ctx, signed+"&max_attempts=nope")
	errs = append(errs, err)
	st, err := json.Marshal(f.Status())
	require.NoError(t, err)

	var all strings.Builder
	for _, err := range errs {
		if err != nil {
			all.WriteString(err.Error() + "\n")
		}
	}
	all.Write(st)
	all.Write(logs.Bytes())
	require.NotEmpty(t, logs.String(), "the outage was logged")
	require.NotContains(t, all.String(), secret)
}

// TestCloseReleasesClients checks that closing a bucket releases what was
// made for it: the GCS client and every pooled connection, whose
// goroutines would otherwise live on for the idle timeout.
func TestCloseReleasesClients(t *testing.T) {
	ctx := context.Background()
	s3e, gcse := startS3(t), startGCS(t)
	pooled := func() int {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		return strings.Count(string(buf[:n]), "net/http.(*persistConn).readLoop")
	}
	before := pooled() // connections of other tests' clients, which may linger
	b, err := providers.OpenBucket(ctx, failoverURL(s3e.url, gcse.url, "mode=mirror", "reconcile=false"))
	require.NoError(t, err)
	require.NoError(t, b.WriteAll(ctx, "k", []byte("v"), nil))
	require.Greater(t, pooled(), before, "the write left pooled connections")
	require.NoError(t, b.Close())
	deadline := time.Now().Add(5 * time.Second)
	for pooled() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d pooled connections outlived Close", pooled()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConditionalWrapsBucketsOpenedElsewhere gives a bucket opened with
// gocloud's own s3blob the conditional writes, and leaves others alone.
func TestConditionalWrapsBucketsOpenedElsewhere(t *testing.T) {
	ctx := context.Background()
	e := startS3(t)
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(e.srv.URL()),
		UsePathStyle: true,
		Credentials:  aws.AnonymousCredentials{},
	})
	raw, err := s3blob.OpenBucket(ctx, client, testBucket, nil)
	require.NoError(t, err)
	b := providers.Conditional(raw)
	defer b.Close()
	var cw driverx.ConditionalWriter
	require.True(t, b.As(&cw))
	require.NoError(t, b.WriteAll(ctx, "k", []byte("v1"), nil))
	err = b.WriteAll(ctx, "k", []byte("v2"), &blob.WriterOptions{BeforeWrite: cw.WriteIf(nil)})
	require.Equal(t, gcerrors.FailedPrecondition, gcerrors.Code(err), "%v", err)

	m := memblob.OpenBucket(nil)
	defer m.Close()
	require.Same(t, m, providers.Conditional(m), "a bucket without conditional writes is returned as it is")
}
