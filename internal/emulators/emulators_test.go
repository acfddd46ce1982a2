package emulators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

const bucketName = "bucket"

// TestMain fails the run if a server, proxy or connection goroutine of this
// package outlives the tests: every Close must have stopped everything.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaks := leakedGoroutines(time.Second); leaks != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaks)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines returns the stacks of goroutines still running server or
// proxy code, waiting up to wait for them to end.
func leakedGoroutines(wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaks []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "net/http.(*conn).serve") ||
				strings.Contains(g, "emulators.(*Server)") ||
				strings.Contains(g, "emulators.(*Proxy)") ||
				strings.Contains(g, "emulators.(*proxyConn)") {
				leaks = append(leaks, g)
			}
		}
		if len(leaks) == 0 || time.Now().After(deadline) {
			return strings.Join(leaks, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testHTTPClient returns an HTTP client of its own, with short dial and
// header timeouts, whose idle connections are closed at the end of the test.
func testHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 500 * time.Millisecond}).DialContext,
		ResponseHeaderTimeout: 5 * time.Second,
		MaxIdleConnsPerHost:   4,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// newS3Client returns an aws-sdk-go-v2 S3 client for the emulator at
// endpoint, with a single attempt per call.
func newS3Client(endpoint string, hc *http.Client) *s3.Client {
	return s3.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""),
		HTTPClient:  hc,
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 1 })
		},
	}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	})
}

// openS3 opens the emulator's bucket through s3blob.
func openS3(t *testing.T, endpoint string) (*blob.Bucket, *s3.Client) {
	t.Helper()
	client := newS3Client(endpoint, testHTTPClient(t))
	b, err := s3blob.OpenBucket(context.Background(), client, bucketName, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, client
}

// openGCS opens the emulator's bucket through gcsblob, over a storage client
// that makes a single attempt per call.
func openGCS(t *testing.T, endpoint string) (*blob.Bucket, *storage.Client) {
	t.Helper()
	ctx := context.Background()
	c, err := storage.NewClient(ctx,
		option.WithEndpoint(endpoint+"/storage/v1/"),
		option.WithoutAuthentication(),
		option.WithHTTPClient(testHTTPClient(t)))
	if err != nil {
		t.Fatal(err)
	}
	c.SetRetry(storage.WithPolicy(storage.RetryNever))
	b, err := gcsblob.OpenBucket(ctx, nil, bucketName, &gcsblob.Options{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		_ = c.Close()
	})
	return b, c
}

// provider is one emulator with the gocloud bucket that talks to it.
type provider struct {
	name string
	// start starts the emulator; open opens a bucket on endpoint.
	start func(t *testing.T) *Server
	open  func(t *testing.T, endpoint string) *blob.Bucket
	// isUnavailable reports whether err carries the provider's raw 503.
	isUnavailable func(t *testing.T, err error) bool
}

var providers = []provider{
	{
		name:  "S3",
		start: func(t *testing.T) *Server { return StartS3(t, bucketName) },
		open: func(t *testing.T, endpoint string) *blob.Bucket {
			b, _ := openS3(t, endpoint)
			return b
		},
		isUnavailable: func(t *testing.T, err error) bool {
			var apiErr smithy.APIError
			var respErr *awshttp.ResponseError
			if !errors.As(err, &apiErr) || !errors.As(err, &respErr) {
				t.Logf("not an S3 API error: %T %v", err, err)
				return false
			}
			t.Logf("S3 API error: code %q, HTTP %d", apiErr.ErrorCode(), respErr.HTTPStatusCode())
			return apiErr.ErrorCode() == "SlowDown" && respErr.HTTPStatusCode() == http.StatusServiceUnavailable
		},
	},
	{
		name:  "GCS",
		start: func(t *testing.T) *Server { return StartGCS(t, bucketName) },
		open: func(t *testing.T, endpoint string) *blob.Bucket {
			b, _ := openGCS(t, endpoint)
			return b
		},
		isUnavailable: func(t *testing.T, err error) bool {
			var gErr *googleapi.Error
			if !errors.As(err, &gErr) {
				t.Logf("not a googleapi error: %T %v", err, err)
				return false
			}
			t.Logf("googleapi error: code %d, message %q", gErr.Code, gErr.Message)
			return gErr.Code == http.StatusServiceUnavailable
		},
	},
}

func forEachProvider(t *testing.T, f func(t *testing.T, p provider)) {
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) { f(t, p) })
	}
}

