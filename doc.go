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
// # As
//
// The failover bucket's As reaches, in this order:
//
//   - a *Failover (pass a **Failover): the control surface;
//   - a driverx.ConditionalWriter, driverx.ConditionalDeleter or
//     driverx.MD5Taker: nothing, since the failover bucket's writes and
//     deletes may land on either side;
//   - any other type: what the primary's bucket reaches with As, else what
//     the secondary's does. Buckets opened by the providers packages reach
//     their SDK's client (*s3.Client, *storage.Client, *container.Client)
//     and the driverx extensions they offer, and a failovertest bucket its
//     *failovertest.Injector.
//
// ErrorAs tries the primary's types, then the secondary's. The other As
// methods reach the types of the side that answered, or none:
//
//   - Reader.As and BeforeRead: the side the read is served from; a read
//     served from Options.Cache reaches a *StaleRead and nothing else.
//   - Attributes.As: the side whose attributes were returned.
//   - ListObject.As and BeforeList: the side the listing page came from
//     (both, for a listing that moves to the secondary); an object listed
//     from pending work alone reaches nothing.
//   - BeforeWrite: in Redirect mode each side the write is opened on (the
//     primary, then the secondary if the write is redirected); in Mirror
//     mode only the first side it is opened on.
//   - BeforeDelete: the first side the delete reaches. A delete recorded as
//     a tombstone while the primary is down (Redirect mode) runs it before
//     the tombstone is recorded, with no driver types.
//   - BeforeSign: the side that signs the URL.
//   - BeforeCopy: no driver types: a copy is read and written back through
//     the failover bucket, not made by a side.
//
// # Control
//
// The *Failover from New (or bucket.As(&f)) reports Status, serves it with
// StatusHandler, and runs the reconciler (Run, or one pass with Drain).
// failovertest rehearses outages without a cloud.
//
// # Telemetry
//
// Every call to a side is measured with OpenTelemetry (Options.MeterProvider)
// and traced with a span, a child of the caller's (Options.TracerProvider);
// nil providers mean the global ones. The metrics (calls by outcome,
// failovers, breaker states, the journal's depth and oldest age, reconciled
// objects and bytes, spooled bytes) are listed with their units and
// attributes in the README ("Metrics and traces"); their names are stable.
// Spans name no keys and carry no error texts or URLs.
package failoverblob
