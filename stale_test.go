package failoverblob_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/cache"
)

// Stale copies (Options.Cache, ServeStale): served only while every side
// that may hold the key's newest version is down, never after the bucket
// changed the key, never across a pending change it knows of.

var (
	_ failoverblob.Cache = (*cache.Memory)(nil)
	_ failoverblob.Cache = (*cache.Dir)(nil)
)

// staleOpts are the options of a bucket serving copies up to an hour old
// from a cache in memory.
func staleOpts(mode failoverblob.Mode) failoverblob.Options {
	return failoverblob.Options{Mode: mode, Cache: cache.NewMemory(1 << 20), ServeStale: time.Hour}
}

// staleRead reads key through f and returns what it got, as readOf does,
// and the StaleRead its reader reached, if any.
func staleRead(f *failoverblob.Failover, r *rig, key string) (string, *failoverblob.StaleRead) {
	rd, err := f.Bucket().NewReader(r.ctx, key, nil)
	if err != nil {
		return "<" + errCode(err) + ">", nil
	}
	var sr *failoverblob.StaleRead
	if !rd.As(&sr) {
		sr = nil
	}
	b, err := readAllOf(rd)
	if err != nil {
		return "<error " + err.Error() + ">", sr
	}
	return string(b), sr
}

// In Redirect mode the secondary holds only what was written during an
// outage: a key written and read before it is readable during it only from
// the cache.
func TestStaleCopyServedWhileThePrimaryIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, staleOpts(failoverblob.Redirect))
		require.NoError(t, r.write("k", "v1"))
		require.Equal(t, "v1", r.read("k"), "the read that keeps a copy")
		time.Sleep(time.Minute)
		r.faults[primary].Outage(nil)
		got, sr := staleRead(r.f, r, "k")
		assert.Equal(t, "v1", got)
		require.NotNil(t, sr, "the reader says the read is stale")
		assert.Equal(t, "k", sr.Key)
		assert.Equal(t, time.Minute, sr.Age)
		assert.True(t, errors.Is(sr.Cause, failoverblob.ErrUnavailable), "cause %v wraps ErrUnavailable", sr.Cause)
		assert.Equal(t, failoverblob.StaleStatus{MaxAge: time.Hour, Stored: 1, Served: 1}, r.f.Status().Stale)
	})
}

// Which outages a copy is served in: only when every side that may hold
// the key's newest version is down. A read a side serves is not stale.
// Each case leaves "k" with "v1" as its newest value and a copy of it.
func TestStaleCopyServedOnlyWhileTheHoldersAreDown(t *testing.T) {
	settled := func(r *rig) {
		require.NoError(r.t, r.write("k", "v1"))
	}
	// writtenWhileDown writes "k" while side down is down, after an older
	// value both sides hold.
	writtenWhileDown := func(down int) func(r *rig) {
		return func(r *rig) {
			require.NoError(r.t, r.write("k", "v0"))
			r.faults[down].Outage(nil)
			require.NoError(r.t, r.write("k", "v1"))
			r.heal()
		}
	}
	const stale, fresh = true, false
	for _, tc := range []struct {
		name  string
		mode  failoverblob.Mode
		setUp func(r *rig)
		down  []int
		want  string
		stale bool
	}{
		{"redirect, none down", failoverblob.Redirect, settled, nil, "v1", fresh},
		{"redirect, primary down", failoverblob.Redirect, settled, []int{primary}, "v1", stale},
		{"redirect, secondary down", failoverblob.Redirect, settled, []int{secondary}, "v1", fresh},
		{"redirect, both down", failoverblob.Redirect, settled, []int{primary, secondary}, "v1", stale},
		{"mirror, none down", failoverblob.Mirror, settled, nil, "v1", fresh},
		{"mirror, primary down", failoverblob.Mirror, settled, []int{primary}, "v1", fresh},
		{"mirror, secondary down", failoverblob.Mirror, settled, []int{secondary}, "v1", fresh},
		{"mirror, both down", failoverblob.Mirror, settled, []int{primary, secondary}, "v1", stale},
		{"redirect, pending on the secondary, primary down", failoverblob.Redirect, writtenWhileDown(primary), []int{primary}, "v1", fresh},
		{"redirect, pending on the secondary, secondary down", failoverblob.Redirect, writtenWhileDown(primary), []int{secondary}, "v1", stale},
		{"redirect, pending on the secondary, both down", failoverblob.Redirect, writtenWhileDown(primary), []int{primary, secondary}, "v1", stale},
		{"mirror, pending on the primary, primary down", failoverblob.Mirror, writtenWhileDown(secondary), []int{primary}, "v1", stale},
		{"mirror, pending on the primary, secondary down", failoverblob.Mirror, writtenWhileDown(secondary), []int{secondary}, "v1", fresh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, staleOpts(tc.mode))
				tc.setUp(r)
				require.Equal(t, "v1", r.read("k"), "the read that keeps a copy")
				for _, i := range tc.down {
					r.faults[i].Outage(nil)
				}
				got, sr := staleRead(r.f, r, "k")
				assert.Equal(t, tc.want, got)
				assert.Equal(t, tc.stale, sr != nil, "the reader reaches a StaleRead")
				assert.Equal(t, tc.stale, r.f.Status().Stale.Served > 0, "Status counts a read served from the cache")
			})
		})
	}
}