func mustWrite(t *testing.T, b *blob.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.WriteAll(context.Background(), key, data, nil); err != nil {
		t.Fatalf("write %q: %v", key, err)
	}
}

func mustRead(t *testing.T, b *blob.Bucket, key string, want []byte) {
	t.Helper()
	got, err := b.ReadAll(context.Background(), key)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %q: got %d bytes %.40q, want %d bytes %.40q", key, len(got), got, len(want), want)
	}
}

func listKeys(t *testing.T, b *blob.Bucket, prefix string) []string {
	t.Helper()
	var keys []string
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return keys
		}
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		keys = append(keys, obj.Key)
	}
}

// waitFor polls cond every few milliseconds until it holds or wait passes.
func waitFor(t *testing.T, wait time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// awaitErr waits for a call started in the background to return.
func awaitErr(t *testing.T, done <-chan error, wait time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		t.Fatalf("%s did not return within %v", what, wait)
		return nil
	}
}

func TestHealthyRoundTrip(t *testing.T) {
	forEachProvider(t, func(t *testing.T, p provider) {
		srv := p.start(t)
		b := p.open(t, srv.URL())
		ctx := context.Background()

		mustWrite(t, b, "dir/a", []byte("alpha"))
		mustWrite(t, b, "dir/b", []byte("beta"))
		mustRead(t, b, "dir/a", []byte("alpha"))

		attrs, err := b.Attributes(ctx, "dir/a")
		if err != nil {
			t.Fatal(err)
		}
		if attrs.Size != 5 || attrs.ETag == "" {
			t.Errorf("attributes: size %d, ETag %q", attrs.Size, attrs.ETag)
		}

		if err := b.Copy(ctx, "dir/c", "dir/a", nil); err != nil {
			t.Fatalf("copy: %v", err)
		}
		mustRead(t, b, "dir/c", []byte("alpha"))

		if got, want := strings.Join(listKeys(t, b, "dir/"), ","), "dir/a,dir/b,dir/c"; got != want {
			t.Errorf("list: got %s, want %s", got, want)
		}

		if err := b.Delete(ctx, "dir/a"); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if _, err := b.ReadAll(ctx, "dir/a"); gcerrors.Code(err) != gcerrors.NotFound {
			t.Errorf("read after delete: got %v (code %v), want NotFound", err, gcerrors.Code(err))
		}
		if ok, err := b.Exists(ctx, "dir/a"); ok || err != nil {
			t.Errorf("exists after delete: %v, %v", ok, err)
		}
		if got, want := strings.Join(listKeys(t, b, "dir/"), ","), "dir/b,dir/c"; got != want {
			t.Errorf("list after delete: got %s, want %s", got, want)
		}
		if srv.Requests() == 0 {
			t.Error("no request counted")
		}
	})
}

// TestLongNamesRefused checks that both emulators refuse to create an
// object whose name is over 1,024 bytes, as S3 and GCS do, with an HTTP 400
// answer (the caller's bad input, not an outage), and store nothing.
func TestLongNamesRefused(t *testing.T) {
	forEachProvider(t, func(t *testing.T, p provider) {
		srv := p.start(t)
		b := p.open(t, srv.URL())
		ctx := context.Background()
		long, longest := "dir/"+strings.Repeat("n", 1100), "dir/"+strings.Repeat("n", 1020)

		// A small write, and one large enough for a resumable upload.
		for _, size := range []int{1, 17 << 20} {
			err := b.WriteAll(ctx, long, make([]byte, size), nil)
			var withStatus interface{ HTTPStatusCode() int }
			var gErr *googleapi.Error
			switch {
			case err == nil:
				t.Fatalf("writing %d bytes under a 1,104-byte name: no error", size)
			case errors.As(err, &withStatus) && withStatus.HTTPStatusCode() == http.StatusBadRequest:
			case errors.As(err, &gErr) && gErr.Code == http.StatusBadRequest:
			default:
				t.Errorf("writing %d bytes under a 1,104-byte name: %v, want an HTTP 400 answer", size, err)
			}
		}
		mustWrite(t, b, longest, []byte("x"))
		if err := b.Copy(ctx, long, longest, nil); err == nil {
			t.Error("copying to a 1,104-byte name: no error")
		}
		if got, want := listKeys(t, b, "dir/"), []string{longest}; len(got) != 1 || got[0] != want[0] {
			t.Errorf("listed %d keys, want only the 1,024-byte one", len(got))
		}
	})
}

