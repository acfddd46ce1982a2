//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package journal

import (
	"fmt"
	"path/filepath"
	"sync"
)

// On systems without flock the lock is kept within the process only: a
// second OpenFile of the same path in this process fails, but another
// process is not stopped. Run a single instance per journal file there.

var (
	openMu    sync.Mutex
	openPaths = map[string]bool{}
)

type fileLock struct {
	key string
}

func lockPath(path string) (*fileLock, error) {
	key, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	openMu.Lock()
	defer openMu.Unlock()
	if openPaths[key] {
		return nil, fmt.Errorf("journal: open %s: %w (in this process)", path, ErrLocked)
	}
	openPaths[key] = true
	return &fileLock{key: key}, nil
}

func (l *fileLock) unlock() error {
	openMu.Lock()
	defer openMu.Unlock()
	delete(openPaths, l.key)
	return nil
}
