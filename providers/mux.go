package providers

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob"
)

// Provider is a kind of bucket the muxes of this package open with a
// failover-fit transport. Each lives in a package of its own that
// registers it when imported, so a program links the SDKs of the providers
// it imports and no others.
type Provider struct {
	// Scheme is the URL scheme of the provider's buckets, such as "s3".
	Scheme string
	// Opener returns the opener of Scheme's URLs for buckets whose
	// clients follow t.
	Opener func(t Transport) blob.BucketURLOpener
	// Conditional returns b with the provider's conditional writes and
	// true if b is one of the provider's buckets opened with its gocloud
	// driver, and nil and false otherwise (see Conditional). Nil means the
	// provider has no conditional writes.
	Conditional func(b *blob.Bucket) (*blob.Bucket, bool)
}

// providerPackages are this module's provider packages by scheme. Muxes
// serve these schemes whether or not the package is imported, so that a
// URL of one that is not imported fails with an error naming the import.
var providerPackages = map[string]string{
	"s3":     "github.com/failoverblob/failoverblob/providers/s3",
	"gs":     "github.com/failoverblob/failoverblob/providers/gcs",
	"azblob": "github.com/failoverblob/failoverblob/providers/azure",
}

var registry = struct {
	sync.RWMutex
	byScheme map[string]Provider
}{byScheme: make(map[string]Provider)}

// Register adds p to the providers NewMux, DefaultMux and Conditional
// know. Provider packages call it from their init functions. It panics if
// p has no Scheme or no Opener, if p.Scheme is file, mem or failover, or if
// a provider is registered for p.Scheme already.
func Register(p Provider) {
	switch p.Scheme {
	case "", fileblob.Scheme, memblob.Scheme, failoverblob.Scheme:
		panic(fmt.Sprintf("providers: Register: scheme %q is not a provider's", p.Scheme))
	}
	if p.Opener == nil {
		panic(fmt.Sprintf("providers: Register: provider %q has no Opener", p.Scheme))
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.byScheme[p.Scheme]; dup {
		panic(fmt.Sprintf("providers: Register: provider %q registered twice", p.Scheme))
	}
	registry.byScheme[p.Scheme] = p
}

// registered returns the provider registered for scheme.
func registered(scheme string) (Provider, bool) {
	registry.RLock()
	defer registry.RUnlock()
	p, ok := registry.byScheme[scheme]
	return p, ok
}

// schemes returns the schemes registered and those of this module's
// provider packages, sorted.
func schemes() []string {
	registry.RLock()
	defer registry.RUnlock()
	all := maps.Clone(providerPackages)
	for s := range registry.byScheme {
		all[s] = ""
	}
	return slices.Sorted(maps.Keys(all))
}

// NewMux returns a URLMux that opens the registered providers' URLs with
// clients following t, file:// and mem:// URLs with gocloud's fileblob and
// memblob, and failover:// URLs whose primary and secondary are opened
// through the same mux.
//
// s3://, gs:// and azblob:// need their packages imported (providers/s3,
// providers/gcs, providers/azure), at any time before a bucket is opened;
// without it, opening fails with an error that names the package. Other
// providers are served by muxes made after they were registered.
func NewMux(t Transport) *blob.URLMux {
	m := new(blob.URLMux)
	for _, s := range schemes() {
		m.RegisterBucket(s, &providerOpener{scheme: s, t: t})
	}
	m.RegisterBucket(fileblob.Scheme, &fileblob.URLOpener{})
	m.RegisterBucket(memblob.Scheme, &memblob.URLOpener{})
	m.RegisterBucket(failoverblob.Scheme, &failoverblob.URLOpener{Mux: m})
	return m
}

// providerOpener opens a scheme's URLs with the provider registered for it
// when the URL is opened.
type providerOpener struct {
	scheme string
	t      Transport
}

func (o *providerOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	p, ok := registered(o.scheme)
	if !ok {
		return nil, fmt.Errorf("providers: open %s bucket %q: the %s provider is not linked in: import _ %q", o.scheme, u.Host, o.scheme, providerPackages[o.scheme])
	}
	return p.Opener(o.t).OpenBucketURL(ctx, u)
}

var defaultMux = sync.OnceValue(func() *blob.URLMux { return NewMux(Transport{}) })

// DefaultMux is the URLMux OpenBucket uses: NewMux with the zero Transport.
func DefaultMux() *blob.URLMux { return defaultMux() }

// OpenBucket opens the bucket at urlstr through DefaultMux. For example, in
// a program that imports providers/s3 and providers/gcs:
//
//	providers.OpenBucket(ctx, "failover://?primary="+url.QueryEscape("s3://orders?region=us-east-1")+
//		"&secondary="+url.QueryEscape("gs://orders-dr"))
func OpenBucket(ctx context.Context, urlstr string) (*blob.Bucket, error) {
	return DefaultMux().OpenBucket(ctx, urlstr)
}

// Conditional returns b with the conditional writes the reconciler uses
// (see driverx.ConditionalWriter), for a bucket opened outside this
// package with gocloud's s3blob, gcsblob or azureblob, whose provider
// package (providers/s3, providers/gcs, providers/azure) is imported; a
// GCS bucket also offers gcs.Classifier (see driverx.OutageClassifier). Any
// other bucket is returned as it is. Closing the result closes b.
func Conditional(b *blob.Bucket) *blob.Bucket {
	for _, s := range schemes() {
		p, ok := registered(s)
		if !ok || p.Conditional == nil {
			continue
		}
		if c, ok := p.Conditional(b); ok {
			return c
		}
	}
	return b
}
