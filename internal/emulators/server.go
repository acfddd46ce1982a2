// Package emulators runs in-process S3 and GCS emulators on real loopback TCP
// listeners, with switchable faults, so that integration tests can drive the
// real SDK clients (aws-sdk-go-v2, cloud.google.com/go/storage and the
// gocloud.dev/blob drivers built on them) into the failures they meet in
// production: 503 answers, requests that never finish, connections reset
// mid-request and ports that refuse connections.
//
// [StartS3] and [StartGCS] return a [Server] whose behaviour is switched with
// [Server.Set]. [NewProxy] puts a TCP-level fault injector in front of any
// address, for faults that happen below HTTP (cut streams, slow links).
//
// Every server and proxy is closed by the test's Cleanup; Close stops every
// goroutine it started and releases requests held by a hang.
package emulators

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Fault is what a server does to incoming requests.
type Fault int

const (
	// Healthy serves every request with the emulator.
	Healthy Fault = iota
	// Unavailable answers every request with HTTP 503 and the provider's
	// error body: for S3 an XML <Error> with code SlowDown, for GCS a JSON
	// {"error":{"code":503,...}} document.
	Unavailable
	// Hang accepts each request and never answers it. When the fault changes
	// or the server closes, hung requests are released by closing their
	// connection without an answer.
	Hang
	// Reset aborts each request's TCP connection with a RST and no HTTP
	// answer, so the client sees "connection reset by peer". The request
	// body (up to resetDrainLimit bytes) is read first, so that the client
	// has finished sending and meets the reset while awaiting the answer,
	// not as EPIPE or a closed connection while writing the body.
	Reset
	// Closed closes the port: the listener is closed and live connections
	// are dropped, so new dials are refused. Switching to any other fault
	// listens again on the same address.
	Closed
)

// String returns the fault's name.
func (f Fault) String() string {
	switch f {
	case Healthy:
		return "Healthy"
	case Unavailable:
		return "Unavailable"
	case Hang:
		return "Hang"
	case Reset:
		return "Reset"
	case Closed:
		return "Closed"
	default:
		return fmt.Sprintf("Fault(%d)", int(f))
	}
}

// relistenTimeout bounds how long a server or proxy retries listening on its
// own address again when the port is momentarily busy.
const relistenTimeout = 2 * time.Second

// Server is an emulator served over HTTP on a loopback TCP address that stays
// the same for the server's whole life, with a switchable [Fault].
// Its methods are safe for concurrent use.
type Server struct {
	onError     func(error) // reports a failure to listen again
	addr        string
	handler     http.Handler                             // the emulator itself
	unavailable func(http.ResponseWriter, *http.Request) // the provider's 503
	stopBackend func()

	requests atomic.Int64
	// wg counts serve loops, connections and handler calls.
	wg sync.WaitGroup

	mu        sync.Mutex
	fault     Fault
	armed     bool  // SetFaultAfter is pending
	afterN    int   // requests still let through before afterF applies
	afterF    Fault // fault armed by SetFaultAfter
	release   chan struct{}
	srv       *http.Server // nil while Closed and after Close
	serveDone chan struct{}
	closed    bool
}

// newServer serves handler on ln until Close. unavailable writes the
// provider's 503 answer; stop, if not nil, is called once everything has
// stopped.
func newServer(onError func(error), ln net.Listener, handler http.Handler, unavailable func(http.ResponseWriter, *http.Request), stop func()) *Server {
	s := &Server{
		onError:     onError,
		addr:        ln.Addr().String(),
		handler:     handler,
		unavailable: unavailable,
		stopBackend: stop,
		release:     make(chan struct{}),
	}
	s.mu.Lock()
	s.serveLocked(ln)
	s.mu.Unlock()
	return s
}

// URL returns the server's base URL, "http://127.0.0.1:PORT". It does not
// change when the server is Closed and listens again.
func (s *Server) URL() string { return "http://" + s.addr }

// Addr returns the server's address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.addr }

// Requests returns how many requests have reached the server's handler,
// whatever the fault they met. Requests refused while Closed are not counted.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Fault returns the fault in force.
func (s *Server) Fault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault
}

