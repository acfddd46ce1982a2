//go:build unix

package killtest

import (
	"fmt"
	"slices"
	"strings"
)

// absent stands for "no object" among a key's states.
const absent = ""

// keyOracle follows one key through the operations of a run, all made one
// after another (a key is only ever changed by one worker of one child at
// a time), and knows which states the key may be in.
//
// An acknowledged put or delete leaves exactly its own state. A put or
// delete that failed, or was in flight when its child was killed, may or
// may not have taken effect: it adds its state to the allowed ones. A state
// observed (by a read, a delete that found nothing, or the checks after
// recovery) that is not allowed is a violation: a lost write, an undone
// delete, a value never written.
//
// The oracle also keeps the narrower set of states a linearizable history
// allows: once a state is observed, the key does not go back to another
// one unless a later operation changes it. Leaving that set is a flip: an
// unacknowledged change that was seen to take effect and then undone, or
// seen not to and then applied. The contract allows it before recovery
// has settled the key (the outcome of an operation cut by a kill is
// decided by the reconciler or the verifier); it is counted, not failed.
type keyOracle struct {
	key     string
	allowed []string          // states the acknowledged history allows now
	linear  []string          // allowed, narrowed by what was observed
	written map[string]string // value ids put, to the operation that put it
	acked   map[string]bool   // value ids whose put was acknowledged
	last    string            // the last acknowledged change, for messages
	deleted bool              // the last acknowledged change is a delete
}

func newKeyOracle(key string) *keyOracle {
	return &keyOracle{key: key, allowed: []string{absent}, linear: []string{absent}, written: map[string]string{}, acked: map[string]bool{}, last: "none (the key starts absent)"}
}

func show(state string) string {
	if state == absent {
		return "absent"
	}
	return state
}

// change takes in a put (value set) or a delete (value absent) with its
// outcome; where says which operation it was, for messages.
func (k *keyOracle) change(value string, o outcome, where string) {
	if value != absent {
		k.written[value] = where
	}
	if o == acked {
		if value != absent {
			k.acked[value] = true
		}
		k.allowed, k.linear = []string{value}, []string{value}
		k.last = fmt.Sprintf("%s (%s)", where, show(value))
		k.deleted = value == absent
		return
	}
	if !slices.Contains(k.allowed, value) {
		k.allowed = append(k.allowed, value)
	}
	if !slices.Contains(k.linear, value) {
		k.linear = append(k.linear, value)
	}
}

// observe takes in a state seen at where. It returns what is wrong with
// it: a violation, or else a flip, or neither ("").
func (k *keyOracle) observe(state, where string) (violation, flip string) {
	defer func() { k.linear = []string{state} }()
	switch {
	case slices.Contains(k.linear, state):
		return "", ""
	case slices.Contains(k.allowed, state):
		return "", fmt.Sprintf("%s at %s: %s, after %s was observed; last acknowledged change: %s",
			k.key, where, show(state), showAll(k.linear), k.last)
	}
	var what string
	switch {
	case strings.HasPrefix(state, "corrupt:"):
		what = "bytes that are no value written (" + state + ")"
	case state == absent:
		what = "a lost write: the key is absent"
	case k.written[state] == "":
		what = "a value never written to this key: " + state
	case k.deleted:
		what = "a delete undone: the key shows " + state + ", written by " + k.written[state]
	default:
		what = "a lost write: the key shows the older " + state + ", written by " + k.written[state]
	}
	return fmt.Sprintf("%s at %s: %s; allowed: %s; last acknowledged change: %s",
		k.key, where, what, showAll(k.allowed), k.last), ""
}

func showAll(states []string) string {
	s := make([]string, len(states))
	for i, st := range states {
		s[i] = show(st)
	}
	return strings.Join(s, ", ")
}

// checker holds a run's oracles, one per key, and takes what they find
// into the Result.
type checker struct {
	oracles map[string]*keyOracle
	res     *Result
}

func newChecker(res *Result) *checker {
	return &checker{oracles: map[string]*keyOracle{}, res: res}
}

func (c *checker) oracle(key string) *keyOracle {
	if c.oracles[key] == nil {
		c.oracles[key] = newKeyOracle(key)
	}
	return c.oracles[key]
}

// change takes in a put or a delete.
func (c *checker) change(key, value string, o outcome, where string) {
	c.oracle(key).change(value, o, where)
}

// observe checks a state seen of key.
func (c *checker) observe(key, state, where string) {
	v, flip := c.oracle(key).observe(state, where)
	c.res.violation(v)
	if flip != "" {
		c.res.Flips = append(c.res.Flips, flip)
	}
}
