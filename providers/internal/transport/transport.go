// Package transport is what the provider packages share of
// providers.Transport: the URL parameters that override it, its defaults,
// and the HTTP transport and retry timing it stands for.
package transport

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/failoverblob/failoverblob/providers"
)

// The URL parameters every provider opener accepts on top of the provider's
// own, overriding the mux's Transport for that bucket.
const (
	ParamAttemptTimeout = "attempt_timeout"
	ParamMaxAttempts    = "max_attempts"
	ParamMaxBackoff     = "max_backoff"
)

// WithDefaults returns t with its zero fields set to their documented
// defaults, and a negative SmallWrite set to 0 (off).
func WithDefaults(t providers.Transport) providers.Transport {
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

// FromQuery returns t with the transport parameters of q, and its
// defaults; it takes those parameters out of q, leaving the provider's own.
func FromQuery(t providers.Transport, q url.Values) (providers.Transport, error) {
	for _, d := range []struct {
		k string
		v *time.Duration
	}{{ParamAttemptTimeout, &t.AttemptTimeout}, {ParamMaxBackoff, &t.MaxBackoff}} {
		if s := q.Get(d.k); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil || v <= 0 {
				return t, fmt.Errorf("parameter %s=%q: want a positive duration such as \"2s\"", d.k, s)
			}
			*d.v = v
		}
		q.Del(d.k)
	}
	if s := q.Get(ParamMaxAttempts); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return t, fmt.Errorf("parameter %s=%q: want a whole number of at least 1", ParamMaxAttempts, s)
		}
		t.MaxAttempts = v
	}
	q.Del(ParamMaxAttempts)
	return WithDefaults(t), nil
}

// HTTP returns an http.Transport with t's per-attempt deadlines.
func HTTP(t providers.Transport) *http.Transport {
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

// Backoff is the wait before attempt n+1 (n counts from 1): doubling from
// 100ms, capped at t.MaxBackoff.
func Backoff(t providers.Transport, n int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < n && d < t.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, t.MaxBackoff)
}

// AttemptBudget is the longest t.MaxAttempts attempts and the waits between
// them can take.
func AttemptBudget(t providers.Transport) time.Duration {
	d := time.Duration(t.MaxAttempts) * t.AttemptTimeout
	for n := 1; n < t.MaxAttempts; n++ {
		d += Backoff(t, n)
	}
	return d
}