// The cases where the cache may not answer, each with a copy of "k" made
// while it was "v1".
func TestStaleCopyNotServed(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(*failoverblob.Options)
		// then runs after the copy was made; the read follows.
		then func(r *rig)
		want string
	}{
		{"ServeStale zero", func(o *failoverblob.Options) { o.ServeStale = 0 }, func(r *rig) {
			r.faults[primary].Outage(nil)
		}, "<unavailable>"},
		{"older than ServeStale", nil, func(r *rig) {
			time.Sleep(time.Hour)
			r.faults[primary].Outage(nil)
		}, "<unavailable>"},
		{"overwritten while up", nil, func(r *rig) {
			require.NoError(r.t, r.write("k", "v2"))
			r.faults[primary].Outage(nil)
		}, "<unavailable>"},
		{"overwritten during the outage, then both down", nil, func(r *rig) {
			r.faults[primary].Outage(nil)
			require.NoError(r.t, r.write("k", "v2"))
			r.faults[secondary].Outage(nil)
		}, "<unavailable>"},
		{"deleted while up", nil, func(r *rig) {
			require.NoError(r.t, r.b.Delete(r.ctx, "k"))
			r.faults[primary].Outage(nil)
		}, "<unavailable>"},
		{"deleted during the outage", nil, func(r *rig) {
			r.faults[primary].Outage(nil)
			require.NoError(r.t, r.b.Delete(r.ctx, "k"))
			r.faults[secondary].Outage(nil)
		}, "<not found>"},
		{"deleted during the outage, reconciled, then down again", nil, func(r *rig) {
			r.faults[primary].Outage(nil)
			require.NoError(r.t, r.b.Delete(r.ctx, "k"))
			r.heal()
			r.drain()
			r.faults[primary].Outage(nil)
		}, "<unavailable>"},
		{"strict reads with the primary up", func(o *failoverblob.Options) { o.StrictReads = true }, func(r *rig) {
			r.faults[secondary].Outage(nil)
		}, "<unavailable>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := staleOpts(failoverblob.Redirect)
				if tc.opts != nil {
					tc.opts(&opts)
				}
				r := newRig(t, opts)
				require.NoError(t, r.write("k", "v1"))
				require.Equal(t, "v1", r.read("k"), "the read that keeps a copy")
				tc.then(r)
				assert.Equal(t, tc.want, r.read("k"))
				assert.Zero(t, r.f.Status().Stale.Served, "served from the cache")
			})
		})
	}
}

// A copy of a pending key is served while the side holding its newest
// version is down, if the copy is that version.
func TestStaleCopyOfAPendingKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, staleOpts(failoverblob.Redirect))
		r.faults[primary].Outage(nil)
		require.NoError(t, r.write("k", "v2"))
		require.Equal(t, "v2", r.read("k"), "the read that keeps a copy, from the secondary")
		r.heal()
		r.faults[secondary].Outage(nil)
		got, sr := staleRead(r.f, r, "k")
		assert.Equal(t, "v2", got, "the primary is up, but holds no version of the key")
		assert.NotNil(t, sr, "the reader says the read is stale")
	})
}

