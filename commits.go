package failoverblob

import (
	"context"
	"strings"
)

// commitMark counts the changes of one key being committed; done is closed
// when the last of them is recorded in the index.
type commitMark struct {
	n    int
	done chan struct{}
}

// commitStarts counts a change of key starting to commit to the sides; the
// returned function counts it done, once the index records its outcome.
// Callers hold the key's lock.
func (x *index) commitStarts(key string) func() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.commits == nil {
		x.commits = map[string]*commitMark{}
	}
	c := x.commits[key]
	if c == nil {
		c = &commitMark{done: make(chan struct{})}
		x.commits[key] = c
	}
	c.n++
	return func() {
		x.mu.Lock()
		defer x.mu.Unlock()
		if c.n--; c.n == 0 {
			delete(x.commits, key)
			close(c.done)
		}
	}
}

// awaitCommit waits until no change of key is being committed. A side may
// show such a change before the index does: a read that went by the index
// in the meantime could answer with the state before it, after another read
// had seen the change on the side.
func (x *index) awaitCommit(ctx context.Context, key string) error {
	for {
		x.mu.RLock()
		c := x.commits[key]
		x.mu.RUnlock()
		if c == nil {
			return nil
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// committing returns the keys under prefix with a change being committed.
func (x *index) committing(prefix string) map[string]bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	keys := map[string]bool{}
	for k := range x.commits {
		if strings.HasPrefix(k, prefix) {
			keys[k] = true
		}
	}
	return keys
}
