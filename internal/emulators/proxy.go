package emulators

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ProxyFault is what a [Proxy] does to the TCP streams it forwards.
type ProxyFault int

const (
	// ProxyHealthy forwards every byte as it comes.
	ProxyHealthy ProxyFault = iota
	// ProxyReset resets live connections (TCP RST to the client and the
	// target) at once, and resets every new connection once the client has
	// sent its request (see drainPause). A client that reuses a pooled
	// connection reset while idle may see EPIPE on write rather than
	// ECONNRESET on read.
	ProxyReset
	// ProxyHang accepts connections and forwards nothing: new connections
	// are connected to the target, but bytes read from either side are held
	// until the fault changes. Healing resumes forwarding.
	ProxyHang
	// ProxyCut lets each direction of each connection forward at most the
	// number of bytes set by CutAfter from the moment the cut was armed,
	// then closes both sides of the connection, truncating the stream.
	ProxyCut
	// ProxySlow delays every chunk forwarded, in either direction, by the
	// latency set by Latency.
	ProxySlow
	// ProxyRefuse closes the listener and drops live connections, so dials
	// are refused. Switching to any other fault listens again on the same
	// address.
	ProxyRefuse
)

// String returns the fault's name.
func (f ProxyFault) String() string {
	switch f {
	case ProxyHealthy:
		return "ProxyHealthy"
	case ProxyReset:
		return "ProxyReset"
	case ProxyHang:
		return "ProxyHang"
	case ProxyCut:
		return "ProxyCut"
	case ProxySlow:
		return "ProxySlow"
	case ProxyRefuse:
		return "ProxyRefuse"
	default:
		return fmt.Sprintf("ProxyFault(%d)", int(f))
	}
}

// proxyChunk is the most a proxy reads before forwarding.
const proxyChunk = 32 << 10

// Bounds on what the proxy reads from a new connection before resetting it:
// it reads until the client pauses for drainPause, for at most drainTimeout
// and drainLimit bytes.
const (
	drainPause   = 20 * time.Millisecond
	drainTimeout = 200 * time.Millisecond
	drainLimit   = 8 << 20
)

// Proxy forwards TCP connections from its own loopback address to a target
// address, with a switchable [ProxyFault]. Its methods are safe for
// concurrent use.
type Proxy struct {
	t      testing.TB
	target string
	addr   string

	// wg counts accept loops and connections.
	wg sync.WaitGroup

	accepted    atomic.Int64
	clientBytes atomic.Int64

	mu       sync.Mutex
	fault    ProxyFault
	cutAfter int64
	cutEpoch int64 // bumped whenever a cut is armed, to restart the counts
	latency  time.Duration
	changed  chan struct{} // closed and replaced on every change
	ln       net.Listener  // nil while ProxyRefuse and after Close
	conns    map[*proxyConn]struct{}
	closed   bool
}

// NewProxy starts a proxy on a fresh loopback port that forwards every
// connection to target. t's Cleanup closes it.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{
		t:       t,
		target:  target,
		changed: make(chan struct{}),
		conns:   make(map[*proxyConn]struct{}),
	}
	ln, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.mu.Lock()
	p.serveLocked(ln)
	p.mu.Unlock()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's address, "127.0.0.1:PORT". It does not change
// across ProxyRefuse.
func (p *Proxy) Addr() string { return p.addr }

// URL returns "http://" + Addr().
func (p *Proxy) URL() string { return "http://" + p.addr }

// Accepted returns how many connections the proxy has accepted.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// ClientBytes returns how many bytes the proxy has read from its clients,
// forwarded or not. Tests use it to tell when a request has reached a hung
// proxy.
func (p *Proxy) ClientBytes() int64 { return p.clientBytes.Load() }

// Fault returns the fault in force.
func (p *Proxy) Fault() ProxyFault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

// Set switches the proxy to fault f. Leaving ProxyRefuse listens again on
// the same address; if that fails the test is marked failed and the proxy
// keeps refusing.
func (p *Proxy) Set(f ProxyFault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || f == p.fault {
		return
	}
	switch {
	case f == ProxyRefuse:
		_ = p.ln.Close()
		p.ln = nil
		p.killAllLocked(false)
	case p.fault == ProxyRefuse:
		ln, err := relisten(p.addr)
		if err != nil {
			p.t.Errorf("emulators: proxy: listen again on %s: %v", p.addr, err)
			return
		}
		p.serveLocked(ln)
	}
	if f == ProxyReset {
		p.killAllLocked(true)
	}
	if f == ProxyCut {
		p.cutEpoch++
	}
	p.fault = f
	p.changedLocked()
}

// CutAfter sets how many bytes each direction of a connection may forward
// under ProxyCut, and re-arms the count for every live connection.
func (p *Proxy) CutAfter(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAfter = n
	p.cutEpoch++
	p.changedLocked()
}

// Latency sets the delay added to every chunk under ProxySlow.
func (p *Proxy) Latency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
	p.changedLocked()
}

