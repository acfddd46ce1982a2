// Package gcs opens Google Cloud Storage buckets for failover buckets: with
// gocloud's gcsblob on a cloud.google.com/go/storage client that gives up on
// a failing endpoint quickly (providers.Transport) and sends small writes
// without its 16 MiB chunk buffer, with the conditional writes the
// reconciler uses (generation preconditions), and with an outage classifier
// that reads GCS's HTTP statuses (Classifier). Importing it registers the
// "gs" scheme with package providers, so that providers.OpenBucket,
// providers.NewMux and providers.DefaultMux open gs:// URLs, on their own
// and as the sides of failover:// URLs:
//
//	import (
//		"github.com/failoverblob/failoverblob/providers"
//		_ "github.com/failoverblob/failoverblob/providers/gcs"
//	)
//
// URLOpener lists the parameters.
package gcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/gcp"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/providers"
	"github.com/failoverblob/failoverblob/providers/internal/transport"
	"github.com/failoverblob/failoverblob/providers/internal/wrap"
)

// Scheme is the URL scheme this package registers.
const Scheme = "gs"

func init() {
	providers.Register(providers.Provider{
		Scheme:      Scheme,
		Opener:      func(t providers.Transport) blob.BucketURLOpener { return &URLOpener{Transport: t} },
		Conditional: wrap.Conditional[*storage.Client](hooks{}),
	})
}

// URLOpener opens "gs://bucket" URLs with gocloud's gcsblob on a
// cloud.google.com/go/storage client (JSON API, XML reads) whose transport
// follows Transport.
//
// Parameters:
//   - endpoint: the service's base URL, such as "http://127.0.0.1:4443" for
//     an emulator; the client then sends no credentials. Unlike the
//     STORAGE_EMULATOR_HOST variable it applies to this bucket only.
//   - anonymous: "true" sends no credentials.
//   - access_id, private_key_path: the identity and key SignedURL signs
//     with, as in gcsblob; by default they are read from the default
//     credentials when those are a service-account key.
//   - attempt_timeout, max_attempts, max_backoff: override Transport.
//
// Otherwise credentials come from Application Default Credentials; no
// parameter carries a secret. gcsblob's grpc and zonal parameters are not
// supported here.
type URLOpener struct {
	// Transport is the default for buckets this opener opens.
	Transport providers.Transport
}

// OpenBucketURL implements blob.BucketURLOpener.
func (o *URLOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	t, err := transport.FromQuery(o.Transport, q)
	if err != nil {
		return nil, fmt.Errorf("open gs bucket %q: %w", u.Host, err)
	}
	var endpoint, accessID, keyPath string
	anonymous := false
	for k := range q {
		v := q.Get(k)
		switch k {
		case "endpoint":
			endpoint = v
		case "anonymous":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("open gs bucket %q: parameter anonymous=%q: not true or false", u.Host, v)
			}
			anonymous = b
		case "access_id":
			accessID = v
		case "private_key_path":
			keyPath = v
		default:
			return nil, fmt.Errorf("open gs bucket %q: unknown parameter %q (known: endpoint, anonymous, access_id, private_key_path, %s, %s, %s)", u.Host, k, transport.ParamAttemptTimeout, transport.ParamMaxAttempts, transport.ParamMaxBackoff)
		}
	}
	var opts gcsblob.Options
	copts := []option.ClientOption{}
	base := transport.HTTP(t)
	switch {
	case endpoint != "":
		eu, err := url.Parse(endpoint)
		if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
			return nil, fmt.Errorf("open gs bucket %q: parameter endpoint=%q: want a URL such as http://127.0.0.1:4443", u.Host, endpoint)
		}
		copts = append(copts, option.WithEndpoint(strings.TrimSuffix(endpoint, "/")+"/storage/v1/"),
			option.WithHTTPClient(&http.Client{Transport: base}))
	case anonymous:
		copts = append(copts, option.WithHTTPClient(&http.Client{Transport: base}))
	default:
		creds, err := gcp.DefaultCredentials(ctx)
		if err != nil {
			return nil, fmt.Errorf("open gs bucket %q: no default credentials (set anonymous=true for public buckets): %w", u.Host, err)
		}
		hc, err := gcp.NewHTTPClient(base, gcp.CredentialsTokenSource(creds))
		if err != nil {
			return nil, fmt.Errorf("open gs bucket %q: %w", u.Host, err)
		}
		copts = append(copts, option.WithHTTPClient(&hc.Client))
		opts.GoogleAccessID, opts.PrivateKey = serviceAccountKey(creds.JSON)
	}
	if accessID != "" {
		opts.GoogleAccessID, opts.PrivateKey = accessID, nil
	}
	if keyPath != "" {
		pk, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, fmt.Errorf("open gs bucket %q: reading private_key_path: %w", u.Host, err)
		}
		opts.PrivateKey = pk
	}
	c, err := storage.NewClient(ctx, copts...)
	if err != nil {
		return nil, fmt.Errorf("open gs bucket %q: %w", u.Host, err)
	}
	applyTransport(c, t)
	opts.Client = c
	b, err := gcsblob.OpenBucket(ctx, nil, u.Host, &opts)
	if err != nil {
		_ = c.Close()
		base.CloseIdleConnections()
		return nil, err
	}
	w := wrap.New(b, hooks{})
	// gcsblob does not close a client it is given.
	w.Release = func() {
		_ = c.Close()
		base.CloseIdleConnections()
	}
	w.SmallWrite, w.SmallBudget, w.TuneWriter = t.SmallWrite, transport.AttemptBudget(t), tuneWriter(t)
	return w.Open(), nil
}

