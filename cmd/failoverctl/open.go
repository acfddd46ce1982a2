package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/journal"
	"github.com/failoverblob/failoverblob/providers"
	// An operator's tool opens whatever the service does: every provider.
	_ "github.com/failoverblob/failoverblob/providers/azure"
	_ "github.com/failoverblob/failoverblob/providers/gcs"
	_ "github.com/failoverblob/failoverblob/providers/s3"
)

// open opens the failover bucket rawURL describes with opts as the defaults
// its parameters override, the sides through providers.DefaultMux (every
// scheme and transport parameter providers.OpenBucket takes), and no
// background reconciler whatever the URL's reconcile parameter says. The
// caller closes the Failover. A URL failoverctl or the opener refuses is a
// usageError.
func open(ctx context.Context, rawURL string, opts failoverblob.Options) (*failoverblob.Failover, error) {
	u, err := withoutReconciler(rawURL)
	if err != nil {
		return nil, usageError{err}
	}
	opener := &failoverblob.URLOpener{Mux: providers.DefaultMux(), Options: opts}
	b, err := opener.OpenBucketURL(ctx, u)
	switch {
	case errors.Is(err, failoverblob.ErrBadURL):
		return nil, usageError{err}
	case errors.Is(err, journal.ErrLocked):
		return nil, fmt.Errorf("%w; the journal_file is held by a running instance, and failoverctl needs it to itself: stop that instance, or run the command inside it", err)
	case err != nil:
		return nil, err
	}
	var f *failoverblob.Failover
	if !b.As(&f) {
		_ = b.Close()
		return nil, errors.New("the URL opened a bucket that is not a failover bucket")
	}
	return f, nil
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
