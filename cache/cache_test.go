package cache_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/failoverblob/failoverblob/cache"
)

// store is what both caches offer.
type store interface {
	Get(key string) ([]byte, bool)
	Put(key string, entry []byte) error
	Delete(key string) error
	Used() int64
	Len() int
}

// stores opens one cache of each kind holding at most max bytes.
func stores(t *testing.T, max int64) map[string]store {
	d, err := cache.OpenDir(t.TempDir(), max)
	require.NoError(t, err)
	return map[string]store{"memory": cache.NewMemory(max), "dir": d}
}

// cost is what an entry counts against the bound: its key too, in memory.
func cost(kind, key string, entry []byte) int64 {
	if kind == "memory" {
		return int64(len(key) + len(entry))
	}
	return int64(len(entry))
}

func TestPutGetDelete(t *testing.T) {
	for kind, c := range stores(t, 1<<10) {
		t.Run(kind, func(t *testing.T) {
			_, ok := c.Get("k")
			assert.False(t, ok, "Get of a key never put")
			require.NoError(t, c.Put("k", []byte("one")))
			require.NoError(t, c.Put("k", []byte("two")))
			got, ok := c.Get("k")
			assert.True(t, ok)
			assert.Equal(t, "two", string(got), "the entry put last")
			assert.Equal(t, cost(kind, "k", got), c.Used(), "bytes used")
			require.NoError(t, c.Delete("k"))
			_, ok = c.Get("k")
			assert.False(t, ok, "Get after Delete")
			assert.Zero(t, c.Used(), "bytes used after Delete")
			assert.NoError(t, c.Delete("k"), "Delete of a key not there")
		})
	}
}

// The bound in bytes: the least recently used entries go first, and an
// entry larger than the whole cache is not kept (nor the one it replaces).
func TestBoundInBytes(t *testing.T) {
	entry := []byte(strings.Repeat("x", 99))
	for kind, c := range stores(t, 3*cost("memory", "k0", entry)) {
		t.Run(kind, func(t *testing.T) {
			for _, k := range []string{"k0", "k1", "k2"} {
				require.NoError(t, c.Put(k, entry))
			}
			_, ok := c.Get("k0") // k1 is now the least recently used
			require.True(t, ok)
			require.NoError(t, c.Put("k3", entry))
			for k, want := range map[string]bool{"k0": true, "k1": false, "k2": true, "k3": true} {
				_, ok := c.Get(k)
				assert.Equal(t, want, ok, "%s held", k)
			}
			assert.LessOrEqual(t, c.Used(), 3*cost("memory", "k0", entry), "bytes used")
			require.NoError(t, c.Put("k0", []byte(strings.Repeat("y", 1000))))
			_, ok = c.Get("k0")
			assert.False(t, ok, "an entry larger than the cache, and the one it replaced")
			assert.Equal(t, 2, c.Len(), "entries left")
		})
	}
}

// Entries in a directory outlive the process: a cache opened again holds
// them, the most recently written last out, within its bound; temporary
// files a dead process left are removed.
func TestDirReopened(t *testing.T) {
	dir := t.TempDir()
	c, err := cache.OpenDir(dir, 1<<10)
	require.NoError(t, err)
	for _, k := range []string{"a", "b", "c"} {
		require.NoError(t, c.Put(k, []byte(strings.Repeat(k, 100))))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "123.tmp"), []byte("half an entry"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not ours"), 0o600))

	c2, err := cache.OpenDir(dir, 1<<10)
	require.NoError(t, err)
	got, ok := c2.Get("b")
	assert.True(t, ok)
	assert.Equal(t, strings.Repeat("b", 100), string(got))
	assert.Equal(t, int64(300), c2.Used(), "bytes used")
	assert.NoFileExists(t, filepath.Join(dir, "123.tmp"))
	assert.FileExists(t, filepath.Join(dir, "notes.txt"), "files that are not entries are left alone")

	small, err := cache.OpenDir(dir, 250)
	require.NoError(t, err)
	assert.Equal(t, 2, small.Len(), "entries kept within a smaller bound")
}

// A directory that vanishes costs misses, and Put makes it again.
func TestDirVanished(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := cache.OpenDir(dir, 1<<10)
	require.NoError(t, err)
	require.NoError(t, c.Put("k", []byte("one")))
	require.NoError(t, os.RemoveAll(dir))
	_, ok := c.Get("k")
	assert.False(t, ok, "Get after the directory vanished")
	require.NoError(t, c.Put("k", []byte("two")))
	got, ok := c.Get("k")
	assert.True(t, ok)
	assert.Equal(t, "two", string(got))
	assert.Equal(t, int64(3), c.Used(), "bytes used")
}

// A directory that cannot be made is an error.
func TestOpenDirRefusesAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	_, err := cache.OpenDir(path, 1<<10)
	assert.Error(t, err)
}
