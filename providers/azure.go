package providers

import (
	"context"
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
)

// AzureURLOpener opens "azblob://container" URLs with gocloud's azureblob on
// an Azure SDK client whose transport follows Transport.
//
// It accepts azureblob's parameters (domain, protocol, cdn, localemu,
// storage_account) and attempt_timeout, max_attempts and max_backoff. As
// with azureblob, the account and credentials come from the environment:
// AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY (shared key),
// AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING, or else the
// Azure identity chain (azidentity.NewDefaultAzureCredential). No parameter
// carries a secret.
type AzureURLOpener struct {
	// Transport is the default for buckets this opener opens.
	Transport Transport
}

// OpenBucketURL implements blob.BucketURLOpener.
func (o *AzureURLOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	t, err := o.Transport.fromQuery(q)
	if err != nil {
		return nil, fmt.Errorf("open azblob container %q: %w", u.Host, err)
	}
	rest := *u
	rest.RawQuery = q.Encode()
	tr := t.httpTransport()
	az := &azureblob.URLOpener{
		ServiceURLOptions: *azureblob.NewDefaultServiceURLOptions(),
		MakeClient: func(svc azureblob.ServiceURL, name azureblob.ContainerName) (*container.Client, error) {
			return t.azureClient(svc, name, tr)
		},
	}
	b, err := az.OpenBucketURL(ctx, &rest)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("open azblob container %q: %w", u.Host, err)
	}
	w := wrap(b, azureCond{})
	w.release = tr.CloseIdleConnections
	return w.open(), nil
}

// azureClient makes a container client with t's transport and retries,
// choosing credentials from the environment as azureblob does.
func (t Transport) azureClient(svcURL azureblob.ServiceURL, name azureblob.ContainerName, tr *http.Transport) (*container.Client, error) {
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: &http.Client{Transport: tr},
		Retry: policy.RetryOptions{
			MaxRetries:    int32(t.MaxAttempts - 1),
			RetryDelay:    t.backoff(1),
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

// azureCond makes writes conditional with If-Match / If-None-Match.
type azureCond struct{}

// sendMD5 sets the blob's Content-MD5 property.
func (azureCond) sendMD5(sum []byte) func(func(any) bool) error {
	return func(as func(any) bool) error {
		var o *azblob.UploadStreamOptions
		if !as(&o) {
			return fmt.Errorf("write: the azblob writer did not expose its upload options to take the MD5")
		}
		o.HTTPHeaders.BlobContentMD5 = sum
		return nil
	}
}

func (azureCond) writeIf(prior *driver.Attributes) func(func(any) bool) error {
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