// Set switches the server to fault f, cancelling any fault armed by
// SetFaultAfter. Requests hung by a previous Hang are released. Leaving
// Closed listens again on the same address; if that fails the test is marked
// failed and the server stays Closed.
func (s *Server) Set(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	s.setLocked(f)
}

// SetFaultAfter lets n more requests through under the current fault and
// switches to f when request n+1 arrives; that request already meets f (for
// Closed, its connection is dropped). n <= 0 is the same as Set(f).
func (s *Server) SetFaultAfter(n int, f Fault) {
	if n <= 0 {
		s.Set(f)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed, s.afterN, s.afterF = true, n, f
}

// Close stops the server: it closes the listener and every connection,
// releases hung requests and waits for every goroutine the server started.
// Close is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.release)
	if s.srv != nil {
		s.stopLocked()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if s.stopBackend != nil {
		s.stopBackend()
	}
}

func (s *Server) setLocked(f Fault) {
	if s.closed || f == s.fault {
		return
	}
	if f == Closed {
		s.stopLocked()
	} else if s.fault == Closed {
		ln, err := relisten(s.addr)
		if err != nil {
			s.onError(fmt.Errorf("emulators: listen again on %s: %w", s.addr, err))
			return
		}
		s.serveLocked(ln)
	}
	// Release the requests hung so far: a new hang starts a new epoch.
	close(s.release)
	s.release = make(chan struct{})
	s.fault = f
}

func (s *Server) serveLocked(ln net.Listener) {
	srv := &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ConnState:         s.connState,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	s.srv, s.serveDone = srv, done
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		_ = srv.Serve(ln)
	}()
}

// stopLocked closes the listener and every connection that is not
// hijacked, and waits for the serve loop to return.
func (s *Server) stopLocked() {
	_ = s.srv.Close()
	<-s.serveDone
	s.srv, s.serveDone = nil, nil
}

// connState keeps wg counting the server's connection goroutines. StateNew
// is reported by the serve loop, which holds a count of its own, before the
// connection's goroutine starts; each connection ends as either closed or
// hijacked, never both.
func (s *Server) connState(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		s.wg.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.wg.Done()
	}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.wg.Add(1)
	defer s.wg.Done()
	s.requests.Add(1)

	s.mu.Lock()
	if s.armed {
		if s.afterN > 0 {
			s.afterN--
		} else {
			s.armed = false
			s.setLocked(s.afterF)
		}
	}
	f, release := s.fault, s.release
	s.mu.Unlock()

	switch f {
	case Healthy:
		s.handler.ServeHTTP(w, r)
	case Unavailable:
		s.unavailable(w, r)
	case Hang:
		select {
		case <-release:
		case <-r.Context().Done():
		}
		dropConn(w, false)
	case Reset:
		drainBody(w, r)
		dropConn(w, true)
	default: // Closed: the request arrived as the port was closing.
		dropConn(w, false)
	}
}

// Bounds on what a Reset reads of a request body before resetting.
const (
	resetDrainLimit   = 8 << 20
	resetDrainTimeout = 200 * time.Millisecond
)

// drainBody reads and discards the request body, up to resetDrainLimit bytes
// and for at most resetDrainTimeout.
func drainBody(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(resetDrainTimeout))
	_, _ = io.CopyN(io.Discard, r.Body, resetDrainLimit)
}

// dropConn closes the request's connection without an HTTP answer; with
// reset, the close sends a TCP RST instead of a FIN.
func dropConn(w http.ResponseWriter, reset bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("emulators: response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if reset {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	_ = conn.Close()
}

// listenLoopback listens on a fresh port of 127.0.0.1.
func listenLoopback() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("emulators: listen: %w", err)
	}
	return ln, nil
}

// started turns a constructor's result into a test's server, closed by t's
// Cleanup; a failure to listen again is a test error.
func started(t testing.TB, s *Server, err error) *Server {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	s.onError = func(err error) { t.Error(err) }
	t.Cleanup(s.Close)
	return s
}

// relisten listens on addr again, retrying briefly while the port is busy.
func relisten(addr string) (net.Listener, error) {
	deadline := time.Now().Add(relistenTimeout)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logError is how a server made for a program reports a failure to listen
// again.
func logError(err error) { log.Print(err) }
