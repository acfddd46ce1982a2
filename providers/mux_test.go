package providers

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
)

// withoutProviders runs the rest of the test with no provider registered,
// as in a program that imports none of the provider packages.
func withoutProviders(t *testing.T) {
	registry.Lock()
	saved := registry.byScheme
	registry.byScheme = make(map[string]Provider)
	registry.Unlock()
	t.Cleanup(func() {
		registry.Lock()
		registry.byScheme = saved
		registry.Unlock()
	})
}

// A URL of a provider whose package is not imported fails with an error
// that names the import, including as a side of a failover URL.
func TestUnimportedProviderNamesItsPackage(t *testing.T) {
	withoutProviders(t)
	ctx := context.Background()
	for _, c := range []struct{ url, pkg string }{
		{"s3://bucket", "providers/s3"},
		{"gs://bucket", "providers/gcs"},
		{"azblob://container", "providers/azure"},
		{"failover://?primary=s3%3A%2F%2Fp&secondary=mem%3A%2F%2F", "providers/s3"},
	} {
		_, err := NewMux(Transport{}).OpenBucket(ctx, c.url)
		require.ErrorContains(t, err, `import _ "github.com/failoverblob/failoverblob/`+c.pkg+`"`, "opening %s", c.url)
	}
	b, err := NewMux(Transport{}).OpenBucket(ctx, "mem://")
	require.NoError(t, err, "mem:// needs no provider package")
	require.NoError(t, b.Close())
}

// Register refuses what would make a scheme ambiguous or unopenable.
func TestRegisterRefusesBadProviders(t *testing.T) {
	withoutProviders(t)
	opener := func(Transport) blob.BucketURLOpener { return &memblob.URLOpener{} }
	require.NotPanics(t, func() { Register(Provider{Scheme: "s3", Opener: opener}) })
	for _, p := range []Provider{
		{Scheme: "s3", Opener: opener},
		{Scheme: "", Opener: opener},
		{Scheme: "mem", Opener: opener},
		{Scheme: "failover", Opener: opener},
		{Scheme: "other"},
	} {
		require.Panics(t, func() { Register(p) }, "Register(%+v)", p)
	}
}

// A mux serves s3://, gs:// and azblob:// with whatever provider is
// registered when a URL is opened, so the order in which packages are
// initialized does not matter.
func TestMuxFindsAProviderRegisteredAfterIt(t *testing.T) {
	withoutProviders(t)
	m := NewMux(Transport{})
	Register(Provider{Scheme: "gs", Opener: func(Transport) blob.BucketURLOpener { return &memblob.URLOpener{} }})
	b, err := m.OpenBucket(context.Background(), "gs://bucket")
	require.NoError(t, err)
	require.NoError(t, b.Close())
}
