package emulators

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// gcsBackendError is the body GCS sends with a 503.
const gcsBackendError = `{"error":{"code":503,"message":"Service Unavailable (emulated)","errors":[{"domain":"global","reason":"backendError","message":"Service Unavailable (emulated)"}]}}`

// StartGCS starts a GCS emulator (fake-gcs-server) serving plain HTTP on a
// loopback listener, with the given buckets created. t's Cleanup closes it.
//
// The emulator's public host is the listener address, so that the storage
// client's XML API reads (GET http://ADDR/BUCKET/OBJECT) are routed to it.
// Point a storage client at it with
//
//	storage.NewClient(ctx, option.WithEndpoint(srv.URL()+"/storage/v1/"),
//		option.WithoutAuthentication(), option.WithHTTPClient(hc))
//
// STORAGE_EMULATOR_HOST is neither needed nor set.
func StartGCS(t testing.TB, buckets ...string) *Server {
	t.Helper()
	s, err := NewGCS(buckets...)
	return started(t, s, err)
}

// NewGCS is StartGCS for programs: the caller closes the server. A failure
// to listen again after Closed is logged.
func NewGCS(buckets ...string) (*Server, error) {
	ln, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.ParseUint(portStr, 10, 16)
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		// Served on our own listener, through the fault layer.
		NoListener:  true,
		Scheme:      "http",
		Host:        "127.0.0.1",
		Port:        uint16(port),
		PublicHost:  addr,
		ExternalURL: "http://" + addr,
	})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("emulators: start GCS emulator: %w", err)
	}
	for _, b := range buckets {
		fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	// The emulator routes reads by the request's Host, which is the
	// address a client dialled: through a TCP proxy, the proxy's. Every
	// request is taken as addressed to the public host.
	h := fake.HTTPHandler()
	atPublicHost := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name, ok := gcsNewObjectName(r); ok && len(name) > gcsMaxName {
			gcsNameTooLong(w, name)
			return
		}
		r.Host = addr
		h.ServeHTTP(w, r)
	})
	return newServer(logError, ln, gcsDeletePreconditions(atPublicHost), gcsUnavailable, fake.Stop), nil
}

// gcsUnavailable answers like GCS when a backend is down: 503 with a JSON
// error document.
func gcsUnavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, gcsBackendError)
	}
}

// gcsMaxName is the longest object name GCS accepts, in bytes of UTF-8.
const gcsMaxName = 1024

// gcsNewObjectName returns the name of the object a request creates: an
// upload's name (its name parameter, or the name in the object's metadata:
// the JSON body that starts a resumable upload, or the first part of a
// multipart one), or a copy's destination. fake-gcs-server takes names of
// any length; GCS refuses the ones over gcsMaxName. What it reads of the
// body is put back for the emulator.
func gcsNewObjectName(r *http.Request) (string, bool) {
	if r.Method != http.MethodPost {
		return "", false
	}
	if strings.HasPrefix(r.URL.Path, "/upload/storage/v1/b/") {
		if name := r.URL.Query().Get("name"); name != "" {
			return name, true
		}
		name := gcsMetadataName(r)
		return name, name != ""
	}
	for _, op := range []string{"/rewriteTo/b/", "/copyTo/b/"} {
		if _, dst, ok := strings.Cut(r.URL.Path, op); ok {
			if _, name, ok := strings.Cut(dst, "/o/"); ok {
				return name, true
			}
		}
	}
	return "", false
}

// gcsNameTooLong answers like GCS to an object name over gcsMaxName: 400
// with a JSON error document.
func gcsNameTooLong(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(http.StatusBadRequest)
	msg := fmt.Sprintf("The maximum object length is %d characters, but got a name with %d characters", gcsMaxName, len(name))
	_, _ = fmt.Fprintf(w, `{"error":{"code":400,"message":%q,"errors":[{"domain":"global","reason":"invalid","message":%q}]}}`, msg, msg)
}

// gcsMetadataName reads the object name from an upload's metadata, and puts
// back what it read of the body.
func gcsMetadataName(r *http.Request) string {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	var read bytes.Buffer
	body := io.TeeReader(r.Body, &read)
	defer func() {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(&read, r.Body), r.Body}
	}()
	var meta io.Reader
	switch mediaType {
	case "application/json":
		meta = body
	case "multipart/related":
		part, err := multipart.NewReader(body, params["boundary"]).NextPart()
		if err != nil {
			return ""
		}
		meta = part
	default:
		return ""
	}
	var m struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(io.LimitReader(meta, 1<<20)).Decode(&m); err != nil {
		return ""
	}
	return m.Name
}
