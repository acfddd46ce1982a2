package failoverblob_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

// Copy: a copy is read and written back through the failover bucket, as
// one version of the source, versioned as a new write.

// Found by TestChaos (seeds 56 and 60): a Copy through the bucket read the
// source's attributes, then opened it; a write to the source committed in
// between, and the copy paired the old version's metadata with the new
// version's bytes.
func TestCopyDoesNotPairOneVersionsMetadataWithAnothersBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
		put := func(v string) error {
			return r.b.WriteAll(r.ctx, "src", []byte(v), &blob.WriterOptions{Metadata: map[string]string{"v": v}})
		}
		require.NoError(t, put("old"))
		// The copy's read of the source waits 5s after its attributes.
		r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{Latency: 5 * time.Second, Times: 1})
		copied := make(chan error)
		go func() { copied <- r.b.Copy(r.ctx, "dst", "src", nil) }()
		synctest.Wait()
		require.NoError(t, put("new, and longer"))
		require.NoError(t, <-copied)
		assert.Equal(t, r.read("dst"), r.attrsValue("dst"), "the copy's bytes, and the value its metadata names")
	})
}

// Found by TestChaos (seed 81): a Copy handed the bucket's own reader of the
// source to Upload, which replays a seekable source by seeking it back.
// When the destination's primary failed part-way, the replay read the
// source again, which had changed meanwhile: the copy committed another
// version's bytes under the first version's metadata.
func TestCopyReplayCopiesTheBytesItFirstRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The default breaker, which one failed write does not trip.
		r := newRig(t, failoverblob.Options{Breaker: &circuit.Settings{}})
		put := func(v string) error {
			return r.b.WriteAll(r.ctx, "src", []byte(v), &blob.WriterOptions{Metadata: map[string]string{"v": v}})
		}
		require.NoError(t, put("old"))
		// A pending destination takes the copy through the bucket; its
		// write to the primary then hangs part-way until the idle timeout.
		r.faults[primary].Outage(nil)
		require.NoError(t, r.write("dst", "x"))
		r.heal()
		r.faults[primary].Set(failovertest.OpWrite, failovertest.Fault{AfterBytes: 1, Hang: true, Times: 1})
		copied := make(chan error)
		go func() { copied <- r.b.Copy(r.ctx, "dst", "src", nil) }()
		synctest.Wait()
		require.NoError(t, put("new, and longer"))
		require.NoError(t, <-copied)
		assert.Equal(t, r.read("dst"), r.attrsValue("dst"), "the copy's bytes, and the value its metadata names")
	})
}

// A copy is a new write: it must be ordered after writes made before it,
// by any process. Here another process wrote the destination during its
// own outage of the primary, before the copy; when it reconciles, its
// older write must not replace the copy. A server-side copy would carry
// the source's old version and lose.
func TestCopyIsVersionedAsANewWriteAcrossProcesses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, failoverblob.Options{})
		require.NoError(t, r.write("src", "copied"))
		time.Sleep(time.Second)

		// Another process, with its own view of the sides and its own
		// journal, writes dst while the primary is down for it.
		var sides [2]*blob.Bucket
		var faults [2]*failovertest.Injector
		for i := range sides {
			sides[i], faults[i] = failovertest.Wrap(r.raw[i], nil)
		}
		other, err := failoverblob.New(r.ctx, sides[0], sides[1], nil)
		require.NoError(t, err)
		defer other.Close()
		faults[primary].Outage(nil)
		require.NoError(t, other.Bucket().WriteAll(r.ctx, "dst", []byte("older, redirected"), nil))
		time.Sleep(time.Second)

		require.NoError(t, r.b.Copy(r.ctx, "dst", "src", nil))
		faults[primary].Heal()
		time.Sleep(time.Minute)
		_, err = other.Drain(r.ctx)
		require.NoError(t, err)
		assert.Equal(t, "copied", r.content(primary, "dst"), "dst on the primary after the other process reconciled")
	})
}