// TestLargeUploads checks the upload paths used for large objects: S3
// multipart uploads and GCS resumable uploads, whose session URL the
// emulator hands out for its own address.
func TestLargeUploads(t *testing.T) {
	forEachProvider(t, func(t *testing.T, p provider) {
		srv := p.start(t)
		b := p.open(t, srv.URL())
		// Above the 16 MiB threshold of the S3 transfer manager.
		data := bytes.Repeat([]byte("large upload.."), 17<<20/14)
		before := srv.Requests()
		// 5 MiB is the smallest S3 part; GCS uses it as its chunk size.
		opts := &blob.WriterOptions{BufferSize: 5 << 20}
		if err := b.WriteAll(context.Background(), "large", data, opts); err != nil {
			t.Fatalf("write: %v", err)
		}
		t.Logf("%d-byte upload took %d requests", len(data), srv.Requests()-before)
		if srv.Requests()-before < 3 {
			t.Errorf("upload took %d requests: not multipart/resumable", srv.Requests()-before)
		}
		mustRead(t, b, "large", data)
	})
}

// TestS3URLOpener opens the S3 emulator through blob.OpenBucket with a URL,
// using anonymous credentials.
func TestS3URLOpener(t *testing.T) {
	srv := StartS3(t, bucketName)
	ctx := context.Background()
	u := "s3://" + bucketName + "?endpoint=" + url.QueryEscape(srv.URL()) +
		"&use_path_style=true&region=us-east-1&anonymous=true"
	b, err := blob.OpenBucket(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustWrite(t, b, "k", []byte("anonymous"))
	mustRead(t, b, "k", []byte("anonymous"))
	if got := strings.Join(listKeys(t, b, ""), ","); got != "k" {
		t.Errorf("list: got %q", got)
	}
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
}

func TestUnavailable(t *testing.T) {
	forEachProvider(t, func(t *testing.T, p provider) {
		srv := p.start(t)
		b := p.open(t, srv.URL())
		ctx := context.Background()
		mustWrite(t, b, "k", []byte("v"))

		srv.Set(Unavailable)
		if srv.Fault() != Unavailable {
			t.Fatalf("fault: %v", srv.Fault())
		}
		before := srv.Requests()

		werr := b.WriteAll(ctx, "k2", []byte("v2"), nil)
		t.Logf("write: code %v: %v", gcerrors.Code(werr), werr)
		_, rerr := b.ReadAll(ctx, "k")
		t.Logf("read: code %v: %v", gcerrors.Code(rerr), rerr)
		_, aerr := b.Attributes(ctx, "k")
		t.Logf("attributes: code %v: %v", gcerrors.Code(aerr), aerr)

		for op, err := range map[string]error{"write": werr, "read": rerr} {
			if gcerrors.Code(err) == gcerrors.OK {
				t.Errorf("%s: gcerrors code OK for %v", op, err)
			}
			if !p.isUnavailable(t, err) {
				t.Errorf("%s: not the provider's 503: %v", op, err)
			}
		}
		if gcerrors.Code(aerr) == gcerrors.OK {
			t.Errorf("attributes: gcerrors code OK for %v", aerr)
		}
		if srv.Requests() == before {
			t.Error("503 requests were not counted")
		}

		srv.Set(Healthy)
		mustRead(t, b, "k", []byte("v"))
		if ok, _ := b.Exists(ctx, "k2"); ok {
			t.Error("write made under Unavailable was stored")
		}
	})
}

// TestUnavailableRawS3 checks the raw SDK view of the S3 503, HEAD included.
func TestUnavailableRawS3(t *testing.T) {
	srv := StartS3(t, bucketName)
	client := newS3Client(srv.URL(), testHTTPClient(t))
	srv.Set(Unavailable)
	ctx := context.Background()

	_, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucketName), Key: aws.String("k")})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "SlowDown" {
		t.Errorf("GetObject: want APIError SlowDown, got %T %v", err, err)
	}
	var respErr *awshttp.ResponseError
	if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != http.StatusServiceUnavailable {
		t.Errorf("GetObject: want HTTP 503, got %v", err)
	}

	_, err = client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucketName), Key: aws.String("k")})
	if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != http.StatusServiceUnavailable {
		t.Errorf("HeadObject: want HTTP 503, got %v", err)
	}
	if errors.As(err, &apiErr) {
		t.Logf("HeadObject 503 (no body): APIError code %q", apiErr.ErrorCode())
	}
}

