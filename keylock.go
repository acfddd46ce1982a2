package failoverblob

import "context"

// keyLocks serializes, within one process, the commits of a key's writes and
// deletes with its repair. Keys share a fixed set of locks by hash, so
// locking allocates nothing; two keys that share one only wait for each
// other's commit. The locks are channels rather than mutexes because a
// commit holds its key's lock while it waits on a side: a goroutine waiting
// for a channel is durably blocked for testing/synctest, so tests in virtual
// time see the wait and move the clock on to the side's timeout, where a
// mutex wait would freeze the bubble.
type keyLocks [256]keyLock

// keyLock is one lock: a channel holding a token while locked.
type keyLock chan struct{}

// Unlock unlocks the lock.
func (k keyLock) Unlock() { <-k }

func (l *keyLocks) init() {
	for i := range l {
		l[i] = make(keyLock, 1)
	}
}

// lock locks key and returns the lock to unlock.
func (l *keyLocks) lock(key string) keyLock {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	k := l[h%uint32(len(l))]
	k <- struct{}{}
	return k
}

// lockHeld is the context key that tells the calls below that their caller
// holds the lock of the key (the value) already.
type lockHeld struct{}

// holding returns ctx marked as held by a caller that holds key's lock.
func holding(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, lockHeld{}, key)
}
