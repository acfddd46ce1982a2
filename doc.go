// Package failoverblob keeps a service storing and reading blobs while one
// cloud is down. It wraps two gocloud.dev/blob buckets, a primary and a
// secondary, behind circuit breakers and returns one ordinary *blob.Bucket:
// writes go around a failed primary (Redirect mode) or to both sides
// (Mirror mode), a journal records what each side is missing, and a
// reconciler repairs it once the side is back. Nothing acknowledged is
// lost, and a deleted object never comes back.
//
// # Opening
//
// New and OpenBucket take two buckets and Options. By URL, importing this
// package registers the "failover" scheme on blob.DefaultURLMux:
//
//	blob.OpenBucket(ctx, "failover://?primary="+url.QueryEscape("s3://assets")+
//		"&secondary="+url.QueryEscape("gs://assets-dr")+"&mode=mirror")
//
// The sides are opened through the same mux. The providers subpackage opens
// them with SDK clients tuned to fail fast and with conditional writes, one
// cloud provider per imported package (providers/s3, providers/gcs,
// providers/azure); providers.OpenBucket takes the same failover URLs.
//
// URLOpener lists the URL parameters. Unknown or repeated parameters,
// values that do not parse and malformed side URLs are errors naming the
// parameter.
//
// # Control
//
// The *Failover from New (or bucket.As(&f)) reports Status, serves it with
// StatusHandler, and runs the reconciler (Run, or one pass with Drain).
// failovertest rehearses outages without a cloud.
package failoverblob
