package failoverblob

import (
	"context"
	"hash/maphash"
)

// keyLocks serializes, within one process, the commits of a key's writes and
// deletes with its repair. Keys share a fixed set of locks by hash, so
// locking allocates nothing; two keys that share one only wait for each
// other's commit. The hash is not the one that places keys in lease shards
// (shardOf): the keys of one shard, which a pass repairs side by side, then
// spread over all the locks rather than a few. The locks are channels rather than mutexes because a
// commit holds its key's lock while it waits on a side: a goroutine waiting
// for a channel is durably blocked for testing/synctest, so tests in virtual
// time see the wait and move the clock on to the side's timeout, where a
// mutex wait would freeze the bubble.
type keyLocks struct {
	seed maphash.Seed
	l    [256]keyLock
}

// keyLock is one lock: a channel holding a token while locked.
type keyLock chan struct{}

// Unlock unlocks the lock.
func (k keyLock) Unlock() { <-k }

func (l *keyLocks) init() {
	l.seed = maphash.MakeSeed()
	for i := range l.l {
		l.l[i] = make(keyLock, 1)
	}
}

// lock locks key and returns the lock to unlock.
func (l *keyLocks) lock(key string) keyLock {
	k := l.l[maphash.String(l.seed, key)%uint64(len(l.l))]
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
