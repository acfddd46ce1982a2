package failoverblob

import (
	"context"
	"sync"
)

// keyLocks serializes, within one process, the commits of a key's writes and
// deletes with its repair. Each key has a lock of its own while it is held
// or waited for, so two keys never wait for each other (a pass repairs many
// keys side by side: with locks shared by hash, a key whose lock another
// key's repair held waited for that whole repair); the locks are recycled,
// so locking a key allocates nothing in the steady state. The locks are
// channels rather than mutexes because a commit holds its key's lock while
// it waits on a side: a goroutine waiting for a channel is durably blocked
// for testing/synctest, so tests in virtual time see the wait and move the
// clock on to the side's timeout, where a mutex wait would freeze the
// bubble. mu is only held for a map operation, never while a lock is
// waited for.
type keyLocks struct {
	mu   sync.Mutex
	keys map[string]*keyLock
	pool sync.Pool // of *keyLock, unlocked and unused
}

// keyLock is one key's lock: a channel holding a token while locked.
type keyLock struct {
	token chan struct{}
	users int // holders and waiters; guarded by keyLocks.mu
}

// heldLock is a key's lock as locked, to unlock.
type heldLock struct {
	ls  *keyLocks
	key string
	l   *keyLock
}

func (ls *keyLocks) init() {
	ls.keys = map[string]*keyLock{}
	ls.pool.New = func() any { return &keyLock{token: make(chan struct{}, 1)} }
}

// lock locks key and returns the lock to unlock.
func (ls *keyLocks) lock(key string) heldLock {
	ls.mu.Lock()
	l := ls.keys[key]
	if l == nil {
		l = ls.pool.Get().(*keyLock)
		ls.keys[key] = l
	}
	l.users++
	ls.mu.Unlock()
	l.token <- struct{}{}
	return heldLock{ls: ls, key: key, l: l}
}

// Unlock unlocks the lock. The key's lock is recycled once nobody holds or
// waits for it: a caller of lock after the token is given back counts as a
// user before it waits, so it keeps the lock from being recycled under it.
func (h heldLock) Unlock() {
	<-h.l.token
	h.ls.mu.Lock()
	defer h.ls.mu.Unlock()
	if h.l.users--; h.l.users == 0 {
		delete(h.ls.keys, h.key)
		h.ls.pool.Put(h.l)
	}
}

// lockHeld is the context key that tells the calls below that their caller
// holds the lock of the key (the value) already.
type lockHeld struct{}

// holding returns ctx marked as held by a caller that holds key's lock.
func holding(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, lockHeld{}, key)
}
