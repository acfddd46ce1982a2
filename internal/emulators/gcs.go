package emulators

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
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
