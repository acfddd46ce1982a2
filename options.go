package failoverblob

import (
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/journal"
)

// ReservedPrefix starts every key the library keeps for itself (journal
// entries, probe canaries). Keys under it are invisible in listings and
// refused as user keys.
const ReservedPrefix = ".failover/"

// Mode says where writes go.
type Mode int

const (
	// Redirect (the default) writes to the primary, and to the secondary only
	// while the primary is down. The secondary holds temporary copies that the
	// reconciler moves to the primary and then removes.
	Redirect Mode = iota
	// Mirror writes every object to both sides in one pass over the stream.
	Mirror
)

// String returns "redirect" or "mirror".
func (m Mode) String() string {
	if m == Mirror {
		return "mirror"
	}
	return "redirect"
}

// AckPolicy says, in Mirror mode, when a write is acknowledged.
type AckPolicy int

const (
	// AckEither (the default) acknowledges a write once one side holds it and
	// a repair for the other side is recorded in the journal.
	AckEither AckPolicy = iota
	// AckBoth acknowledges a write only once both sides hold it. While one
	// side is down, writes fail with ErrUnavailable; a write that reached only
	// one side fails too, with a repair recorded so the sides converge.
	AckBoth
)

// String returns "either" or "both".
func (a AckPolicy) String() string {
	if a == AckBoth {
		return "both"
	}
	return "either"
}

