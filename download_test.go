package failoverblob_test

import (
	"errors"
	"sync"
	"testing"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

// memWriterAt is a Download destination in memory. It counts Write and
// WriteAt calls apart: blob.Bucket.Download uses the driver's DownloadAt
// only for a destination with WriteAt, and the failover bucket's DownloadAt
// hands the side a destination of its own, so WriteAt calls show that the
// parallel path was taken. A set err fails every call.
type memWriterAt struct {
	mu       sync.Mutex
	buf      []byte
	writes   int
	writeAts int
	err      error
}

func (m *memWriterAt) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	if m.err != nil {
		return 0, m.err
	}
	m.buf = append(m.buf, p...)
	return len(p), nil
}

func (m *memWriterAt) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writeAts++
	if m.err != nil {
		return 0, m.err
	}
	if end := int(off) + len(p); end > len(m.buf) {
		m.buf = append(m.buf, make([]byte, end-len(m.buf))...)
	}
	copy(m.buf[off:], p)
	return len(p), nil
}

var parallel = &blob.ReaderOptions{AllowParallelDownload: true}

// A parallel Download is served through the failover bucket's DownloadAt,
// by the side a read would go to, falling over while nothing has been
// written.
func TestParallelDownloadFallsOverBeforeTheFirstByte(t *testing.T) {
	r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
	if err := r.write("k", big); err != nil {
		t.Fatal(err)
	}
	r.faults[primary].Outage(nil)
	var w memWriterAt
	if err := r.b.Download(r.ctx, "k", &w, parallel); err != nil {
		t.Fatalf("Download with the primary down: %v", err)
	}
	if string(w.buf) != big {
		t.Errorf("Download with the primary down: got %d bytes, want the %d written", len(w.buf), len(big))
	}
	if w.writeAts == 0 || w.writes != 0 {
		t.Errorf("Download into a WriterAt: got %d WriteAt and %d Write calls, want only WriteAt (the DownloadAt path)", w.writeAts, w.writes)
	}
}

// A side that fails after bytes reached the destination is not followed
// by the other side: the caller is told to download again.
func TestParallelDownloadCutPartWayIsUnavailable(t *testing.T) {
	r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
	if err := r.write("k", big); err != nil {
		t.Fatal(err)
	}
	r.faults[primary].Set(failovertest.OpRead, failovertest.Fault{AfterBytes: 1000})
	var w memWriterAt
	err := r.b.Download(r.ctx, "k", &w, parallel)
	if !errors.Is(err, failoverblob.ErrUnavailable) {
		t.Errorf("Download cut after 1000 bytes: got %v, want ErrUnavailable", err)
	}
	if n := r.faults[secondary].Calls(failovertest.OpRead); n != 0 {
		t.Errorf("Download cut after 1000 bytes: the secondary was read %d times, want 0", n)
	}
}

// A destination that fails is the caller's error: returned as it is, not
// counted against the side, and no reason to try the other side.
func TestParallelDownloadDestinationErrorIsNotAnOutage(t *testing.T) {
	r := newRig(t, failoverblob.Options{Mode: failoverblob.Mirror})
	if err := r.write("k", big); err != nil {
		t.Fatal(err)
	}
	errFull := errors.New("disk full")
	w := memWriterAt{err: errFull}
	if err := r.b.Download(r.ctx, "k", &w, parallel); !errors.Is(err, errFull) || errors.Is(err, failoverblob.ErrUnavailable) {
		t.Errorf("Download into a failing destination: got %v, want the destination's error", err)
	}
	if st := r.f.Status(); st.Primary.Failures != 0 || st.Primary.State != circuit.StateClosed {
		t.Errorf("primary after a destination error: %d failures, breaker %s; want 0, closed", st.Primary.Failures, st.Primary.State)
	}
	if n := r.faults[secondary].Calls(failovertest.OpRead); n != 0 {
		t.Errorf("Download into a failing destination: the secondary was read %d times, want 0", n)
	}
}
