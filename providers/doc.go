// Package providers opens the buckets a failover bucket sits on — S3, GCS,
// Azure Blob, local files and memory — by URL, with clients tuned to fail
// fast and with the conditional writes the reconciler uses.
//
// gocloud's own openers (registered on blob.DefaultURLMux by s3blob, gcsblob
// and azureblob) use each SDK's default transport, which is built for a
// service with nowhere else to go: the GCS client retries a 503, a reset or
// a refused connection for a minute or more, and an S3 client with no
// deadline waits on a hung endpoint forever. The openers here give every
// attempt a deadline (Transport.AttemptTimeout) and bound the attempts
// (Transport.MaxAttempts), so a failing side is reported within a known time
// and the failover bucket moves on. GCS small writes are sent in one request
// without the client's 16 MiB chunk buffer.
//
// # Providers are imported one by one
//
// As with gocloud's drivers, each cloud provider is a package of its own,
// registered when imported, so a program links only the SDKs it uses:
//
//	import (
//		"github.com/failoverblob/failoverblob/providers"
//		_ "github.com/failoverblob/failoverblob/providers/azure" // azblob://
//		_ "github.com/failoverblob/failoverblob/providers/gcs"   // gs://
//		_ "github.com/failoverblob/failoverblob/providers/s3"    // s3://
//	)
//
// Opening a URL whose provider package is not imported fails with an error
// that names the package. This package itself links no cloud SDK.
//
// # Opening
//
// OpenBucket and DefaultMux (and NewMux, with a Transport of your own) open:
//
//	s3://bucket?region=us-east-1                         S3 (providers/s3)
//	s3://bucket?endpoint=http://host:9000&use_path_style=true&region=us-east-1
//	                                                     an S3-compatible service
//	gs://bucket                                          GCS (providers/gcs)
//	gs://bucket?endpoint=http://127.0.0.1:4443           a GCS emulator
//	azblob://container                                   Azure Blob (providers/azure)
//	file:///path/to/dir, mem://                          gocloud's fileblob, memblob
//	failover://?primary=...&secondary=...                a failover bucket over two of these
//
// Each provider's parameters are listed on its package's URLOpener; all
// three also take attempt_timeout, max_attempts and max_backoff, which
// override the mux's Transport. The failover parameters are listed on
// failoverblob.URLOpener. The nested URLs of a failover URL must be
// query-escaped (url.QueryEscape).
//
// blob.OpenBucket(ctx, "failover://...") works too, once the failoverblob
// package is imported: it opens the sides through blob.DefaultURLMux, that
// is, with gocloud's own openers and the SDKs' default transports. The
// failover bucket's own deadlines still bound every call; the sides simply
// take longer to be found failing.
//
// # Credentials
//
// Credentials come only from each SDK's standard chain (environment, shared
// configuration files, instance or workload identity) or from the
// parameters documented on the openers, none of which carries a secret.
// Errors name the bucket, never a credential.
//
// # Outages
//
// A failover bucket moves traffic off a side when the side's errors show an
// outage (see circuit.DefaultClassifier). The GCS client reports an HTTP
// status in a *googleapi.Error, which circuit does not know, so the buckets
// providers/gcs opens offer gcs.Classifier through As
// (driverx.OutageClassifier), and a failover bucket over them counts a GCS
// 503 as an outage, as it does an S3 one. For a GCS bucket opened
// otherwise, wrap it with Conditional or set gcs.Classifier as the failover
// bucket's Options.Breaker.Classifier.
//
// # Conditional writes
//
// Buckets opened here offer a driverx.ConditionalWriter through As:
// when the reconciler copies an object onto a side, the write succeeds only
// if the object it replaces is the one it examined (S3 If-Match /
// If-None-Match:*, GCS generation preconditions, Azure If-Match /
// If-None-Match:*). A newer object written by another process in between
// is never overwritten. S3 honours these on general-purpose buckets since
// 2024; S3-compatible services may ignore them. file:// and mem:// buckets
// have no conditional write: there the version check before each copy is
// the only guard, which suffices while one process reconciles. Conditional
// adds the conditional writes to an S3, GCS or Azure bucket opened
// elsewhere with gocloud's drivers, and s3.ApplyTransport and
// gcs.ApplyTransport give clients made elsewhere the fail-fast settings.
//
// # Other providers
//
// Register adds a provider of your own to the muxes made after it: its
// scheme, its opener for a Transport, and optionally its conditional
// writes.
package providers
