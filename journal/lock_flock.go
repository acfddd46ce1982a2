//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package journal

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// fileLock is an exclusive flock on path+".lock". A lock file, rather than
// the journal file itself, is locked because compaction replaces the journal
// file by rename: a lock on the old file would not stop another OpenFile of
// the new one. flock locks belong to an open file description, so a second
// OpenFile in the same process conflicts too, and the kernel releases the
// lock when the process dies, so a crash leaves no stale lock.
type fileLock struct {
	f *os.File
}

func lockPath(path string) (*fileLock, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("journal: open %s: creating its lock file: %w", path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("journal: open %s: %w (%s is locked)", path, ErrLocked, name)
		}
		return nil, fmt.Errorf("journal: open %s: locking %s: %w", path, name, err)
	}
	return &fileLock{f: f}, nil
}

// unlock releases the lock by closing the lock file; the file stays, since
// removing it could let two processes lock two different files.
func (l *fileLock) unlock() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("journal: releasing lock %s: %w", l.f.Name(), err)
	}
	return nil
}
