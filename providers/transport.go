package providers

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Transport is how a provider's client talks to its service. The zero value
// is ready to use and every field's zero value is documented.
//
// The SDKs' own defaults suit a service with nowhere else to go: the GCS
// client retries a 503, a reset or a refused connection for a minute or more,
// and an S3 client with no deadline waits on a hung endpoint forever. Behind
// a failover bucket a failing side should be given up on quickly, so that
// the write goes to the other side and the side's breaker learns of it.
type Transport struct {
	// AttemptTimeout bounds one attempt of a call: connecting, the TLS
	// handshake, and then waiting for the response headers once the request
	// is sent. It does not bound streaming a body, which the failover
	// bucket's IdleTimeout watches. Zero means 10 seconds.
	AttemptTimeout time.Duration
	// MaxAttempts is how many times a call is tried in all, including the
	// first, before its error is returned. Zero means 2.
	MaxAttempts int
	// MaxBackoff caps the wait between attempts. Zero means 1 second.
	MaxBackoff time.Duration
	// SmallWrite (GCS only): a write of at most this many bytes is sent in
	// one request from the bytes held, instead of through the client's
	// 16 MiB chunk buffer (a conditional write, which the client retries,
	// gets a buffer the size of the object). The bytes are held until the
	// write is closed or exceeds SmallWrite. Zero means 256 KiB (the GCS chunk granularity); a negative
	// value turns this off.
	SmallWrite int
}

// The URL parameters every provider opener here accepts on top of the
// provider's own, overriding the mux's Transport for that bucket.
const (
	paramAttemptTimeout = "attempt_timeout"
	paramMaxAttempts    = "max_attempts"
	paramMaxBackoff     = "max_backoff"
)

func (t Transport) withDefaults() Transport {
	if t.AttemptTimeout <= 0 {
		t.AttemptTimeout = 10 * time.Second
	}
	if t.MaxAttempts <= 0 {
		t.MaxAttempts = 2
	}
	if t.MaxBackoff <= 0 {
		t.MaxBackoff = time.Second
	}
	switch {
	case t.SmallWrite == 0:
		t.SmallWrite = 256 << 10
	case t.SmallWrite < 0:
		t.SmallWrite = 0
	}
	return t
}

// fromQuery takes the transport parameters out of q, leaving the provider's
// own.
func (t Transport) fromQuery(q url.Values) (Transport, error) {
	for _, d := range []struct {
		k string
		v *time.Duration
	}{{paramAttemptTimeout, &t.AttemptTimeout}, {paramMaxBackoff, &t.MaxBackoff}} {
		if s := q.Get(d.k); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil || v <= 0 {
				return t, fmt.Errorf("parameter %s=%q: want a positive duration such as \"2s\"", d.k, s)
			}
			*d.v = v
		}
		q.Del(d.k)
	}
	if s := q.Get(paramMaxAttempts); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return t, fmt.Errorf("parameter %s=%q: want a whole number of at least 1", paramMaxAttempts, s)
		}
		t.MaxAttempts = v
	}
	q.Del(paramMaxAttempts)
	return t.withDefaults(), nil
}

// httpTransport is an http.Transport with t's per-attempt deadlines.
func (t Transport) httpTransport() *http.Transport {
	d := &net.Dialer{Timeout: t.AttemptTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   t.AttemptTimeout,
		ResponseHeaderTimeout: t.AttemptTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// backoff is the wait before attempt n+1 (n counts from 1): doubling from
// 100ms, capped at MaxBackoff.
func (t Transport) backoff(n int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < n && d < t.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, t.MaxBackoff)
}

// attemptBudget is the longest MaxAttempts attempts and the waits between
// them can take.
func (t Transport) attemptBudget() time.Duration {
	d := time.Duration(t.MaxAttempts) * t.AttemptTimeout
	for n := 1; n < t.MaxAttempts; n++ {
		d += t.backoff(n)
	}
	return d
}
