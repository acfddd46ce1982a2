package providers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/internal/emulators"
	"github.com/failoverblob/failoverblob/providers"
)

const testBucket = "failover-test"

// Short deadlines: a hung side is given up on after attemptTimeout, and
// each call is tried once, so the wire tests cost well under a second of
// real time per fault.
const (
	attemptTimeout = "300ms"
	transportQuery = "&attempt_timeout=" + attemptTimeout + "&max_attempts=1"
)

// emulator is one side's emulator and the URL that opens it.
type emulator struct {
	name string
	srv  *emulators.Server
	url  string
}

func startS3(t *testing.T) emulator {
	srv := emulators.StartS3(t, testBucket)
	return emulator{"s3", srv, s3URL(srv) + transportQuery}
}

func startGCS(t *testing.T) emulator {
	srv := emulators.StartGCS(t, testBucket)
	return emulator{"gcs", srv, gcsURL(srv) + transportQuery}
}

// open opens e's bucket by its URL, closed when the test ends: a second
// handle on what a failover bucket over e stores there.
func (e emulator) open(t *testing.T) *blob.Bucket {
	t.Helper()
	b, err := providers.OpenBucket(context.Background(), e.url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func s3URL(srv *emulators.Server) string {
	return "s3://" + testBucket + "?endpoint=" + url.QueryEscape(srv.URL()) + "&use_path_style=true&region=us-east-1&anonymous=true"
}

func gcsURL(srv *emulators.Server) string {
	return "gs://" + testBucket + "?endpoint=" + url.QueryEscape(srv.URL())
}

// failoverURL is a failover URL over primary and secondary with params.
func failoverURL(primary, secondary string, params ...string) string {
	u := "failover://?primary=" + url.QueryEscape(primary) + "&secondary=" + url.QueryEscape(secondary)
	for _, p := range params {
		u += "&" + p
	}
	return u
}

// objects lists b's keys and contents.
func objects(t *testing.T, ctx context.Context, b *blob.Bucket) map[string]string {
	t.Helper()
	m := map[string]string{}
	it := b.List(nil)
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if strings.HasPrefix(o.Key, failoverblob.ReservedPrefix) {
			continue // the library's own: journal entries, leases
		}
		data, err := b.ReadAll(ctx, o.Key)
		require.NoError(t, err)
		m[o.Key] = string(data)
	}
	return m
}

func keys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// drain reconciles until nothing is pending. The primary's breaker may
// still be open for a moment after the fault is healed, so a pass that
// finds it unavailable is repeated.
func drain(t *testing.T, ctx context.Context, f *failoverblob.Failover) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := f.Drain(ctx)
		if err == nil && r.Remaining == 0 && f.Status().Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reconcile did not finish: report %+v, err %v, status %+v", r, err, f.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOutageOverTheWire takes the primary down over real HTTP, in each way
// a cloud fails, with S3 as primary and GCS as secondary and the reverse.
// For each: writes succeed via the other side, reads return the newest
// data, deletes hold, and once the side is back reconcile leaves both
// sides as the mode promises.
func TestOutageOverTheWire(t *testing.T) {
	faults := []emulators.Fault{emulators.Unavailable, emulators.Hang, emulators.Reset, emulators.Closed}
	configs := []struct {
		name               string
		primary, secondary func(*testing.T) emulator
	}{
		{"s3 primary, gcs secondary", startS3, startGCS},
		{"gcs primary, s3 secondary", startGCS, startS3},
	}
	for _, cfg := range configs {
		for _, mode := range []string{"redirect", "mirror"} {
			for _, fault := range faults {
				t.Run(fmt.Sprintf("%s/%s/%s", cfg.name, mode, fault), func(t *testing.T) {
					outageOverTheWire(t, cfg.primary(t), cfg.secondary(t), mode, fault)
				})
			}
		}
	}
}

func outageOverTheWire(t *testing.T, primary, secondary emulator, mode string, fault emulators.Fault) {
	ctx := context.Background()
	b, err := providers.OpenBucket(ctx, failoverURL(primary.url, secondary.url,
		"mode="+mode, "reconcile=false", "breaker_failures=1", "breaker_timeout=50ms",
		"call_timeout=2s", "first_byte_timeout=2s", "idle_timeout=2s"))
	require.NoError(t, err)
	defer b.Close()
	var f *failoverblob.Failover
	require.True(t, b.As(&f))

	// Before the outage.
	require.NoError(t, b.WriteAll(ctx, "kept", []byte("kept v1"), nil))
	require.NoError(t, b.WriteAll(ctx, "overwritten", []byte("overwritten v1"), nil))
	require.NoError(t, b.WriteAll(ctx, "deleted", []byte("deleted v1"), nil))

	primary.srv.Set(fault)
	// Writes, an overwrite and a delete succeed through the secondary.
	require.NoError(t, b.WriteAll(ctx, "overwritten", []byte("overwritten v2"), nil), "overwrite during the outage")
	require.NoError(t, b.WriteAll(ctx, "new", []byte("new v1"), nil), "new object during the outage")
	require.NoError(t, b.Delete(ctx, "deleted"), "delete during the outage")
	// Tripped: open, or half-open if the 50 ms it stays open have passed
	// on a loaded machine.
	require.NotEqual(t, circuit.StateClosed, f.Status().Primary.State, "the primary's breaker tripped")

	// Reads return the newest data while the primary is still down.
	for k, want := range map[string]string{"overwritten": "overwritten v2", "new": "new v1"} {
		got, err := b.ReadAll(ctx, k)
		require.NoError(t, err, "read %s during the outage", k)
		require.Equal(t, want, string(got), "read %s during the outage", k)
	}
	_, err = b.ReadAll(ctx, "deleted")
	require.Equal(t, gcerrors.NotFound, gcerrors.Code(err), "a deleted object stays deleted: %v", err)
	if mode == "mirror" {
		// The secondary has every object in Mirror mode.
		got, err := b.ReadAll(ctx, "kept")
		require.NoError(t, err)
		require.Equal(t, "kept v1", string(got))
	}

	primary.srv.Set(emulators.Healthy)
	drain(t, ctx, f)

	want := map[string]string{"kept": "kept v1", "overwritten": "overwritten v2", "new": "new v1"}
	require.Equal(t, want, objects(t, ctx, primary.open(t)), "the primary after reconcile")
	if mode == "mirror" {
		require.Equal(t, want, objects(t, ctx, secondary.open(t)), "the secondary after reconcile")
	} else {
		require.Empty(t, keys(objects(t, ctx, secondary.open(t))), "no temporary copies left on the secondary")
	}
	require.Equal(t, want, objects(t, ctx, b), "the failover bucket after reconcile")
}