// TestUnavailableRawGCS checks the raw storage client's view of the GCS 503
// on the JSON API (attributes, uploads) and the XML API (reads).
func TestUnavailableRawGCS(t *testing.T) {
	srv := StartGCS(t, bucketName)
	_, c := openGCS(t, srv.URL())
	ctx := context.Background()
	obj := c.Bucket(bucketName).Object("k")
	w := obj.NewWriter(ctx)
	_, _ = w.Write([]byte("v"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	srv.Set(Unavailable)

	check := func(op string, err error) {
		t.Helper()
		var gErr *googleapi.Error
		if !errors.As(err, &gErr) || gErr.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: want *googleapi.Error 503, got %T %v", op, err, err)
			return
		}
		t.Logf("%s: googleapi.Error code %d message %q", op, gErr.Code, gErr.Message)
	}
	_, err := obj.Attrs(ctx)
	check("Attrs", err)
	_, err = obj.NewReader(ctx)
	check("NewReader", err)
	w = obj.NewWriter(ctx)
	_, _ = w.Write([]byte("v2"))
	check("Writer.Close", w.Close())
}

func TestHang(t *testing.T) {
	forEachProvider(t, func(t *testing.T, p provider) {
		srv := p.start(t)
		b := p.open(t, srv.URL())
		mustWrite(t, b, "k", []byte("v"))

		srv.Set(Hang)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		_, err := b.ReadAll(ctx, "k")
		cancel()
		t.Logf("read under Hang after %v: code %v: %v", time.Since(start).Round(time.Millisecond), gcerrors.Code(err), err)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("read: want context.DeadlineExceeded, got %T %v", err, err)
		}
		if gcerrors.Code(err) != gcerrors.DeadlineExceeded {
			t.Errorf("read: gcerrors code %v, want DeadlineExceeded", gcerrors.Code(err))
		}

		// A write that hangs too.
		ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
		err = b.WriteAll(ctx, "k2", []byte("v2"), nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("write: want context.DeadlineExceeded, got %T %v", err, err)
		}

		// A hung call without a short deadline is released by healing.
		n := srv.Requests()
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := b.ReadAll(ctx, "k")
			done <- err
		}()
		waitFor(t, 2*time.Second, "the request to hang", func() bool { return srv.Requests() > n })
		select {
		case err := <-done:
			t.Fatalf("read returned while hung: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		srv.Set(Healthy)
		err = awaitErr(t, done, 2*time.Second, "hung read after heal")
		t.Logf("hung read after heal: %v", err)
		mustRead(t, b, "k", []byte("v"))
	})
}

// TestHangReleasedByClose checks that Close releases a hung request and does
// not wait for the client to give up.
func TestHangReleasedByClose(t *testing.T) {
	forEachProvider(t, func(t *testing.T, p provider) {
		srv := p.start(t)
		b := p.open(t, srv.URL())
		srv.Set(Hang)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- b.WriteAll(ctx, "k", bytes.Repeat([]byte("x"), 1<<20), nil)
		}()
		waitFor(t, 2*time.Second, "the request to hang", func() bool { return srv.Requests() > 0 })
		closed := make(chan struct{})
		go func() { srv.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(2 * time.Second):
			t.Fatal("Close blocked on a hung request")
		}
		err := awaitErr(t, done, 2*time.Second, "hung write after Close")
		if err == nil {
			t.Error("hung write succeeded after Close")
		}
		t.Logf("hung write after Close: %v", err)
		srv.Close() // idempotent
	})
}

