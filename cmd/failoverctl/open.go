package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/journal"
	"github.com/failoverblob/failoverblob/providers"
	// An operator's tool opens whatever the service does: every provider.
	_ "github.com/failoverblob/failoverblob/providers/azure"
	_ "github.com/failoverblob/failoverblob/providers/gcs"
	_ "github.com/failoverblob/failoverblob/providers/s3"
)

// opened is a failover bucket a command opened, with the buckets its sides
// were opened as, which status probes directly. The Failover owns them:
// closing it closes them.
type opened struct {
	*failoverblob.Failover
	sides [2]*blob.Bucket // primary, secondary
}

// open opens the failover bucket rawURL describes with opts as the defaults
// its parameters override, the sides through providers.DefaultMux (every
// scheme and transport parameter providers.OpenBucket takes), and no
// background reconciler whatever the URL's reconcile parameter says. The
// caller closes the Failover. A URL failoverctl or the opener refuses is a
// usageError.
func open(ctx context.Context, rawURL string, opts failoverblob.Options) (*opened, error) {
	u, err := withoutReconciler(rawURL)
	if err != nil {
		return nil, usageError{err}
	}
	o := &opened{}
	opener := &failoverblob.URLOpener{Mux: o.keepingSides(u), Options: opts}
	b, err := opener.OpenBucketURL(ctx, u)
	switch {
	case errors.Is(err, failoverblob.ErrBadURL):
		return nil, usageError{err}
	case errors.Is(err, journal.ErrLocked):
		return nil, fmt.Errorf("%w; the journal_file is held by a running instance, and failoverctl needs it to itself: stop that instance, or run the command inside it", err)
	case err != nil:
		return nil, err
	}
	if !b.As(&o.Failover) {
		_ = b.Close()
		return nil, errors.New("the URL opened a bucket that is not a failover bucket")
	}
	return o, nil
}

// keepingSides returns a mux that opens what providers.DefaultMux opens,
// and keeps in o.sides the buckets it opens for the failover URL u's
// primary and secondary parameters.
func (o *opened) keepingSides(u *url.URL) *blob.URLMux {
	q := u.Query()
	var want [2]string
	for i, param := range []string{"primary", "secondary"} {
		if su, err := url.Parse(q.Get(param)); err == nil {
			want[i] = su.String()
		}
	}
	base := providers.DefaultMux()
	mux := new(blob.URLMux)
	for _, scheme := range base.BucketSchemes() {
		mux.RegisterBucket(scheme, openerFunc(func(ctx context.Context, su *url.URL) (*blob.Bucket, error) {
			b, err := base.OpenBucketURL(ctx, su)
			for i := range want {
				if err == nil && o.sides[i] == nil && su.String() == want[i] {
					o.sides[i] = b
					break
				}
			}
			return b, err
		}))
	}
	return mux
}

// openerFunc opens a bucket URL with a function.
type openerFunc func(context.Context, *url.URL) (*blob.Bucket, error)

func (f openerFunc) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	return f(ctx, u)
}

// withoutReconciler parses rawURL, checks that it is a failover URL, and
// sets its reconcile parameter to false: a command must not leave a
// reconciler running, and its own passes are the ones it reports on. A
// reconcile value that is not a boolean is still refused, as the service
// would refuse it.
func withoutReconciler(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != failoverblob.Scheme {
		return nil, fmt.Errorf("want a failover:// URL, not one with scheme %q", u.Scheme)
	}
	q := u.Query()
	for _, v := range q["reconcile"] {
		if _, err := strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("parameter reconcile=%q: not true or false", v)
		}
	}
	q.Set("reconcile", "false")
	u.RawQuery = q.Encode()
	return u, nil
}