// applyTransport gives c t's retry rules. The client retries only idempotent
// calls: reads, deletes, and writes with a precondition (the reconciler's).
// A plain write is tried once, since the client cannot know that sending it
// again is safe; behind a failover bucket a failed write goes to the other
// side instead.
func applyTransport(c *storage.Client, t providers.Transport) {
	c.SetRetry(
		storage.WithPolicy(storage.RetryIdempotent),
		storage.WithMaxAttempts(t.MaxAttempts),
		storage.WithBackoff(gax.Backoff{Initial: transport.Backoff(t, 1), Max: t.MaxBackoff, Multiplier: 2}),
	)
}

// tuneWriter returns a BeforeWrite hook that gives a GCS writer t's limits. The client retries the chunks
// of a resumable upload until the writer's ChunkRetryDeadline (32 s by
// default) rather than for a number of attempts, so the deadline is set to
// MaxAttempts-1 attempt timeouts plus their backoffs: with one attempt, a
// failed chunk is not retried. ChunkTransferTimeout bounds each attempt.
// (A one-request upload is retried, if at all, until its context ends; the
// small-write path gives it a context bounded by transport.AttemptBudget.)
func tuneWriter(t providers.Transport) func(as func(any) bool) error {
	deadline := time.Nanosecond
	for n := 1; n < t.MaxAttempts; n++ {
		deadline += t.AttemptTimeout + transport.Backoff(t, n)
	}
	return func(as func(any) bool) error {
		var w *storage.Writer
		if !as(&w) {
			return nil
		}
		w.ChunkRetryDeadline = deadline
		w.ChunkTransferTimeout = t.AttemptTimeout
		return nil
	}
}

// ApplyTransport gives a storage client opened outside this package t's
// retry rules. Its HTTP transport is set when the client is made: pass
// option.WithHTTPClient with a client of your own timeouts.
func ApplyTransport(c *storage.Client, t providers.Transport) {
	applyTransport(c, transport.WithDefaults(t))
}

// serviceAccountKey reads the signing identity from a service-account key
// file's JSON, if that is what the credentials are.
func serviceAccountKey(js []byte) (string, []byte) {
	var f struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
	}
	if json.Unmarshal(js, &f) != nil || f.Type != "service_account" {
		return "", nil
	}
	return f.ClientEmail, []byte(f.PrivateKey)
}

// Classifier is circuit.DefaultClassifier that also reads the HTTP status
// the GCS client reports in a *googleapi.Error, which the default does not
// know: a 503, a 500 or a 429 is then an outage and any other 4xx an
// answer, as from S3. (gcsblob gives a 503 the code gcerrors.Unknown,
// which alone is an answer.) An error whose chain has an HTTPStatusCode()
// method is classified by it, as the default does.
//
// Buckets this package opens, and those providers.Conditional wraps, offer
// it to a failover bucket through As (driverx.OutageClassifier), which uses
// it where its breaker settings name no Classifier. For a GCS bucket opened
// otherwise and given to failoverblob.New, set it as the failover bucket's
// Options.Breaker.Classifier.
func Classifier(ctx context.Context, err error) bool {
	var withStatus interface{ HTTPStatusCode() int }
	var gerr *googleapi.Error
	if err != nil && !errors.As(err, &withStatus) && errors.As(err, &gerr) {
		err = googleStatus{err, gerr.Code}
	}
	return circuit.DefaultClassifier(ctx, err)
}

// googleStatus is err with the HTTP status of the *googleapi.Error in its
// chain, in the form circuit.DefaultClassifier reads.
type googleStatus struct {
	error
	code int
}

func (e googleStatus) HTTPStatusCode() int { return e.code }
func (e googleStatus) Unwrap() error       { return e.error }

// hooks makes writes conditional on the object's generation, and
// classifies GCS's errors (Classifier).
type hooks struct{}

// IsOutage implements driverx.OutageClassifier with Classifier.
func (hooks) IsOutage(ctx context.Context, err error) bool { return Classifier(ctx, err) }

// SendMD5 sets the writer's MD5, which GCS checks the object against.
func (hooks) SendMD5(sum []byte) func(func(any) bool) error {
	return func(as func(any) bool) error {
		var w *storage.Writer
		if !as(&w) {
			return fmt.Errorf("write: the gcs writer did not expose itself to take the MD5")
		}
		w.MD5 = sum
		return nil
	}
}

// DeleteIf implements driverx.ConditionalDeleter with a generation
// precondition.
func (hooks) DeleteIf(prior *driver.Attributes) func(func(any) bool) error {
	var oa storage.ObjectAttrs
	if prior == nil || prior.AsFunc == nil || !prior.AsFunc(&oa) || oa.Generation == 0 {
		return nil
	}
	return func(as func(any) bool) error {
		var oh **storage.ObjectHandle
		if !as(&oh) {
			return fmt.Errorf("conditional delete: the gcs delete did not expose its object handle")
		}
		*oh = (*oh).If(storage.Conditions{GenerationMatch: oa.Generation})
		return nil
	}
}

// WriteIf implements wrap.Hooks.
func (hooks) WriteIf(prior *driver.Attributes) func(func(any) bool) error {
	cond := storage.Conditions{DoesNotExist: true}
	if prior != nil {
		var oa storage.ObjectAttrs
		if prior.AsFunc == nil || !prior.AsFunc(&oa) || oa.Generation == 0 {
			return nil
		}
		cond = storage.Conditions{GenerationMatch: oa.Generation}
	}
	return func(as func(any) bool) error {
		var oh **storage.ObjectHandle
		if !as(&oh) {
			return fmt.Errorf("conditional write: the gcs writer did not expose its object handle")
		}
		*oh = (*oh).If(cond)
		return nil
	}
}
