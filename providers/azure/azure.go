// Package azure opens Azure Blob Storage containers for failover buckets:
// with gocloud's azureblob on an Azure SDK client that gives up on a failing
// endpoint quickly (providers.Transport), and with the conditional writes
// the reconciler uses (If-Match, If-None-Match). Importing it registers the
// "azblob" scheme with package providers, so that providers.OpenBucket,
// providers.NewMux and providers.DefaultMux open azblob:// URLs, on their
// own and as the sides of failover:// URLs:
//
//	import (
//		"github.com/failoverblob/failoverblob/providers"
//		_ "github.com/failoverblob/failoverblob/providers/azure"
//	)
//
// URLOpener lists the parameters and where credentials come from.
package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	azblobblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/providers"
	"github.com/failoverblob/failoverblob/providers/internal/transport"
	"github.com/failoverblob/failoverblob/providers/internal/wrap"
)

// Scheme is the URL scheme this package registers.
const Scheme = "azblob"

func init() {
	providers.Register(providers.Provider{
		Scheme:      Scheme,
		Opener:      func(t providers.Transport) blob.BucketURLOpener { return &URLOpener{Transport: t} },
		Conditional: wrap.Conditional[*container.Client](hooks{}),
	})
}

// URLOpener opens "azblob://container" URLs with gocloud's azureblob on
// an Azure SDK client whose transport follows Transport.
//
// It accepts azureblob's parameters (domain, protocol, cdn, localemu,
// storage_account) and attempt_timeout, max_attempts and max_backoff. As
// with azureblob, the account and credentials come from the environment:
// AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY (shared key),
// AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING, or else the
// Azure identity chain (azidentity.NewDefaultAzureCredential). No parameter
// carries a secret.
type URLOpener struct {
	// Transport is the default for buckets this opener opens.
	Transport providers.Transport
}

// OpenBucketURL implements blob.BucketURLOpener.
func (o *URLOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	t, err := transport.FromQuery(o.Transport, q)
	if err != nil {
		return nil, fmt.Errorf("open azblob container %q: %w", u.Host, err)
	}
	rest := *u
	rest.RawQuery = q.Encode()
	tr := transport.HTTP(t)
	az := &azureblob.URLOpener{
		ServiceURLOptions: *azureblob.NewDefaultServiceURLOptions(),
		MakeClient: func(svc azureblob.ServiceURL, name azureblob.ContainerName) (*container.Client, error) {
			return newClient(svc, name, t, tr)
		},
	}
	b, err := az.OpenBucketURL(ctx, &rest)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("open azblob container %q: %w", u.Host, err)
	}
	w := wrap.New(b, hooks{})
	w.Release = tr.CloseIdleConnections
	return w.Open(), nil
}

// newClient makes a container client with tr and t's retries, choosing
// credentials from the environment as azureblob does.
func newClient(svcURL azureblob.ServiceURL, name azureblob.ContainerName, t providers.Transport, tr *http.Transport) (*container.Client, error) {
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: &http.Client{Transport: tr},
		Retry: policy.RetryOptions{
			MaxRetries:    int32(t.MaxAttempts - 1),
			RetryDelay:    transport.Backoff(t, 1),
			MaxRetryDelay: t.MaxBackoff,
		},
	}}
	if t.MaxAttempts == 1 {
		opts.Retry.MaxRetries = -1 // the SDK reads 0 as its default of 3
	}
	containerURL, err := url.JoinPath(string(svcURL), string(name))
	if err != nil {
		return nil, err
	}
	account, key := os.Getenv("AZURE_STORAGE_ACCOUNT"), os.Getenv("AZURE_STORAGE_KEY")
	conn := os.Getenv("AZURE_STORAGE_CONNECTION_STRING")
	if conn == "" {
		conn = os.Getenv("AZURE_STORAGEBLOB_CONNECTIONSTRING")
	}
	switch {
	case account != "" && key != "":
		cred, err := azblob.NewSharedKeyCredential(account, key)
		if err != nil {
			return nil, fmt.Errorf("AZURE_STORAGE_KEY: %w", err)
		}
		return container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
	case os.Getenv("AZURE_STORAGE_SAS_TOKEN") != "":
		// The service URL already carries the token.
		return container.NewClientWithNoCredential(containerURL, opts)
	case conn != "":
		return container.NewClientFromConnectionString(conn, string(name), opts)
	default:
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("azure default credentials: %w", err)
		}
		return container.NewClient(containerURL, cred, opts)
	}
}

// hooks makes writes and deletes conditional with If-Match /
// If-None-Match, and classifies Azure's errors (Classifier).
type hooks struct{}

// IsOutage implements driverx.OutageClassifier with Classifier.
func (hooks) IsOutage(ctx context.Context, err error) bool { return Classifier(ctx, err) }

// Classifier is circuit.DefaultClassifier taught the HTTP status of the
// Azure SDK's *azcore.ResponseError, which carries it in a field that
// DefaultClassifier cannot read: an Azure 503 then counts as an outage, as
// it does from S3. Buckets opened through this package use it; a failover
// bucket over an Azure bucket built otherwise needs it as its breakers'
// circuit.Settings.Classifier.
func Classifier(ctx context.Context, err error) bool {
	var withStatus interface{ HTTPStatusCode() int }
	var rerr *azcore.ResponseError
	if err != nil && !errors.As(err, &withStatus) && errors.As(err, &rerr) {
		err = azureStatus{err, rerr.StatusCode}
	}
	return circuit.DefaultClassifier(ctx, err)
}

// azureStatus is err with the HTTP status of the *azcore.ResponseError in
// its chain, in the form circuit.DefaultClassifier reads.
type azureStatus struct {
	error
	code int
}

func (e azureStatus) HTTPStatusCode() int { return e.code }
func (e azureStatus) Unwrap() error       { return e.error }

// DeleteIf implements driverx.ConditionalDeleter with If-Match on the
// blob's ETag.
func (hooks) DeleteIf(prior *driver.Attributes) func(func(any) bool) error {
	if prior == nil || prior.ETag == "" {
		return nil
	}
	return func(as func(any) bool) error {
		var o *azblobblob.DeleteOptions
		if !as(&o) {
			return fmt.Errorf("conditional delete: the azblob delete did not expose its options")
		}
		o.AccessConditions = &azblobblob.AccessConditions{ModifiedAccessConditions: &azblobblob.ModifiedAccessConditions{IfMatch: new(azcore.ETag(prior.ETag))}}
		return nil
	}
}

// SendMD5 sets the blob's Content-MD5 property.
func (hooks) SendMD5(sum []byte) func(func(any) bool) error {
	return func(as func(any) bool) error {
		var o *azblob.UploadStreamOptions
		if !as(&o) {
			return fmt.Errorf("write: the azblob writer did not expose its upload options to take the MD5")
		}
		o.HTTPHeaders.BlobContentMD5 = sum
		return nil
	}
}

// WriteIf implements wrap.Hooks.
func (hooks) WriteIf(prior *driver.Attributes) func(func(any) bool) error {
	mac := &azblobblob.ModifiedAccessConditions{}
	switch {
	case prior == nil:
		mac.IfNoneMatch = new(azcore.ETagAny)
	case prior.ETag != "":
		mac.IfMatch = new(azcore.ETag(prior.ETag))
	default:
		return nil
	}
	return func(as func(any) bool) error {
		var o *azblob.UploadStreamOptions
		if !as(&o) {
			return fmt.Errorf("conditional write: the azblob writer did not expose its upload options")
		}
		o.AccessConditions = &azblob.AccessConditions{ModifiedAccessConditions: mac}
		return nil
	}
}
