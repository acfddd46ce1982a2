package failoverblob

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// A key's lock excludes the key's other lockers, never another key's, and
// is recycled once nobody holds or waits for it.
func TestKeyLocksExcludeOnlyTheSameKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ls keyLocks
		ls.init()
		a := ls.lock("a")

		// Other keys lock at once, however many.
		for i := range 1000 {
			ls.lock(fmt.Sprintf("other-%d", i)).Unlock()
		}

		// The same key waits until a is unlocked; the wait is durable, so
		// virtual time moves on meanwhile.
		got := make(chan time.Time)
		go func() {
			l := ls.lock("a")
			got <- time.Now()
			l.Unlock()
		}()
		start := time.Now()
		time.Sleep(time.Hour)
		a.Unlock()
		if at := <-got; at.Sub(start) < time.Hour {
			t.Errorf("a second locker of a key got the lock %v after the first, which held it an hour", at.Sub(start))
		}
		synctest.Wait()
		ls.mu.Lock()
		defer ls.mu.Unlock()
		if n := len(ls.keys); n != 0 {
			t.Errorf("%d locks kept after every key was unlocked; want 0", n)
		}
	})
}