func TestReset(t *testing.T) {
	forEachProvider(t, func(t *testing.T, p provider) {
		srv := p.start(t)
		b := p.open(t, srv.URL())
		ctx := context.Background()
		mustWrite(t, b, "k", []byte("v"))

		srv.Set(Reset)
		_, err := b.ReadAll(ctx, "k")
		t.Logf("read under Reset: code %v: %v", gcerrors.Code(err), err)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("read: want ECONNRESET, got %T %v", err, err)
		}
		if gcerrors.Code(err) == gcerrors.OK {
			t.Error("read: gcerrors code OK")
		}
		err = b.WriteAll(ctx, "k2", []byte("v2"), nil)
		t.Logf("write under Reset: code %v: %v", gcerrors.Code(err), err)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("write: want ECONNRESET, got %T %v", err, err)
		}

		srv.Set(Healthy)
		mustRead(t, b, "k", []byte("v"))
	})
}

func TestClosed(t *testing.T) {
	forEachProvider(t, func(t *testing.T, p provider) {
		srv := p.start(t)
		url, addr := srv.URL(), srv.Addr()
		b := p.open(t, srv.URL())
		ctx := context.Background()
		mustWrite(t, b, "k", []byte("kept"))

		srv.Set(Closed)
		if _, err := net.DialTimeout("tcp", addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial while Closed: want ECONNREFUSED, got %v", err)
		}
		n := srv.Requests()
		_, err := b.ReadAll(ctx, "k")
		t.Logf("read under Closed: code %v: %v", gcerrors.Code(err), err)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("read: want ECONNREFUSED, got %T %v", err, err)
		}
		err = b.WriteAll(ctx, "k2", []byte("v2"), nil)
		t.Logf("write under Closed: code %v: %v", gcerrors.Code(err), err)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("write: want ECONNREFUSED, got %T %v", err, err)
		}
		if srv.Requests() != n {
			t.Error("requests reached the handler while Closed")
		}

		srv.Set(Healthy)
		if srv.URL() != url || srv.Addr() != addr {
			t.Fatalf("address changed: %s -> %s", url, srv.URL())
		}
		mustRead(t, b, "k", []byte("kept"))
		mustWrite(t, b, "k2", []byte("v2"))

		// Closed, then straight to another fault, then healthy again.
		srv.Set(Closed)
		srv.Set(Unavailable)
		if _, err := b.ReadAll(ctx, "k"); !p.isUnavailable(t, err) {
			t.Errorf("Unavailable after Closed: %v", err)
		}
		srv.Set(Healthy)
		mustRead(t, b, "k2", []byte("v2"))
	})
}

func TestSetFaultAfter(t *testing.T) {
	srv := StartS3(t, bucketName)
	hc := testHTTPClient(t)
	get := func() int {
		t.Helper()
		resp, err := hc.Get(srv.URL() + "/")
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	srv.SetFaultAfter(2, Unavailable)
	for i, want := range []int{200, 200, 503, 503} {
		if got := get(); got != want {
			t.Fatalf("request %d: status %d, want %d", i+1, got, want)
		}
	}
	srv.Set(Healthy)
	if got := get(); got != 200 {
		t.Fatalf("after Set(Healthy): status %d", got)
	}

	// Closed after one more request: that request's connection is dropped,
	// and the port refuses after it.
	srv.SetFaultAfter(1, Closed)
	if got := get(); got != 200 {
		t.Fatalf("status %d", got)
	}
	_, err := hc.Get(srv.URL() + "/")
	if err == nil {
		t.Fatal("request after the armed Closed succeeded")
	}
	if srv.Fault() != Closed {
		t.Fatalf("fault %v, want Closed", srv.Fault())
	}
	_, err = hc.Get(srv.URL() + "/")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("want ECONNREFUSED, got %v", err)
	}
	srv.Set(Healthy)
	if got := get(); got != 200 {
		t.Fatalf("status %d after heal", got)
	}
}

