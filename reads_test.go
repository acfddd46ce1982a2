package failoverblob_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/failovertest"
)

// Reads: which side serves a read, and what a read cut or refused by an
// outage reports.

// Item 13: in Mirror mode both sides may hold a pending key's newest
// version; a read is served by either.
func TestMirrorReadsThePendingKeyFromEitherSideHoldingTheNewestVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		r.faults[primary].Outage(nil)
		require.NoError(t, r.write("k", "v1"))
		r.heal()
		require.NoError(t, r.write("k", "v2"))
		require.NotZero(t, r.f.Status().Pending, "the test needs the key to be pending")
		r.faults[primary].Outage(nil)
		assert.Equal(t, "v2", r.read("k"), "read with the primary down")
		a, err := r.b.Attributes(r.ctx, "k")
		require.NoError(t, err, "Attributes with the primary down")
		assert.Equal(t, int64(len("v2")), a.Size, "Attributes with the primary down: v2's size")
	})
}

// A read that fails part-way reports the failure; it never passes off a
// truncated object as whole.
func TestReadFailingMidStream(t *testing.T) {
	r := newRig(t, failoverblob.Options{})
	require.NoError(t, r.write("k", big))
	r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{AfterBytes: 1000})
	got, err := r.b.ReadAll(r.ctx, "k")
	assert.Error(t, err, "read failing after 1000 bytes")
	assert.Less(t, len(got), len(big), "read failing after 1000 bytes")
}

// A hung primary costs a read its first-byte timeout, then the read falls
// back to the secondary.
func TestReadFromHungPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{FirstByteTimeout: 3 * time.Second, CallTimeout: 3 * time.Second})
		r.faults[primary].Outage(nil)
		require.NoError(t, r.write("redirected", "v"))
		r.faults[primary].Heal()
		time.Sleep(2 * time.Minute)
		require.NoError(t, r.write("on-primary", "p"))
		r.faults[primary].Hang()
		start := time.Now()
		got := r.read("on-primary")
		assert.Equal(t, "<unavailable>", got, "read of a key only the hung primary has")
		assert.Equal(t, 3*time.Second, time.Since(start), "virtual time of the read: the first-byte timeout")
		got = r.read("redirected")
		assert.True(t, strings.HasPrefix(got, "v"), "read of a key pending on the secondary: got %q, want v", got)
	})
}

// A read that has begun must not end in NotFound: the object existed when
// it was opened. A client that reopens a cut stream can find the object
// gone (the reconciler moved it, or it was deleted); the caller is told to
// read again instead.
func TestReadThatBeganIsNotReportedNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		require.NoError(t, r.write("k", strings.Repeat("x", 4096)))
		_, notFound := r.raw[primary].ReadAll(r.ctx, "missing")
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{Err: notFound, AfterBytes: 1000})
		_, err := r.b.ReadAll(r.ctx, "k")
		assert.ErrorIs(t, err, failoverblob.ErrUnavailable, "read cut by a not-found part-way")
		assert.NotEqual(t, gcerrors.NotFound, gcerrors.Code(err), "read cut by a not-found part-way")
	})
}

// A read cut part-way by an outage of its side is reported as
// ErrUnavailable, as every other call the failover bucket could not serve
// is, so callers can tell "read again" from an answer.
func TestReadCutByAnOutageIsUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		require.NoError(t, r.write("k", strings.Repeat("x", 4096)))
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{AfterBytes: 1000})
		_, err := r.b.ReadAll(r.ctx, "k")
		assert.ErrorIs(t, err, failoverblob.ErrUnavailable, "read cut by an outage part-way")
	})
}

// An unavailable error's code is Unknown, whatever caused it: a watchdog's
// cancellation must not read as the caller's own.
func TestUnavailableIsNotReportedAsCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{FirstByteTimeout: 3 * time.Second, CallTimeout: 3 * time.Second})
		require.NoError(t, r.write("k", "v"))
		r.faults[primary].Hang()
		_, err := r.b.ReadAll(r.ctx, "k")
		assert.ErrorIs(t, err, failoverblob.ErrUnavailable, "read from a hung primary")
		assert.Equal(t, gcerrors.Unknown, gcerrors.Code(err), "read from a hung primary")

	})
}
