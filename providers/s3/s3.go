// Package s3 opens Amazon S3 buckets, and those of S3-compatible services,
// for failover buckets: with gocloud's s3blob on an aws-sdk-go-v2 client
// that gives up on a failing endpoint quickly (providers.Transport), and
// with the conditional writes the reconciler uses (If-Match,
// If-None-Match). Importing it registers the "s3" scheme with package
// providers, so that providers.OpenBucket, providers.NewMux and
// providers.DefaultMux open s3:// URLs, on their own and as the sides of
// failover:// URLs:
//
//	import (
//		"github.com/failoverblob/failoverblob/providers"
//		_ "github.com/failoverblob/failoverblob/providers/s3"
//	)
//
// URLOpener lists the parameters.
package s3

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/s3blob"

	"github.com/failoverblob/failoverblob/providers"
	"github.com/failoverblob/failoverblob/providers/internal/transport"
	"github.com/failoverblob/failoverblob/providers/internal/wrap"
)

// Scheme is the URL scheme this package registers.
const Scheme = "s3"

func init() {
	providers.Register(providers.Provider{
		Scheme:      Scheme,
		Opener:      func(t providers.Transport) blob.BucketURLOpener { return &URLOpener{Transport: t} },
		Conditional: wrap.Conditional[*awss3.Client](hooks{}),
	})
}

// URLOpener opens "s3://bucket" URLs with gocloud's s3blob on an
// aws-sdk-go-v2 client whose transport follows Transport.
//
// It accepts s3blob's parameters: region, endpoint, use_path_style (or
// s3ForcePathStyle), disable_https, hostname_immutable, profile, anonymous,
// role, fips, dualstack, accelerate, ssetype, kmskeyid,
// rate_limiter_capacity (the retry tokens of the retryer; without it the
// retryer has no token limit, see applyTransport), request_checksum_calculation and
// response_checksum_validation (see gocloud.dev/aws.V2ConfigFromURLParams
// and gocloud.dev/blob/s3blob.URLOpener); and attempt_timeout,
// max_attempts and max_backoff, which override Transport. Credentials come
// from the SDK's default chain (environment, shared files, instance or
// container roles), a named profile or an assumed role; no parameter
// carries a secret.
//
// For an S3-compatible service, give its address as endpoint and usually
// use_path_style=true, e.g.
// "s3://b?endpoint=http://127.0.0.1:9000&use_path_style=true&region=us-east-1".
type URLOpener struct {
	// Transport is the default for buckets this opener opens.
	Transport providers.Transport
}

// OpenBucketURL implements blob.BucketURLOpener.
func (o *URLOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	t, err := transport.FromQuery(o.Transport, q)
	if err != nil {
		return nil, fmt.Errorf("open s3 bucket %q: %w", u.Host, err)
	}
	var opts s3blob.Options
	var clientOpts []func(*awss3.Options)
	if s := q.Get("ssetype"); s != "" {
		var found bool
		for _, v := range types.ServerSideEncryptionAes256.Values() {
			if strings.EqualFold(string(v), s) {
				opts.EncryptionType, found = v, true
			}
		}
		if !found {
			return nil, fmt.Errorf("open s3 bucket %q: parameter ssetype=%q: want one of %v", u.Host, s, types.ServerSideEncryptionAes256.Values())
		}
	}
	opts.KMSEncryptionID = q.Get("kmskeyid")
	for _, b := range []struct {
		k   string
		set func(*awss3.Options, bool)
	}{
		{"accelerate", func(o *awss3.Options, v bool) { o.UseAccelerate = v }},
		{"disable_https", func(o *awss3.Options, v bool) { o.EndpointOptions.DisableHTTPS = v }},
		{"use_path_style", func(o *awss3.Options, v bool) { o.UsePathStyle = v }},
		{"s3ForcePathStyle", func(o *awss3.Options, v bool) { o.UsePathStyle = v }},
	} {
		if s := q.Get(b.k); s != "" {
			v, err := strconv.ParseBool(s)
			if err != nil {
				return nil, fmt.Errorf("open s3 bucket %q: parameter %s=%q: not true or false", u.Host, b.k, s)
			}
			set := b.set
			clientOpts = append(clientOpts, func(o *awss3.Options) { set(o, v) })
		}
	}
	// The retryer is replaced below (applyTransport); its rate limiter
	// follows rate_limiter_capacity here rather than in gocloud's config.
	var limiter retry.RateLimiter = ratelimit.None
	if s := q.Get("rate_limiter_capacity"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("open s3 bucket %q: parameter rate_limiter_capacity=%q: want a positive number of retry tokens", u.Host, s)
		}
		limiter = ratelimit.NewTokenRateLimit(uint(n))
	}
	for _, k := range []string{"ssetype", "kmskeyid", "accelerate", "disable_https", "use_path_style", "s3ForcePathStyle", "rate_limiter_capacity"} {
		q.Del(k)
	}
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("open s3 bucket %q: %w", u.Host, err)
	}
	tr := applyTransportLimited(&cfg, t, limiter)
	opts.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	b, err := s3blob.OpenBucket(ctx, awss3.NewFromConfig(cfg, clientOpts...), u.Host, &opts)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	w := wrap.New(b, hooks{})
	w.Release = tr.CloseIdleConnections
	return w.Open(), nil
}

