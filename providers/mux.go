package providers

import (
	"context"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob"
)

// NewMux returns a URLMux that opens s3://, gs:// and azblob:// URLs with
// clients following t, file:// and mem:// URLs with gocloud's fileblob and
// memblob, and failover:// URLs whose primary and secondary are opened
// through the same mux.
func NewMux(t Transport) *blob.URLMux {
	m := new(blob.URLMux)
	m.RegisterBucket("s3", &S3URLOpener{Transport: t})
	m.RegisterBucket("gs", &GCSURLOpener{Transport: t})
	m.RegisterBucket("azblob", &AzureURLOpener{Transport: t})
	m.RegisterBucket(fileblob.Scheme, &fileblob.URLOpener{})
	m.RegisterBucket(memblob.Scheme, &memblob.URLOpener{})
	m.RegisterBucket(failoverblob.Scheme, &failoverblob.URLOpener{Mux: m})
	return m
}

var defaultMux = sync.OnceValue(func() *blob.URLMux { return NewMux(Transport{}) })

// DefaultMux is the URLMux OpenBucket uses: NewMux with the zero Transport.
func DefaultMux() *blob.URLMux { return defaultMux() }

// OpenBucket opens the bucket at urlstr through DefaultMux. For example
//
//	providers.OpenBucket(ctx, "failover://?primary="+url.QueryEscape("s3://orders?region=us-east-1")+
//		"&secondary="+url.QueryEscape("gs://orders-dr"))
func OpenBucket(ctx context.Context, urlstr string) (*blob.Bucket, error) {
	return DefaultMux().OpenBucket(ctx, urlstr)
}