// Another instance's change of a key, learnt from the journal, stops a
// copy made before it from being served.
func TestStaleCopyNotServedAcrossAPendingChangeLearntFromTheJournal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, staleOpts(failoverblob.Redirect))
		require.NoError(t, r.write("k", "v1"))
		require.Equal(t, "v1", r.read("k"), "the read that keeps a copy")
		other := r.restart(failoverblob.Options{})
		r.faults[primary].Outage(nil)
		require.NoError(t, other.Bucket().WriteAll(r.ctx, "k", []byte("v2"), nil), "the other instance's write")
		require.NoError(t, r.f.Refresh(r.ctx))
		r.faults[secondary].Outage(nil)
		assert.Equal(t, "<unavailable>", r.read("k"))
		assert.Equal(t, uint64(1), r.f.Status().Stale.Refused, "copies refused")
	})
}

// A read that raced a write of its key leaves no copy: its bytes may be
// the version the write replaced.
func TestReadRacingAWriteLeavesNoCopy(t *testing.T) {
	r := newRig(t, staleOpts(failoverblob.Redirect))
	require.NoError(t, r.write("k", "v1"))
	rd, err := r.b.NewReader(r.ctx, "k", nil)
	require.NoError(t, err)
	require.NoError(t, r.write("k", "v2"))
	b := make([]byte, 2)
	_, err = rd.Read(b)
	require.NoError(t, err)
	require.NoError(t, rd.Close())
	require.Equal(t, "v1", string(b), "the read began before the write")
	r.faults[primary].Outage(nil)
	assert.Equal(t, "<unavailable>", r.read("k"))
	assert.Zero(t, r.f.Status().Stale.Stored, "copies stored")
}

// Only reads of a whole object no larger than CacheMaxObject are copied.
func TestStaleCopiesOnlyOfWholeSmallObjects(t *testing.T) {
	opts := staleOpts(failoverblob.Redirect)
	opts.CacheMaxObject = 100
	r := newRig(t, opts)
	require.NoError(t, r.write("small", "v1"))
	require.NoError(t, r.write("large", strings.Repeat("x", 101)))
	require.NoError(t, r.write("ranged", "v1"))
	require.Equal(t, "v1", r.read("small"))
	require.Len(t, r.read("large"), 101)
	rr, err := r.b.NewRangeReader(r.ctx, "ranged", 0, 1, nil)
	require.NoError(t, err)
	require.NoError(t, rr.Close())
	assert.Equal(t, uint64(1), r.f.Status().Stale.Stored, "copies stored")
	r.faults[primary].Outage(nil)
	assert.Equal(t, "v1", r.read("small"))
	assert.Equal(t, "<unavailable>", r.read("large"))
	assert.Equal(t, "<unavailable>", r.read("ranged"))
}

// A stale copy serves ranges as a side would.
func TestStaleCopyServesRanges(t *testing.T) {
	r := newRig(t, staleOpts(failoverblob.Redirect))
	require.NoError(t, r.write("k", "0123456789"))
	require.Equal(t, "0123456789", r.read("k"))
	r.faults[primary].Outage(nil)
	for _, tc := range []struct {
		offset, length int64
		want           string
	}{{0, -1, "0123456789"}, {2, 3, "234"}, {8, -1, "89"}, {8, 5, "89"}, {10, -1, ""}, {12, 1, ""}} {
		rr, err := r.b.NewRangeReader(r.ctx, "k", tc.offset, tc.length, nil)
		require.NoError(t, err, "range %d+%d", tc.offset, tc.length)
		b, err := readAllOf(rr)
		require.NoError(t, err)
		assert.Equal(t, tc.want, string(b), "range %d+%d", tc.offset, tc.length)
		assert.Equal(t, int64(10), rr.Size(), "size of range %d+%d", tc.offset, tc.length)
	}
}

// readAllOf reads rd to its end in small pieces, and closes it.
func readAllOf(rd *blob.Reader) ([]byte, error) {
	defer rd.Close()
	var out []byte
	b := make([]byte, 4)
	for {
		n, err := rd.Read(b)
		out = append(out, b[:n]...)
		switch {
		case errors.Is(err, io.EOF):
			return out, nil
		case err != nil:
			return out, err
		}
	}
}