// TestS3EmulatorConditionalPut records how the S3 emulator treats
// conditional PutObject requests: If-None-Match: * and If-Match: "etag" are
// honoured with 412 PreconditionFailed.
func TestS3EmulatorConditionalPut(t *testing.T) {
	srv := StartS3(t, bucketName)
	b, client := openS3(t, srv.URL())
	ctx := context.Background()
	put := func(key, body string, mod func(*s3.PutObjectInput)) (*s3.PutObjectOutput, error) {
		in := &s3.PutObjectInput{Bucket: aws.String(bucketName), Key: aws.String(key), Body: strings.NewReader(body)}
		if mod != nil {
			mod(in)
		}
		return client.PutObject(ctx, in)
	}
	is412 := func(err error) bool {
		var apiErr smithy.APIError
		var respErr *awshttp.ResponseError
		return errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed" &&
			errors.As(err, &respErr) && respErr.HTTPStatusCode() == http.StatusPreconditionFailed
	}
	ifNoneMatch := func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }

	out, err := put("k", "one", ifNoneMatch)
	if err != nil {
		t.Fatalf("If-None-Match: * on a new key: %v", err)
	}
	etag := aws.ToString(out.ETag)
	t.Logf("PutObject ETag %s", etag)
	if _, err := put("k", "two", ifNoneMatch); !is412(err) {
		t.Errorf("If-None-Match: * on an existing key: want 412 PreconditionFailed, got %v", err)
	}
	if _, err := put("k", "two", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(`"0123"`) }); !is412(err) {
		t.Errorf("If-Match with a stale ETag: want 412, got %v", err)
	}
	if _, err := put("missing", "x", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(etag) }); !is412(err) {
		t.Errorf("If-Match on a missing key: want 412, got %v", err)
	}
	if _, err := put("k", "two", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(etag) }); err != nil {
		t.Errorf("If-Match with the current ETag: %v", err)
	}
	mustRead(t, b, "k", []byte("two"))
	_, err = put("k", "three", func(in *s3.PutObjectInput) { in.IfMatch = aws.String("*") })
	t.Logf("If-Match: * on an existing key: %v", err)

	// Through gocloud: WriterOptions.IfNotExist sends If-None-Match: *.
	err = b.WriteAll(ctx, "k", []byte("again"), &blob.WriterOptions{IfNotExist: true})
	t.Logf("gocloud IfNotExist on an existing key: code %v: %v", gcerrors.Code(err), err)
	if gcerrors.Code(err) != gcerrors.FailedPrecondition {
		t.Errorf("gocloud IfNotExist on an existing key: code %v, want FailedPrecondition", gcerrors.Code(err))
	}

	// The ETag seen through gocloud is the quoted hex MD5 of the content.
	attrs, err := b.Attributes(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("S3 driver.Attributes ETag %s, MD5 %x", attrs.ETag, attrs.MD5)
	if want := fmt.Sprintf("%q", fmt.Sprintf("%x", attrs.MD5)); attrs.ETag != want {
		t.Errorf("ETag %s, want %s", attrs.ETag, want)
	}
}