// Close stops the proxy: it closes the listener and every connection and
// waits for every goroutine the proxy started. Close is idempotent.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	p.killAllLocked(false)
	p.changedLocked()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) changedLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) killAllLocked(reset bool) {
	for c := range p.conns {
		c.kill(reset)
	}
}

func (p *Proxy) serveLocked(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go p.acceptLoop(ln)
}

func (p *Proxy) acceptLoop(ln net.Listener) {
	defer p.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		c := &proxyConn{p: p, client: conn, dead: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = conn.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go c.run()
	}
}

// proxyState is a snapshot of the proxy's settings.
type proxyState struct {
	fault    ProxyFault
	cutAfter int64
	cutEpoch int64
	latency  time.Duration
	changed  <-chan struct{}
}

func (p *Proxy) state() proxyState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return proxyState{p.fault, p.cutAfter, p.cutEpoch, p.latency, p.changed}
}

// proxyConn is one forwarded connection.
type proxyConn struct {
	p      *Proxy
	client net.Conn

	mu       sync.Mutex
	upstream net.Conn // nil until dialled
	dead     chan struct{}
	killed   bool

	// Per direction (0: client to target, 1: target to client), touched
	// only by that direction's pump.
	sent  [2]int64
	epoch [2]int64
}

func (c *proxyConn) run() {
	defer c.p.wg.Done()
	defer func() {
		c.kill(false)
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	}()

	if f := c.p.Fault(); f == ProxyReset || f == ProxyRefuse {
		c.drainClient()
		c.kill(true)
		return
	}
	up, err := net.DialTimeout("tcp", c.p.target, 2*time.Second)
	if err != nil {
		// The target is down: the client's connection is reset, once any
		// hang is over and the client has sent its request.
		c.waitWhileHung()
		c.drainClient()
		c.kill(true)
		return
	}
	c.mu.Lock()
	if c.killed {
		c.mu.Unlock()
		_ = up.Close()
		return
	}
	c.upstream = up
	c.mu.Unlock()

	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); c.pump(0, c.client, up) }()
	go func() { defer pumps.Done(); c.pump(1, up, c.client) }()
	pumps.Wait()
}

// drainClient reads what the client sends until it pauses, so that a reset
// that follows finds the client done writing its request and waiting for the
// answer: it then sees ECONNRESET on read rather than EPIPE on write.
func (c *proxyConn) drainClient() {
	buf := make([]byte, proxyChunk)
	deadline := time.Now().Add(drainTimeout)
	for total := 0; total < drainLimit; {
		pause := time.Now().Add(drainPause)
		if pause.After(deadline) {
			pause = deadline
		}
		_ = c.client.SetReadDeadline(pause)
		n, err := c.client.Read(buf)
		c.p.clientBytes.Add(int64(n))
		total += n
		if err != nil {
			return
		}
	}
}

// waitWhileHung returns when the proxy is not hanging or the connection
// is dead.
func (c *proxyConn) waitWhileHung() {
	for {
		st := c.p.state()
		if st.fault != ProxyHang {
			return
		}
		select {
		case <-st.changed:
		case <-c.dead:
			return
		}
	}
}

// pump forwards src to dst until src ends or the connection dies. At the
// end of src it half-closes dst, so that each side sees the other's FIN.
func (c *proxyConn) pump(dir int, src, dst net.Conn) {
	buf := make([]byte, proxyChunk)
	for {
		n, err := src.Read(buf)
		if dir == 0 {
			c.p.clientBytes.Add(int64(n))
		}
		if n > 0 && !c.forward(dir, dst, buf[:n]) {
			return
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
					return
				}
			}
			c.kill(false)
			return
		}
	}
}

// forward writes b to dst as the proxy's fault allows, and reports whether
// the connection lives on.
func (c *proxyConn) forward(dir int, dst net.Conn, b []byte) bool {
	for {
		st := c.p.state()
		switch st.fault {
		case ProxyHang:
			select {
			case <-st.changed:
				continue
			case <-c.dead:
				return false
			}
		case ProxyReset, ProxyRefuse:
			c.kill(st.fault == ProxyReset)
			return false
		case ProxySlow:
			timer := time.NewTimer(st.latency)
			select {
			case <-timer.C:
			case <-c.dead:
				timer.Stop()
				return false
			}
		case ProxyCut:
			if c.epoch[dir] != st.cutEpoch {
				c.epoch[dir], c.sent[dir] = st.cutEpoch, 0
			}
			left := st.cutAfter - c.sent[dir]
			if int64(len(b)) > left {
				if left > 0 {
					_, _ = dst.Write(b[:left])
				}
				c.kill(false)
				return false
			}
		}
		n, err := dst.Write(b)
		c.sent[dir] += int64(n)
		if err != nil {
			c.kill(false)
			return false
		}
		return true
	}
}

// kill closes both sides of the connection, with a TCP RST when reset is
// set. Only the first call has an effect.
func (c *proxyConn) kill(reset bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killed {
		return
	}
	c.killed = true
	close(c.dead)
	for _, conn := range []net.Conn{c.client, c.upstream} {
		if conn == nil {
			continue
		}
		if tc, ok := conn.(*net.TCPConn); ok && reset {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
}