// Options configures a failover bucket. The zero value is ready to use and
// every field's zero value is documented.
type Options struct {
	// Mode says where writes go. The zero value is Redirect.
	Mode Mode
	// Ack is the acknowledgement policy in Mirror mode. The zero value is
	// AckEither. Ignored in Redirect mode.
	Ack AckPolicy

	// Journal records what each side is missing. Nil means a journal kept
	// on the two sides themselves (journal.NewBucket), which a fleet of
	// instances shares and which survives the loss of any instance;
	// journal.OpenFile keeps one in a local file, for a single instance, and
	// journal.NewMemory in memory, for tests.
	Journal journal.Journal

	// Breaker configures the breaker of each side (its Name is set to
	// "primary" or "secondary"). Nil means circuit's documented defaults.
	// Where it names no Classifier, a side whose bucket offers a
	// driverx.OutageClassifier through As (a GCS bucket opened by
	// providers/gcs) is classified by it, and any other side by
	// circuit.DefaultClassifier.
	Breaker *circuit.Settings

	// CallTimeout bounds each small call to a side (attributes, a list page,
	// delete, copy). Zero means 10 seconds.
	CallTimeout time.Duration
	// FirstByteTimeout bounds the time from opening a read on a side to its
	// first byte. Zero means 10 seconds.
	FirstByteTimeout time.Duration
	// IdleTimeout bounds the time a streamed read or write to a side may go
	// without progress (including the final commit of a write). Zero means
	// 30 seconds.
	//
	// CallTimeout and IdleTimeout together bound how long after its journal
	// entry a write may still commit: a pass that finds no side holding
	// the write of another instance's entry leaves the entry for
	// 3×CallTimeout + 2×IdleTimeout + MaxClockSkew after it was stored
	// before taking the write for one that failed. Instances sharing a
	// journal should set both alike, and a Journal given here should
	// bound its calls by no more than CallTimeout.
	IdleTimeout time.Duration

	// SpoolMemory is how many bytes of each streamed write in Redirect mode
	// are kept in memory so the write can be replayed to the secondary if the
	// primary fails part-way; bytes past it go to a temporary file. Zero
	// means 4 MiB; a negative value keeps nothing in memory.
	SpoolMemory int64
	// SpoolDir is where spool files are created. Empty means os.TempDir().
	SpoolDir string

	// WriterID names this writer in the versions it stamps: 1 to 64
	// letters, digits, '.', '_' or '-' (New refuses others, which some
	// providers would rewrite in metadata). Empty means a random id chosen
	// when the bucket is opened.
	WriterID string
	// Now is the wall clock that versions and journal entries are stamped
	// from. Nil means time.Now. Tests set it to give writers skewed clocks.
	Now func() time.Time
	// MaxClockSkew bounds how far the clocks of the writers sharing the
	// buckets, and the providers' clocks, may disagree. A version stamped
	// more than MaxClockSkew ahead of the time its object was stored (the
	// side's modification time) comes from a clock that ran fast: it is
	// ordered as if written when it was stored, counted in Status, logged,
	// and not observed by this writer's clock. Versions within the bound
	// order writes as stamped, so the reconciler may order two writes by
	// different writers less than MaxClockSkew apart either way. Zero means
	// 5 seconds.
	MaxClockSkew time.Duration

	// StrictReads makes reads of keys this instance knows of no pending
	// work for compare both sides' versions, and serve the newer:
	// read-your-writes across instances, which otherwise hold once an
	// instance has learnt of the other's work (see Refresh), at the cost of
	// a look at each side per read (an Attributes call each), and of the
	// read while either side is down. A newer version on the secondary is
	// served once the journal, read again then, holds an entry for the key,
	// as every acknowledged write that missed the primary has; a copy no
	// entry accounts for (a crash's leftover) is answered as the primary
	// answers, until the reconciler or Verify settles it. An instance with StrictReads that has
	// not read the whole journal since it opened (a side's part of it could
	// not be listed) answers reads, listings, deletes and IfNotExist writes
	// with ErrUnavailable, reading the journal again at most once a second,
	// until it can: a tombstone or the record of a newer version may be on
	// the side it could not list. False means reads go as described in the
	// package doc.
	StrictReads bool

	// HedgeAfter, if positive, hedges reads: a read (opening a reader, until
	// the side hands one back) or an Attributes call that the side serving
	// it has not answered after HedgeAfter is made on the other side as
	// well, if that side holds the same version of the key, and the first
	// complete answer is taken: the first side's answer of any kind, the
	// other side's only if it succeeds. The other call is cancelled and
	// does not count against its side's breaker. The other side holds the
	// same version in Mirror mode for every key with no pending work, and,
	// in either mode, for a pending key the index knows both sides to hold
	// at its newest version; no other read is hedged, so a hedge never
	// answers with an older version than the read would have. Downloads
	// (DownloadAt) are not hedged. Zero or negative means reads are not
	// hedged.
	HedgeAfter time.Duration
	// HedgeBudget bounds the hedges in flight to this fraction of the reads
	// in flight, or to HedgeFloor when that is more, so that a slow side
	// does not double the load on the other. Zero means 0.2; negative
	// means no fraction (HedgeFloor alone).
	HedgeBudget float64
	// HedgeFloor is how many hedges may be in flight whatever the number
	// of reads. Zero means 3; negative means none (HedgeBudget alone).
	HedgeFloor int

	// Cache, if set, keeps copies of objects read whole (package cache has
	// one in memory and one in a directory), to serve while every side
	// that could answer a read is down: see ServeStale. Writes and deletes
	// through the bucket, and its repairs, remove the key's copy. Nil means
	// no copies are kept.
	Cache Cache
	// ServeStale is how old a copy in Cache may be and still be served
	// (its age counts from when it was read from a side). A copy is served
	// only by NewRangeReader (and so NewReader, ReadAll) when the read
	// fails with ErrUnavailable and every side that may hold the key's
	// newest version is down; never for a key with pending work whose
	// newest version is not the copy's; and the reader says so: its As
	// reaches a *StaleRead. Zero or negative means no copy is ever served.
	ServeStale time.Duration
	// CacheMaxObject is the size of the largest object kept in Cache; a
	// read of a larger object is not copied, so filling the cache holds
	// at most this much memory per read in flight. Zero means 1 MiB.
	CacheMaxObject int64

	// BestEffortList, in Redirect mode, makes a listing while the primary is
	// down return the secondary's objects merged with pending work instead of
	// failing with ErrUnavailable. The result may be partial.
	BestEffortList bool

	// ReconcileInterval is how often Run looks for pending work. Zero means
	// 10 seconds.
	ReconcileInterval time.Duration
	// ReconcileConcurrency is how many keys Drain repairs at once. Zero
	// means 4.
	ReconcileConcurrency int
	// Force is the routing the bucket starts with (see Failover.Force). The
	// zero value, ForceNone, routes by the breakers.
	Force ForceMode

	// ProbeInterval is how often Run probes a side whose breaker is not
	// closed: a small canary under the reserved prefix written, read back
	// and removed, around the breaker, which closes at once if the side
	// answers. Drain probes a side whose breaker is open before it repairs.
	// Zero means 5 seconds; negative means no probes.
	ProbeInterval time.Duration

	// VerifyInterval, if positive, makes Run also run Verify, repairing,
	// every VerifyInterval (the anti-entropy verifier; see Verify), with
	// the default VerifyOptions.Settle: a difference is repaired once it
	// has lasted three times CallTimeout. Zero or negative means Run does
	// not verify.
	VerifyInterval time.Duration
	// VerifyKeysPerSecond bounds the pace of the verifier Run runs. Zero
	// means no bound.
	VerifyKeysPerSecond int
	// OnRepair, if set, is called after each key the reconciler settles.
	// Calls are serialized, but repairs go on while one runs.
	OnRepair func(Repair)

	// Logger receives failovers, breaker changes and repairs. Nil discards
	// them.
	Logger *slog.Logger

	// MeterProvider receives the bucket's metrics (calls to each side,
	// failovers, breaker states, the journal's depth and oldest age,
	// reconciled objects and bytes, spooled bytes; see the README's
	// "Metrics and traces"). Nil means the global provider,
	// otel.GetMeterProvider(), which reports nothing until one is set.
	MeterProvider metric.MeterProvider
	// TracerProvider receives a span for each call to a side, a child of
	// the caller's span. Nil means the global provider,
	// otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.CallTimeout, 10*time.Second)
	def(&o.FirstByteTimeout, 10*time.Second)
	def(&o.IdleTimeout, 30*time.Second)
	def(&o.ReconcileInterval, 10*time.Second)
	def(&o.MaxClockSkew, 5*time.Second)
	if o.ProbeInterval == 0 {
		o.ProbeInterval = 5 * time.Second
	}
	switch {
	case o.SpoolMemory == 0:
		o.SpoolMemory = 4 << 20
	case o.SpoolMemory < 0:
		o.SpoolMemory = 0
	}
	if o.SpoolDir == "" {
		o.SpoolDir = os.TempDir()
	}
	switch {
	case o.HedgeBudget == 0:
		o.HedgeBudget = 0.2
	case o.HedgeBudget < 0:
		o.HedgeBudget = 0
	}
	switch {
	case o.HedgeFloor == 0:
		o.HedgeFloor = 3
	case o.HedgeFloor < 0:
		o.HedgeFloor = 0
	}
	if o.CacheMaxObject <= 0 {
		o.CacheMaxObject = 1 << 20
	}
	if o.ReconcileConcurrency <= 0 {
		o.ReconcileConcurrency = 4
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