// applyTransport gives cfg t's HTTP client and retryer, and returns the
// client's transport. The retryer has no retry-token rate limiter: tokens
// would run out during an outage and turn every later call into a quota
// error, and attempts are bounded anyway.
func applyTransport(cfg *aws.Config, t providers.Transport) *http.Transport {
	return applyTransportLimited(cfg, t, ratelimit.None)
}

// applyTransportLimited is applyTransport with the retryer's rate limiter
// given (rate_limiter_capacity).
func applyTransportLimited(cfg *aws.Config, t providers.Transport, limiter retry.RateLimiter) *http.Transport {
	tr := transport.HTTP(t)
	cfg.HTTPClient = &http.Client{Transport: tr}
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = t.MaxAttempts
			o.MaxBackoff = t.MaxBackoff
			o.RateLimiter = limiter
		})
	}
	return tr
}

// ApplyTransport gives an aws.Config loaded outside this package (for
// example by config.LoadDefaultConfig) t's HTTP client and retryer; make the
// S3 client from it afterwards.
func ApplyTransport(cfg *aws.Config, t providers.Transport) {
	_ = applyTransport(cfg, transport.WithDefaults(t))
}

// hooks makes writes conditional with If-Match / If-None-Match.
type hooks struct{}

// SendMD5 is nil: s3blob does not send a Content-MD5 either.
func (hooks) SendMD5([]byte) func(func(any) bool) error { return nil }

// DeleteIf implements driverx.ConditionalDeleter with If-Match on the
// object's ETag (S3 has taken conditional deletes since 2024; some
// S3-compatible services ignore the header).
func (hooks) DeleteIf(prior *driver.Attributes) func(func(any) bool) error {
	if prior == nil || prior.ETag == "" {
		return nil
	}
	return func(as func(any) bool) error {
		var in *awss3.DeleteObjectInput
		if !as(&in) {
			return fmt.Errorf("conditional delete: the s3 delete did not expose its input")
		}
		in.IfMatch = aws.String(prior.ETag)
		return nil
	}
}

// WriteIf implements wrap.Hooks.
func (hooks) WriteIf(prior *driver.Attributes) func(func(any) bool) error {
	if prior != nil && prior.ETag == "" {
		return nil
	}
	return func(as func(any) bool) error {
		var in *transfermanager.UploadObjectInput
		if !as(&in) {
			return fmt.Errorf("conditional write: the s3 writer did not expose its upload input")
		}
		if prior == nil {
			in.IfNoneMatch = aws.String("*")
		} else {
			in.IfMatch = aws.String(prior.ETag)
		}
		return nil
	}
}