// A cache in a directory: copies outlive the process, a garbled or
// vanished file is a miss, and a restarted bucket does not serve a copy
// across a pending change it learns from the journal.
func TestStaleCopiesInADirectory(t *testing.T) {
	dirOpts := func(t *testing.T, dir string) failoverblob.Options {
		c, err := cache.OpenDir(dir, 1<<20)
		require.NoError(t, err)
		return failoverblob.Options{Cache: c, ServeStale: time.Hour}
	}
	t.Run("restart", func(t *testing.T) {
		dir := t.TempDir()
		r := newRig(t, dirOpts(t, dir))
		require.NoError(t, r.write("k", "v1"))
		require.Equal(t, "v1", r.read("k"), "the read that keeps a copy")
		f2 := r.restart(dirOpts(t, dir))
		r.faults[primary].Outage(nil)
		got, sr := staleRead(f2, r, "k")
		assert.Equal(t, "v1", got)
		assert.NotNil(t, sr, "the reader says the read is stale")
	})
	t.Run("restart after a change by another instance", func(t *testing.T) {
		dir := t.TempDir()
		r := newRig(t, dirOpts(t, dir))
		require.NoError(t, r.write("k", "v1"))
		require.Equal(t, "v1", r.read("k"), "the read that keeps a copy")
		r.faults[primary].Outage(nil)
		other := r.restart(failoverblob.Options{})
		require.NoError(t, other.Bucket().WriteAll(r.ctx, "k", []byte("v2"), nil), "the other instance's write")
		f2 := r.restart(dirOpts(t, dir))
		r.faults[secondary].Outage(nil)
		assert.Equal(t, "<unavailable>", readOf(f2, r, "k"))
	})
	// Each garbles the file of k's copy ("v1"); other is the file of
	// another key's copy ("v9").
	for _, tc := range []struct {
		name   string
		garble func(t *testing.T, file, other string)
	}{
		{"a byte of the data changed", func(t *testing.T, file, _ string) {
			b, err := os.ReadFile(file)
			require.NoError(t, err)
			b[len(b)-6] ^= 'v' ^ 'x' // the data, "v1", becomes "x1"
			require.NoError(t, os.WriteFile(file, b, 0o600))
		}},
		{"truncated", func(t *testing.T, file, _ string) {
			require.NoError(t, os.Truncate(file, 10))
		}},
		{"empty", func(t *testing.T, file, _ string) {
			require.NoError(t, os.Truncate(file, 0))
		}},
		{"another key's copy in its place", func(t *testing.T, file, other string) {
			b, err := os.ReadFile(other)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(file, b, 0o600))
		}},
		{"a directory in its place", func(t *testing.T, file, _ string) {
			require.NoError(t, os.Remove(file))
			require.NoError(t, os.Mkdir(file, 0o700))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := newRig(t, dirOpts(t, dir))
			entries := func() []string {
				files, err := filepath.Glob(filepath.Join(dir, "*.entry"))
				require.NoError(t, err)
				return files
			}
			require.NoError(t, r.write("k", "v1"))
			require.Equal(t, "v1", r.read("k"), "the read that keeps a copy")
			require.Len(t, entries(), 1)
			file := entries()[0]
			require.NoError(t, r.write("other", "v9"))
			require.Equal(t, "v9", r.read("other"), "the read that keeps a copy")
			other := slices.DeleteFunc(entries(), func(f string) bool { return f == file })
			require.Len(t, other, 1)
			tc.garble(t, file, other[0])
			r.faults[primary].Outage(nil)
			assert.Equal(t, "<unavailable>", r.read("k"))
			assert.Equal(t, uint64(1), r.f.Status().Stale.Missed, "misses")
			assert.Equal(t, "v9", r.read("other"), "the other key's copy")
			_, err := os.Lstat(file)
			assert.True(t, errors.Is(err, fs.ErrNotExist), "the garbled copy is dropped (Lstat: %v)", err)
		})
	}
	t.Run("vanished", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "cache")
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, dirOpts(t, dir))
			require.NoError(t, r.write("k", "v1"))
			require.Equal(t, "v1", r.read("k"), "the read that keeps a copy")
			require.NoError(t, os.RemoveAll(dir))
			r.faults[primary].Outage(nil)
			assert.Equal(t, "<unavailable>", r.read("k"))
			r.heal()
			require.Equal(t, "v1", r.read("k"), "the read that keeps a copy again, in the directory made anew")
			r.faults[primary].Outage(nil)
			assert.Equal(t, "v1", r.read("k"))
		})
	})
}
