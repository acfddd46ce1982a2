package circuit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob/circuit"
)

// statusError stands for an SDK error that carries the HTTP status of the
// response, as the AWS SDK's response errors do.
type statusError struct{ code int }

func (e *statusError) Error() string       { return fmt.Sprintf("http response %d", e.code) }
func (e *statusError) HTTPStatusCode() int { return e.code }

// timeoutError is a net.Error that timed out.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// fromBucket returns the error a gocloud bucket reports when its driver fails
// with cause: cause wrapped in an error whose gcerrors code is Unknown, the
// way s3blob and gcsblob report a 503 or a reset connection.
func fromBucket(t *testing.T, cause error) error {
	t.Helper()
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	t.Cleanup(func() { b.Close() })
	if err := b.WriteAll(ctx, "k", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	_, err := b.NewReader(ctx, "k", &blob.ReaderOptions{
		BeforeRead: func(func(any) bool) error { return cause },
	})
	if got := gcerrors.Code(err); got != gcerrors.Unknown {
		t.Fatalf("fromBucket(%v): gcerrors.Code = %v, want Unknown", cause, got)
	}
	return err
}

// temporaryError says it is temporary, as an outage of a nested failover
// bucket does.
type temporaryError struct{}

func (temporaryError) Error() string   { return "try later" }
func (temporaryError) Temporary() bool { return true }

// fileRefusal returns the error a fileblob bucket gives for key: its refusal
// of the request itself.
func fileRefusal(t *testing.T, key string) error {
	t.Helper()
	b, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	err = b.WriteAll(context.Background(), key, []byte("v"), nil)
	if err == nil {
		t.Fatalf("fileblob accepted key %q", key)
	}
	return err
}

func TestDefaultClassifier(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	mem := memblob.OpenBucket(nil)
	defer mem.Close()
	_, notFound := mem.ReadAll(live, "missing")
	_, invalidKey := mem.ReadAll(live, "\xff")
	_, unimplemented := mem.SignedURL(live, "k", nil)
	if err := mem.WriteAll(live, "exists", nil, nil); err != nil {
		t.Fatal(err)
	}
	preconditionFailed := mem.WriteAll(live, "exists", nil, &blob.WriterOptions{IfNotExist: true})
	premises := []struct {
		err  error
		want gcerrors.ErrorCode
	}{
		{notFound, gcerrors.NotFound},
		{invalidKey, gcerrors.InvalidArgument},
		{unimplemented, gcerrors.Unimplemented},
		{preconditionFailed, gcerrors.FailedPrecondition},
	}
	for _, p := range premises {
		if got := gcerrors.Code(p.err); got != p.want {
			t.Fatalf("gcerrors.Code(%v) = %v, want %v", p.err, got, p.want)
		}
	}

	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"nil", live, nil, false},
		{"NotFound", live, notFound, false},
		{"InvalidArgument", live, invalidKey, false},
		{"Unimplemented", live, unimplemented, false},
		{"FailedPrecondition", live, preconditionFailed, false},
		{"unclassified error", live, errors.New("boom"), false},
		{"Unknown without evidence", live, fromBucket(t, errors.New("boom")), false},
		{"fileblob refuses a .attrs key", live, fileRefusal(t, "x.attrs"), false},
		{"file name too long", live, fileRefusal(t, strings.Repeat("k", 1100)), false},
		{"local disk failing", live, &fs.PathError{Op: "write", Path: "/d/k", Err: syscall.EIO}, true},
		{"local disk full", live, fromBucket(t, &fs.PathError{Op: "write", Path: "/d/k", Err: syscall.ENOSPC}), true},
		{"HTTP client failure", live, &url.Error{Op: "Get", URL: "http://side", Err: errors.New("tls: handshake failure")}, true},
		{"says it is temporary", live, fmt.Errorf("nested: %w", temporaryError{}), true},
		{"refused dial", live, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"reset", live, fmt.Errorf("x: %w", syscall.ECONNRESET), true},
		{"broken pipe", live, fmt.Errorf("x: %w", syscall.EPIPE), true},
		{"unexpected EOF", live, fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), true},
		{"net timeout", live, fmt.Errorf("x: %w", timeoutError{}), true},
		{"Unknown wrapping reset", live, fromBucket(t, syscall.ECONNRESET), true},
		{"status 503", live, &statusError{503}, true},
		{"status 500", live, &statusError{500}, true},
		{"status 429", live, &statusError{429}, true},
		{"status 408", live, &statusError{408}, true},
		{"status 404", live, &statusError{404}, false},
		{"status 412", live, &statusError{412}, false},
		{"Unknown wrapping 503", live, fromBucket(t, &statusError{503}), true},
		{"Unknown wrapping 400", live, fromBucket(t, &statusError{400}), false},
		{"library deadline, caller live", live, fmt.Errorf("put: %w", context.DeadlineExceeded), true},
		{"library cancel, caller live", live, context.Canceled, true},
		{"deadline, caller cancelled", cancelled, context.DeadlineExceeded, false},
		{"cancel, caller cancelled", cancelled, context.Canceled, false},
		{"refused, caller cancelled", cancelled, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, false},
		{"NotFound, caller cancelled", cancelled, notFound, false},
		{"breaker open", live, fmt.Errorf("primary: %w", circuit.ErrOpen), true},
	}
	for _, tt := range tests {
		got := circuit.DefaultClassifier(tt.ctx, tt.err)
		if got != tt.want {
			t.Errorf("%s: DefaultClassifier(ctx.Err()=%v, %v) = %v, want %v", tt.name, tt.ctx.Err(), tt.err, got, tt.want)
		}
	}
}
