package failoverblob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// rig is a failover bucket over two memblob buckets, each behind a
// fault-injecting wrapper, with the raw buckets kept for inspection.
type rig struct {
	t        *testing.T
	f        *failoverblob.Failover
	b        *blob.Bucket
	raw      [2]*blob.Bucket // primary, secondary as stored
	sides    [2]*blob.Bucket // raw behind the fault injectors, as given to New
	faults   [2]*failovertest.Injector
	journal  *journal.Memory
	ctx      context.Context
	breakers [2]*circuit.Settings
}

func newRig(t *testing.T, opts failoverblob.Options) *rig {
	t.Helper()
	return newRigJournal(t, opts, false)
}

// newSidesRig is newRig with the journal on the fault-injected sides
// (journal.NewBucket, the default), so the sides' faults reach it.
func newSidesRig(t *testing.T, opts failoverblob.Options) *rig {
	t.Helper()
	return newRigJournal(t, opts, true)
}

func newRigJournal(t *testing.T, opts failoverblob.Options, onSides bool) *rig {
	t.Helper()
	r := &rig{t: t, ctx: context.Background(), journal: journal.NewMemory()}
	for i := range r.sides {
		r.raw[i] = memblob.OpenBucket(nil)
		r.sides[i], r.faults[i] = failovertest.Wrap(r.raw[i], nil)
	}
	switch {
	case onSides:
		opts.Journal = journal.NewBucket(r.sides[primary], r.sides[secondary], nil)
	case opts.Journal == nil:
		opts.Journal = r.journal
	}
	if opts.Breaker == nil {
		// Trip on the first outage, so each case states its faults simply.
		opts.Breaker = &circuit.Settings{ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 }, Timeout: time.Minute}
	}
	f, err := failoverblob.New(r.ctx, r.sides[0], r.sides[1], &opts)
	if err != nil {
		t.Fatal(err)
	}
	r.f, r.b = f, f.Bucket()
	t.Cleanup(func() {
		// A test may have closed it already.
		if err := f.Close(); err != nil && gcerrors.Code(err) != gcerrors.FailedPrecondition {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

const (
	primary   = 0
	secondary = 1
)

// content returns what side i holds for key, or "<absent>".
func (r *rig) content(i int, key string) string {
	b, err := r.raw[i].ReadAll(r.ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return "<absent>"
	}
	if err != nil {
		r.t.Fatalf("reading %q from side %d: %v", key, i, err)
	}
	return string(b)
}

// read returns what the failover bucket serves for key, or the error code.
func (r *rig) read(key string) string { return readOf(r.f, r, key) }

// readOf returns what f serves for key, or the error code.
func readOf(f *failoverblob.Failover, r *rig, key string) string {
	b, err := f.Bucket().ReadAll(r.ctx, key)
	switch {
	case errors.Is(err, failoverblob.ErrUnavailable):
		return "<unavailable>"
	case gcerrors.Code(err) == gcerrors.NotFound:
		return "<not found>"
	case err != nil:
		return "<error " + err.Error() + ">"
	}
	return string(b)
}

func (r *rig) write(key, value string) error {
	return r.b.WriteAll(r.ctx, key, []byte(value), nil)
}

// streamed writes value in 100-byte pieces, as a streaming caller would.
func (r *rig) streamed(key, value string) error {
	w, err := r.b.NewWriter(r.ctx, key, &blob.WriterOptions{ContentType: "text/plain"})
	if err != nil {
		return err
	}
	for rest := []byte(value); len(rest) > 0; {
		n := min(100, len(rest))
		if _, err := w.Write(rest[:n]); err != nil {
			_ = w.Close()
			return err
		}
		rest = rest[n:]
	}
	return w.Close()
}

func (r *rig) drain() failoverblob.Report {
	r.t.Helper()
	rep, err := r.f.Drain(r.ctx)
	if err != nil {
		r.t.Fatalf("Drain: %v", err)
	}
	return rep
}

func (r *rig) keys() []string {
	var keys []string
	it := r.b.List(nil)
	for {
		o, err := it.Next(r.ctx)
		if err == io.EOF {
			return keys
		}
		if err != nil {
			return []string{"<list error: " + err.Error() + ">"}
		}
		keys = append(keys, o.Key)
	}
}

func errCode(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, failoverblob.ErrUnavailable):
		return "unavailable"
	default:
		return gcerrors.Code(err).String()
	}
}

var big = string(bytes.Repeat([]byte("0123456789abcdef"), 4096)) // 64 KiB

// heal heals both sides and waits past the rig's breaker timeout.
func (r *rig) heal() {
	r.faults[primary].Heal()
	r.faults[secondary].Heal()
	time.Sleep(2 * time.Minute)
}

// attrsValue returns the "v" metadata the failover bucket serves for key,
// "<not found>", or "<unavailable>" for any other error.
func (r *rig) attrsValue(key string) string {
	a, err := r.b.Attributes(r.ctx, key)
	switch {
	case gcerrors.Code(err) == gcerrors.NotFound:
		return "<not found>"
	case err != nil:
		return "<unavailable>"
	}
	return a.Metadata["v"]
}

// listedSize returns the size a listing shows for key, or -1 if it is not
// listed.
func (r *rig) listedSize(key string) int64 {
	objs, _, err := r.b.ListPage(r.ctx, blob.FirstPageToken, 100, nil)
	if err != nil {
		r.t.Fatalf("listing: %v", err)
	}
	for _, o := range objs {
		if o.Key == key {
			return o.Size
		}
	}
	return -1
}
