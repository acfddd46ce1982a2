package failoverblob_test

import (
	"context"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

// ctxBucket is memblob with streams that fail once their context is done,
// as the S3 and GCS drivers' streams do (memblob's ignore it).
type ctxBucket struct{ driver.Bucket }

type ctxReader struct {
	driver.Reader
	ctx context.Context
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.Reader.Read(p)
}

type ctxWriter struct {
	driver.Writer
	ctx context.Context
}

func (w ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.Writer.Write(p)
}

func (b ctxBucket) NewRangeReader(ctx context.Context, key string, off, n int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	r, err := b.Bucket.NewRangeReader(ctx, key, off, n, opts)
	if err != nil {
		return nil, err
	}
	return ctxReader{r, ctx}, nil
}

func (b ctxBucket) NewTypedWriter(ctx context.Context, key, ct string, opts *driver.WriterOptions) (driver.Writer, error) {
	w, err := b.Bucket.NewTypedWriter(ctx, key, ct, opts)
	if err != nil {
		return nil, err
	}
	return ctxWriter{w, ctx}, nil
}

func ctxAware() *blob.Bucket {
	d, _ := failovertest.NewDriver(memblob.OpenBucket(nil), nil)
	return blob.NewBucket(ctxBucket{d})
}

// A caller that pauses between reads or writes for longer than the timeouts
// is not a slow side: the watchdog runs only while the library waits on the
// side.
func TestSlowCallerIsNotAnOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		f, err := failoverblob.New(ctx, ctxAware(), ctxAware(), &failoverblob.Options{
			FirstByteTimeout: time.Second, IdleTimeout: time.Second,
			Breaker: &circuit.Settings{ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 }},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := f.Bucket()

		w, err := b.NewWriter(ctx, "k", &blob.WriterOptions{ContentType: "text/plain"})
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range []string{"slow ", "producer"} {
			if _, err := w.Write([]byte(part)); err != nil {
				t.Fatalf("Write after a pause: %v", err)
			}
			time.Sleep(5 * time.Second)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close after a pause: %v", err)
		}

		r, err := b.NewReader(ctx, "k", nil)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		got, err := io.ReadAll(r)
		_ = r.Close()
		if err != nil || string(got) != "slow producer" {
			t.Errorf("read after a pause: got %q, %v; want %q", got, err, "slow producer")
		}
		st := f.Status()
		if st.Primary.State != circuit.StateClosed || st.Pending != 0 {
			t.Errorf("after a slow caller: primary %s, %d pending; want closed, 0", st.Primary.State, st.Pending)
		}
	})
}
