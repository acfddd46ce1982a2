package providers_test

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob/driverx"
	"github.com/failoverblob/failoverblob/providers"
)

// There is no Azure Blob emulator in Go, so the Azure opener's transport is
// checked against a server that only fails: it must be asked exactly
// max_attempts times, whether it answers 503 or hangs, and the credentials
// must not show in the error.
func TestAzureAttemptsAreBounded(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("azure-shared-key-not-for-errors"))
	t.Setenv("AZURE_STORAGE_ACCOUNT", "devaccount")
	t.Setenv("AZURE_STORAGE_KEY", key)
	for _, hang := range []bool{false, true} {
		name := "503"
		if hang {
			name = "hang"
		}
		t.Run(name, func(t *testing.T) {
			var requests atomic.Int64
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				if hang {
					select {
					case <-release:
					case <-r.Context().Done():
					}
					return
				}
				w.Header().Set("x-ms-error-code", "ServerBusy")
				w.WriteHeader(http.StatusServiceUnavailable)
			}))
			defer srv.Close()
			defer close(release)
			u := "azblob://box?localemu=true&protocol=http&domain=" + url.QueryEscape(strings.TrimPrefix(srv.URL, "http://")) +
				"&attempt_timeout=200ms&max_attempts=3&max_backoff=10ms"
			b, err := providers.OpenBucket(context.Background(), u)
			require.NoError(t, err)
			defer b.Close()
			var c *container.Client
			require.True(t, b.As(&c), "the Azure client is reachable with As")
			var cw driverx.ConditionalWriter
			require.True(t, b.As(&cw), "Azure buckets offer conditional writes")

			done := make(chan error, 1)
			go func() { _, err := b.Attributes(context.Background(), "k"); done <- err }()
			select {
			case err := <-done:
				require.Error(t, err)
				require.Equal(t, int64(3), requests.Load(), "tried max_attempts times: %v", err)
				require.NotContains(t, err.Error(), key)
			case <-time.After(30 * time.Second):
				t.Fatal("a call to a failing Azure endpoint did not return")
			}
		})
	}
}

// A write's MD5 is handed to Azure as the blob's Content-MD5, as azureblob
// alone does. The server refuses the write; the upload options are set
// before it is sent.
func TestAzureWriteSendsItsMD5(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ms-error-code", "ServerBusy")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	t.Setenv("AZURE_STORAGE_ACCOUNT", "devaccount")
	t.Setenv("AZURE_STORAGE_KEY", base64.StdEncoding.EncodeToString([]byte("key")))
	u := "azblob://box?localemu=true&protocol=http&domain=" + url.QueryEscape(strings.TrimPrefix(srv.URL, "http://")) + "&max_attempts=1"
	b, err := providers.OpenBucket(context.Background(), u)
	require.NoError(t, err)
	defer b.Close()
	data := []byte("an object with an MD5")
	var o *azblob.UploadStreamOptions
	err = b.WriteAll(context.Background(), "k", data, &blob.WriterOptions{BeforeWrite: func(as func(any) bool) error {
		require.True(t, as(&o), "the upload options are reachable with As")
		return nil
	}})
	require.Error(t, err, "the server refuses every write")
	sum := md5.Sum(data)
	require.Equal(t, sum[:], o.HTTPHeaders.BlobContentMD5, "the Content-MD5 the upload sets")
}