// TestGCSEmulatorConditionalPut records how the GCS emulator treats
// generation preconditions on uploads made with ObjectHandle.If.
func TestGCSEmulatorConditionalPut(t *testing.T) {
	srv := StartGCS(t, bucketName)
	b, c := openGCS(t, srv.URL())
	ctx := context.Background()
	obj := c.Bucket(bucketName).Object("k")
	write := func(h *storage.ObjectHandle, body string) (*storage.ObjectAttrs, error) {
		w := h.NewWriter(ctx)
		if _, err := io.WriteString(w, body); err != nil {
			_ = w.Close()
			return nil, err
		}
		err := w.Close()
		return w.Attrs(), err
	}
	is412 := func(err error) bool {
		var gErr *googleapi.Error
		return errors.As(err, &gErr) && gErr.Code == http.StatusPreconditionFailed
	}

	attrs, err := write(obj.If(storage.Conditions{DoesNotExist: true}), "one")
	if err != nil {
		t.Fatalf("DoesNotExist on a new object: %v", err)
	}
	gen := attrs.Generation
	t.Logf("upload generation %d, etag %q", gen, attrs.Etag)
	_, err = write(obj.If(storage.Conditions{DoesNotExist: true}), "two")
	t.Logf("DoesNotExist on an existing object: %T %v", err, err)
	if !is412(err) {
		t.Errorf("DoesNotExist on an existing object: want *googleapi.Error 412, got %v", err)
	}
	if _, err := write(obj.If(storage.Conditions{GenerationMatch: gen + 1000}), "two"); !is412(err) {
		t.Errorf("GenerationMatch with a stale generation: want 412, got %v", err)
	}
	attrs, err = write(obj.If(storage.Conditions{GenerationMatch: gen}), "two")
	if err != nil {
		t.Fatalf("GenerationMatch with the current generation: %v", err)
	}
	if attrs.Generation == gen {
		t.Errorf("generation did not change on overwrite: %d", gen)
	}
	mustRead(t, b, "k", []byte("two"))

	// Through gocloud: WriterOptions.IfNotExist sets DoesNotExist.
	err = b.WriteAll(ctx, "k", []byte("again"), &blob.WriterOptions{IfNotExist: true})
	t.Logf("gocloud IfNotExist on an existing object: code %v: %v", gcerrors.Code(err), err)
	if gcerrors.Code(err) != gcerrors.FailedPrecondition {
		t.Errorf("gocloud IfNotExist on an existing object: code %v, want FailedPrecondition", gcerrors.Code(err))
	}

	// The driver attributes expose the generation through As.
	battrs, err := b.Attributes(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	var oa storage.ObjectAttrs
	if !battrs.As(&oa) {
		t.Fatal("Attributes.As(*storage.ObjectAttrs) failed")
	}
	t.Logf("GCS driver.Attributes ETag %s, generation %d, metageneration %d", battrs.ETag, oa.Generation, oa.Metageneration)
	if oa.Generation != attrs.Generation || oa.Generation == 0 {
		t.Errorf("As generation %d, want %d", oa.Generation, attrs.Generation)
	}
	if battrs.ETag == "" || battrs.ETag[0] != '"' {
		t.Errorf("ETag %q is not quoted", battrs.ETag)
	}
}

// proxied starts an S3 emulator behind a proxy and opens its bucket through
// the proxy.
func proxied(t *testing.T) (*Server, *Proxy, *blob.Bucket) {
	t.Helper()
	srv := StartS3(t, bucketName)
	p := NewProxy(t, srv.Addr())
	b, _ := openS3(t, p.URL())
	return srv, p, b
}

// markProxy returns how many client bytes p has read so far.
func markProxy(p *Proxy) int64 { return p.ClientBytes() }

// waitProxied waits until a request started after mark has reached p, and
// fails if the call has returned meanwhile.
func waitProxied(t *testing.T, p *Proxy, mark int64, done <-chan error) {
	t.Helper()
	waitFor(t, 2*time.Second, "the request to reach the proxy", func() bool {
		select {
		case err := <-done:
			t.Fatalf("call returned through ProxyHang: %v", err)
		default:
		}
		return p.ClientBytes() > mark
	})
}

func TestProxyHealthy(t *testing.T) {
	_, p, b := proxied(t)
	if p.URL() != "http://"+p.Addr() {
		t.Fatalf("URL %s, Addr %s", p.URL(), p.Addr())
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	mustWrite(t, b, "big", big)
	mustRead(t, b, "big", big)
	if got := strings.Join(listKeys(t, b, ""), ","); got != "big" {
		t.Errorf("list: %q", got)
	}
}

func TestProxyReset(t *testing.T) {
	_, p, b := proxied(t)
	mustWrite(t, b, "k", []byte("v"))
	p.Set(ProxyReset)

	// Fresh connections are reset once the request is in: ECONNRESET.
	fresh, _ := openS3(t, p.URL())
	_, err := fresh.ReadAll(context.Background(), "k")
	t.Logf("read through ProxyReset on a new connection: %v", err)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read: want ECONNRESET, got %T %v", err, err)
	}
	err = fresh.WriteAll(context.Background(), "k2", []byte("v2"), nil)
	t.Logf("write through ProxyReset on a new connection: %v", err)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("write: want ECONNRESET, got %T %v", err, err)
	}

	// A pooled connection was reset while idle: the client meets the reset
	// on read or, when it writes before noticing, as EPIPE.
	_, err = b.ReadAll(context.Background(), "k")
	t.Logf("read through ProxyReset on a pooled connection: %v", err)
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("read: want ECONNRESET or EPIPE, got %T %v", err, err)
	}

	p.Set(ProxyHealthy)
	mustRead(t, b, "k", []byte("v"))
	if ok, _ := b.Exists(context.Background(), "k2"); ok {
		t.Error("write reset by the proxy reached the server")
	}
}

