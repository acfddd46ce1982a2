package providers_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob/gcsblob"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/driverx"
	"github.com/failoverblob/failoverblob/providers"
	"github.com/failoverblob/failoverblob/providers/gcs"
)

// GCS reports an HTTP status in a *googleapi.Error, which circuit does not
// know; gcs.Classifier reads it as circuit reads S3's.
func TestGCSClassifier(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"503", live, &googleapi.Error{Code: 503}, true},
		{"500", live, &googleapi.Error{Code: 500}, true},
		{"429", live, &googleapi.Error{Code: 429}, true},
		{"404, wrapped", live, fmt.Errorf("x: %w", &googleapi.Error{Code: 404}), false},
		{"412", live, &googleapi.Error{Code: 412}, false},
		{"503, the caller cancelled", cancelled, &googleapi.Error{Code: 503}, false},
		{"reset, no status", live, fmt.Errorf("x: %w", syscall.ECONNRESET), true},
		{"no error", live, nil, false},
	} {
		assert.Equal(t, tc.want, gcs.Classifier(tc.ctx, tc.err), tc.name)
	}
	assert.False(t, circuit.DefaultClassifier(live, &googleapi.Error{Code: 503}),
		"circuit's default takes a GCS 503 for an answer: a GCS side needs gcs.Classifier")
}

// GCS buckets opened by providers/gcs offer gcs.Classifier through As,
// which a failover bucket over them uses (TestOutageOverTheWire takes a GCS
// primary down with 503s); so does a gcsblob bucket opened elsewhere once
// Conditional wraps it. S3's errors carry their status where circuit reads
// it.
func TestGCSBucketsOfferTheirClassifier(t *testing.T) {
	ctx := context.Background()
	gcse, s3e := startGCS(t), startS3(t)
	var oc driverx.OutageClassifier
	require.True(t, gcse.open(t).As(&oc), "a gs:// bucket offers an outage classifier")
	assert.True(t, oc.IsOutage(ctx, &googleapi.Error{Code: 503}))
	assert.False(t, s3e.open(t).As(&oc), "an s3:// bucket offers none")

	client, err := storage.NewClient(ctx, option.WithEndpoint(gcse.srv.URL()+"/storage/v1/"), option.WithoutAuthentication())
	require.NoError(t, err)
	defer client.Close()
	raw, err := gcsblob.OpenBucket(ctx, nil, testBucket, &gcsblob.Options{Client: client})
	require.NoError(t, err)
	b := providers.Conditional(raw)
	defer b.Close()
	oc = nil
	require.True(t, b.As(&oc), "a gcsblob bucket through Conditional offers an outage classifier")
	assert.True(t, oc.IsOutage(ctx, &googleapi.Error{Code: 503}))
}
