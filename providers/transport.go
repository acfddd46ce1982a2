package providers

import "time"

// Transport is how a provider's client talks to its service. The zero value
// is ready to use and every field's zero value is documented.
//
// The SDKs' own defaults suit a service with nowhere else to go: the GCS
// client retries a 503, a reset or a refused connection for a minute or more,
// and an S3 client with no deadline waits on a hung endpoint forever. Behind
// a failover bucket a failing side should be given up on quickly, so that
// the write goes to the other side and the side's breaker learns of it.
//
// Every provider URL also takes attempt_timeout, max_attempts and
// max_backoff, which override the mux's Transport for that bucket.
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
	// write is closed or exceeds SmallWrite. Zero means 256 KiB (the GCS
	// chunk granularity); a negative value turns this off.
	SmallWrite int
}
