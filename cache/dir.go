package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Dir is a cache in a directory, bounded in bytes (each entry counts its
// file's size), whose entries outlive the process: one file per entry,
// named by a hash of its key, written to a temporary file and renamed into
// place, so that a reader never sees half an entry. It is safe for
// concurrent use within a process; one process at a time may use a
// directory.
//
// A directory that vanishes or whose files are garbled costs misses: an
// entry whose file cannot be read is forgotten, and Put makes the
// directory again.
type Dir struct {
	dir string

	mu  sync.Mutex
	lru *lru[int64] // file name → size
}

const (
	entrySuffix = ".entry"
	tempSuffix  = ".tmp"
)

// OpenDir opens the cache in dir, making the directory if need be, and
// takes in the entries a previous process left there, the most recently
// written as the most recently used. It holds at most maxBytes, removing
// the oldest entries past that; an entry larger than that is not kept.
// maxBytes of zero or less keeps nothing. Temporary files left by a
// process that died while writing are removed; other files are left
// alone.
func OpenDir(dir string, maxBytes int64) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	d := &Dir{dir: dir}
	d.lru = newLRU(max(maxBytes, 0), func(n int64) int64 { return n }, func(name string, _ int64) {
		_ = os.Remove(d.path(name))
	})
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type found struct {
		name string
		size int64
		mod  time.Time
	}
	var entries []found
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if strings.HasSuffix(name, tempSuffix) {
			_ = os.Remove(d.path(name))
			continue
		}
		info, err := e.Info()
		if err != nil || !strings.HasSuffix(name, entrySuffix) {
			continue
		}
		entries = append(entries, found{name, info.Size(), info.ModTime()})
	}
	slices.SortFunc(entries, func(a, b found) int {
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	for _, e := range entries {
		if !d.lru.add(e.name, e.size) {
			_ = os.Remove(d.path(e.name))
		}
	}
	return d, nil
}

// fileName returns the name of key's file.
func fileName(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:]) + entrySuffix
}

func (d *Dir) path(name string) string { return filepath.Join(d.dir, name) }

// Get returns the entry under key, which counts as its use. An entry whose
// file cannot be read is forgotten.
func (d *Dir) Get(key string) ([]byte, bool) {
	name := fileName(key)
	d.mu.Lock()
	_, ok := d.lru.list.Get(name)
	d.mu.Unlock()
	if !ok {
		return nil, false
	}
	b, err := os.ReadFile(d.path(name))
	if err != nil {
		d.mu.Lock()
		d.lru.list.Remove(name)
		d.mu.Unlock()
		return nil, false
	}
	return b, true
}

// Put writes entry under key, replacing any entry there, unless it is
// larger than the cache (then any entry under key is removed). If the
// directory is gone, it is made again.
func (d *Dir) Put(key string, entry []byte) error {
	if int64(len(entry)) > d.lru.max {
		return d.Delete(key)
	}
	tmp, err := d.writeTemp(entry)
	if err != nil {
		return err
	}
	name := fileName(key)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lru.list.Remove(name)
	if err := os.Rename(tmp, d.path(name)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d.lru.add(name, int64(len(entry)))
	return nil
}

// writeTemp writes entry to a new temporary file in the directory, making
// the directory if it is gone, and returns the file's path.
func (d *Dir) writeTemp(entry []byte) (string, error) {
	f, err := os.CreateTemp(d.dir, "*"+tempSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(d.dir, 0o700); err == nil {
			f, err = os.CreateTemp(d.dir, "*"+tempSuffix)
		}
	}
	if err != nil {
		return "", err
	}
	_, err = f.Write(entry)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// Delete removes the entry under key, and its file, if any. A file it
// removes stays removed through a crash of the machine too: the directory
// is synced, since an entry that came back would be a copy of a key
// changed since. It fails if the file is there and cannot be removed (Get
// in this process no longer returns the entry, but a restarted one might),
// or the directory cannot be synced.
func (d *Dir) Delete(key string) error {
	name := fileName(key)
	d.mu.Lock()
	defer d.mu.Unlock()
	err := os.Remove(d.path(name))
	d.lru.list.Remove(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	return syncDir(d.dir)
}

// syncDir makes the removals of files from dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Used returns the bytes the entries hold, as counted against the bound.
func (d *Dir) Used() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lru.used
}

// Len returns the number of entries.
func (d *Dir) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lru.list.Len()
}
