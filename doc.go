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
// The URL parameters (see URLOpener):
//
//	primary, secondary      the sides' URLs, query-escaped (required)
//	mode                    redirect | mirror                 Options.Mode
//	ack                     either | both                     Options.Ack
//	call_timeout            duration, e.g. 5s                 Options.CallTimeout
//	first_byte_timeout      duration                          Options.FirstByteTimeout
//	idle_timeout            duration                          Options.IdleTimeout
//	spool_memory            bytes; -1 keeps none in memory    Options.SpoolMemory
//	spool_dir               directory                         Options.SpoolDir
//	writer_id               name                              Options.WriterID
//	best_effort_list        true | false                      Options.BestEffortList
//	reconcile               true (default) runs Run in the background until Close
//	reconcile_interval      duration                          Options.ReconcileInterval
//	reconcile_concurrency   integer >= 1                      Options.ReconcileConcurrency
//	breaker_failures        outages in a row that trip a side's breaker
//	breaker_timeout         duration a tripped breaker stays open
//	breaker_interval        the breaker's rolling window
//	breaker_probes          probe calls while half-open
//	journal_file            path of a durable journal (journal.OpenFile)
//
// Unknown or repeated parameters, values that do not parse and malformed
// side URLs are errors naming the parameter.
//
// # Control
//
// The *Failover from New (or bucket.As(&f)) reports Status, serves it with
// StatusHandler, and runs the reconciler (Run, or one pass with Drain).
// failovertest rehearses outages without a cloud.
package failoverblob