func TestProxyResetLive(t *testing.T) {
	_, p, b := proxied(t)
	mustWrite(t, b, "k", []byte("v"))
	p.Set(ProxyHang)
	mark := markProxy(p)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := b.ReadAll(ctx, "k")
		done <- err
	}()
	waitProxied(t, p, mark, done)
	p.Set(ProxyReset)
	err := awaitErr(t, done, 2*time.Second, "hung read after ProxyReset")
	t.Logf("live read reset by the proxy: %v", err)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("want ECONNRESET, got %T %v", err, err)
	}
}

func TestProxyRefuse(t *testing.T) {
	_, p, b := proxied(t)
	mustWrite(t, b, "k", []byte("kept"))
	addr := p.Addr()
	p.Set(ProxyRefuse)
	_, err := b.ReadAll(context.Background(), "k")
	t.Logf("read through ProxyRefuse: %v", err)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("want ECONNREFUSED, got %T %v", err, err)
	}
	p.Set(ProxyHealthy)
	if p.Addr() != addr {
		t.Fatalf("address changed: %s -> %s", addr, p.Addr())
	}
	mustRead(t, b, "k", []byte("kept"))
}

// TestProxyTargetDown checks that a proxy whose target refuses connections
// resets its clients' connections.
func TestProxyTargetDown(t *testing.T) {
	srv, _, b := proxied(t)
	mustWrite(t, b, "k", []byte("v"))
	srv.Set(Closed)
	_, err := b.ReadAll(context.Background(), "k")
	t.Logf("read through a proxy whose target is down: %v", err)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("want ECONNRESET, got %T %v", err, err)
	}
	srv.Set(Healthy)
	mustRead(t, b, "k", []byte("v"))
}

func TestProxyHang(t *testing.T) {
	_, p, b := proxied(t)
	mustWrite(t, b, "k", []byte("v"))
	p.Set(ProxyHang)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := b.ReadAll(ctx, "k")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want context.DeadlineExceeded, got %T %v", err, err)
	}

	// A hung call resumes when the proxy heals.
	mark := markProxy(p)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err := b.ReadAll(ctx, "k")
		if err == nil && string(got) != "v" {
			err = fmt.Errorf("read %q", got)
		}
		done <- err
	}()
	waitProxied(t, p, mark, done)
	p.Set(ProxyHealthy)
	if err := awaitErr(t, done, 2*time.Second, "hung read after heal"); err != nil {
		t.Errorf("hung read after heal: %v", err)
	}
}

func TestProxyCut(t *testing.T) {
	_, p, b := proxied(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	mustWrite(t, b, "big", big)

	p.CutAfter(64 << 10)
	p.Set(ProxyCut)
	got, err := b.ReadAll(context.Background(), "big")
	t.Logf("read through ProxyCut: %d bytes, code %v: %v", len(got), gcerrors.Code(err), err)
	if err == nil {
		t.Fatal("read of 1 MiB through a 64 KiB cut succeeded")
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("want io.ErrUnexpectedEOF, got %T %v", err, err)
	}

	p.Set(ProxyHealthy)
	mustRead(t, b, "big", big)
}

func TestProxySlow(t *testing.T) {
	_, p, b := proxied(t)
	mustWrite(t, b, "k", []byte("v"))
	const latency = 40 * time.Millisecond
	p.Latency(latency)
	p.Set(ProxySlow)
	start := time.Now()
	mustRead(t, b, "k", []byte("v"))
	if d := time.Since(start); d < latency {
		t.Errorf("read took %v through a %v latency", d, latency)
	}
	ctx, cancel := context.WithTimeout(context.Background(), latency/4)
	defer cancel()
	if _, err := b.ReadAll(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read with a deadline shorter than the latency: %v", err)
	}
}

func TestProxyClose(t *testing.T) {
	_, p, b := proxied(t)
	mustWrite(t, b, "k", []byte("v"))
	p.Set(ProxyHang)
	mark := markProxy(p)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := b.ReadAll(ctx, "k")
		done <- err
	}()
	waitProxied(t, p, mark, done)
	p.Close()
	if err := awaitErr(t, done, 2*time.Second, "hung read after Close"); err == nil {
		t.Error("hung read succeeded after Close")
	}
	p.Close()
}
