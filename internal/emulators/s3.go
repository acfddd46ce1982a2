package emulators

import (
	"fmt"
	"io"
	"net/http"
	"strings"
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
	h := s3DeletePreconditions(gofakes3.New(backend).Server())
	keysChecked := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key := s3ObjectKey(r); len(key) > s3MaxKey && (r.Method == http.MethodPut || r.Method == http.MethodPost) {
			s3KeyTooLong(w)
			return
		}
		h.ServeHTTP(w, r)
	})
	return newServer(logError, ln, keysChecked, s3Unavailable, nil), nil
}

// s3MaxKey is the longest key S3 accepts, in bytes of UTF-8. gofakes3
// refuses longer keys in PutObject but not when a multipart upload starts;
// S3 refuses them in every request that creates an object.
const s3MaxKey = 1024

// s3ObjectKey returns the key a path-style request names ("/bucket/key").
func s3ObjectKey(r *http.Request) string {
	_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	return key
}

// s3KeyTooLong answers like S3 to a key over s3MaxKey: 400 KeyTooLongError.
func s3KeyTooLong(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>KeyTooLongError</Code><Message>Your key is too long</Message><RequestId>EMULATOR400</RequestId><HostId>emulator</HostId></Error>`)
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
