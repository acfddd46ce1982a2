package emulators

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// s3SlowDown is the body S3 sends with a 503 when it sheds load.
const s3SlowDown = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>EMULATOR503</RequestId><HostId>emulator</HostId></Error>`

// StartS3 starts an S3 emulator (gofakes3 with its in-memory backend) on a
// loopback listener, with the given buckets created. The emulator accepts
// path-style requests, signed or anonymous. t's Cleanup closes it.
func StartS3(t testing.TB, buckets ...string) *Server {
	t.Helper()
	s, err := NewS3(buckets...)
	return started(t, s, err)
}

// NewS3 is StartS3 for programs: the caller closes the server. A failure
// to listen again after Closed is logged.
func NewS3(buckets ...string) (*Server, error) {
	backend := s3mem.New()
	for _, b := range buckets {
		if err := backend.CreateBucket(b); err != nil {
			return nil, fmt.Errorf("emulators: create S3 bucket %q: %w", b, err)
		}
	}
	ln, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	faker := gofakes3.New(backend)
	return newServer(logError, ln, s3DeletePreconditions(faker.Server()), s3Unavailable, nil), nil
}

// s3Unavailable answers like S3 under load: 503 with a SlowDown error.
func s3Unavailable(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("x-amz-request-id", "EMULATOR503")
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, s3SlowDown)
	}
}
