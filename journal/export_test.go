package journal

import "testing"

// SetCompactMin sets, for the rest of the test, how many append operations a
// journal file opened from now on must hold before it is compacted.
func SetCompactMin(t testing.TB, n int) {
	old := defaultCompactMin
	defaultCompactMin = n
	t.Cleanup(func() { defaultCompactMin = old })
}

// Syncs returns how many frames j has written and fsynced since it was
// opened.
func Syncs(j *File) int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.syncs
}

// InjectFaults makes every later write, or fsync, of a frame by j fail with
// the error the function returns (after doing it), when that error is not
// nil. Call it while j is idle.
func InjectFaults(j *File, write, sync func() error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.faultWrite, j.faultSync = write, sync
}
