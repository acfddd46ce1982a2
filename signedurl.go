package failoverblob

import (
	"context"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/journal"
)

// SignedURL implements driver.Bucket. The URL is signed by the side that
// serves the key: the holder of a pending key's newest version, else the
// primary, else (in Mirror mode, with the primary down) the secondary.
// Signing is local to most providers and would succeed for a side that is
// down, so the side is first asked for the key's attributes: an outage
// there moves the URL to the other side, as a read would move. A URL that
// writes or deletes bypasses the failover bucket: it stamps no version and
// records no repair.
func (b *bucket) SignedURL(ctx context.Context, key string, opts *driver.SignedURLOptions) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	f := b.f
	sign := func(ctx context.Context, s *side) (url string, err error) {
		if _, err := s.attributes(ctx, f.opts.CallTimeout, key); err != nil && s.outage(ctx, err) {
			return "", err
		}
		err = s.call(ctx, opSignedURL, f.opts.CallTimeout, func(ctx context.Context) (err error) {
			o := *opts
			o.BeforeSign = guardHook(opts.BeforeSign, false)
			url, err = s.d.SignedURL(ctx, key, &o)
			return err
		})
		return url, err
	}
	p, pending, err := f.state(ctx, key)
	switch {
	case err != nil:
		return "", err
	case pending && !p.deleted:
		var url string
		err := f.readPending(ctx, key, p, sideRead{op: opSignedURL, call: func(ctx context.Context, s *side) (any, error) {
			var err error
			url, err = sign(ctx, s)
			return nil, err
		}})
		return url, err
	}
	pr := f.sides[journal.Primary]
	url, err := sign(ctx, pr)
	switch {
	case err == nil || !pr.outage(ctx, err):
		return url, err
	case f.opts.Mode == Redirect:
		return "", unavailable(err, "signing a URL for %q while the primary is down", key)
	}
	return sign(f.failingOver(ctx, opSignedURL, err), f.sides[journal.Secondary])
}
