package providers

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
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/s3blob"
)

// S3URLOpener opens "s3://bucket" URLs with gocloud's s3blob on an
// aws-sdk-go-v2 client whose transport follows Transport.
//
// It accepts s3blob's parameters: region, endpoint, use_path_style (or
// s3ForcePathStyle), disable_https, hostname_immutable, profile, anonymous,
// role, fips, dualstack, accelerate, ssetype, kmskeyid,
// rate_limiter_capacity, request_checksum_calculation and
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
type S3URLOpener struct {
	// Transport is the default for buckets this opener opens.
	Transport Transport
}

// OpenBucketURL implements blob.BucketURLOpener.
func (o *S3URLOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	t, err := o.Transport.fromQuery(q)
	if err != nil {
		return nil, fmt.Errorf("open s3 bucket %q: %w", u.Host, err)
	}
	var opts s3blob.Options
	var clientOpts []func(*s3.Options)
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
		set func(*s3.Options, bool)
	}{
		{"accelerate", func(o *s3.Options, v bool) { o.UseAccelerate = v }},
		{"disable_https", func(o *s3.Options, v bool) { o.EndpointOptions.DisableHTTPS = v }},
		{"use_path_style", func(o *s3.Options, v bool) { o.UsePathStyle = v }},
		{"s3ForcePathStyle", func(o *s3.Options, v bool) { o.UsePathStyle = v }},
	} {
		if s := q.Get(b.k); s != "" {
			v, err := strconv.ParseBool(s)
			if err != nil {
				return nil, fmt.Errorf("open s3 bucket %q: parameter %s=%q: not true or false", u.Host, b.k, s)
			}
			set := b.set
			clientOpts = append(clientOpts, func(o *s3.Options) { set(o, v) })
		}
	}
	for _, k := range []string{"ssetype", "kmskeyid", "accelerate", "disable_https", "use_path_style", "s3ForcePathStyle"} {
		q.Del(k)
	}
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("open s3 bucket %q: %w", u.Host, err)
	}
	tr := t.applyAWS(&cfg)
	opts.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	b, err := s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, clientOpts...), u.Host, &opts)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	w := wrap(b, s3Cond{})
	w.release = tr.CloseIdleConnections
	return w.open(), nil
}

// applyAWS gives cfg t's HTTP client and retryer, and returns the client's
// transport.
func (t Transport) applyAWS(cfg *aws.Config) *http.Transport {
	tr := t.httpTransport()
	cfg.HTTPClient = &http.Client{Transport: tr}
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = t.MaxAttempts
			o.MaxBackoff = t.MaxBackoff
			// Retry tokens would run out during an outage and turn every
			// later call into a quota error; attempts are bounded anyway.
			o.RateLimiter = ratelimit.None
		})
	}
	return tr
}

// ApplyAWS gives an aws.Config loaded outside this package (for example by
// config.LoadDefaultConfig) t's HTTP client and retryer; make the S3 client
// from it afterwards.
func (t Transport) ApplyAWS(cfg *aws.Config) {
	_ = t.withDefaults().applyAWS(cfg)
}

// s3Cond makes writes conditional with If-Match / If-None-Match.
type s3Cond struct{}

// sendMD5 is nil: s3blob does not send a Content-MD5 either.
func (s3Cond) sendMD5([]byte) func(func(any) bool) error { return nil }

func (s3Cond) writeIf(prior *driver.Attributes) func(func(any) bool) error {
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
