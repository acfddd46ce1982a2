// Package chaos rehearses outages against a failover bucket and checks that
// it keeps its promise: nothing acknowledged is lost, a deleted object never
// comes back, the reconciler never replaces a newer object with an older
// one, and both sides converge once the faults heal.
//
// Check runs concurrent clients against a Target (the failover bucket, its
// reconcile pass and what its mode promises) while a seeded schedule of
// faults takes its sides down and heals them, and then checks the history
// against an oracle and a linearizability checker
// (github.com/anishathalye/porcupine). By default the sides are in-memory
// buckets behind failovertest's fault injector and the run is in virtual
// time (testing/synctest); with Options.Sides it runs over the wire, in real
// time, on buckets the caller provides and network faults it switches
// through WireFaults.
//
// The package is heavy by design, and separate from failovertest, whose
// fault-injecting bucket needs nothing beyond gocloud.
package chaos
