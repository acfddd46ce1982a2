package chaos

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/failoverblob/failoverblob"
)

// Bounds of a failing seed's story (see analysis.story).
const (
	storyKeys   = 2                // keys told, the first the violations name
	storyLines  = 300              // lines a key's story keeps, the last ones
	storyMargin = 30 * time.Second // told before and after the operations a violation names
)

// event is one line of a story, at a time of the run.
type event struct {
	when time.Time
	seq  int // keeps events at the same time in the order they were added
	text string
}

// story tells what happened to the keys the violations name, in the order
// of the run's time: both sides' fault windows, the operations on the key
// (those that read it as a source or in a listing too) and every change a
// side's state of it took, with the reconcile pass that made it. Time is
// counted from the run's first operation. A failing seed does not always
// fail again when replayed (goroutines interleave differently from run to
// run), so the seed's own story is what a reader has to go on.
func (a *analysis) story() string {
	if len(a.violations) == 0 {
		return ""
	}
	keyRE := regexp.MustCompile(regexp.QuoteMeta(a.r.prefix) + `[A-Za-z0-9._/-]+`)
	opRE := regexp.MustCompile(`op #(\d+)`)
	var keys []string
	named := map[string][]*op{} // by key: the operations the violations naming it name
	for _, v := range a.violations {
		ks := keyRE.FindAllString(v, -1)
		for i, k := range ks {
			ks[i] = a.fullKey(k)
		}
		for _, k := range ks {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		for _, m := range opRE.FindAllStringSubmatch(v, -1) {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			if o := a.byIndex[n]; o != nil && len(ks) > 0 {
				named[ks[0]] = append(named[ks[0]], o)
			}
		}
	}
	if len(keys) > storyKeys {
		keys = keys[:storyKeys]
	}
	t0 := a.start()
	var b strings.Builder
	for _, k := range keys {
		from, to := time.Time{}, time.Time{}
		for _, o := range named[k] {
			if from.IsZero() || o.start.Before(from) {
				from = o.start
			}
			if o.end.After(to) {
				to = o.end
			}
		}
		if !from.IsZero() {
			from, to = from.Add(-storyMargin), to.Add(storyMargin)
			if from.Before(t0) {
				from = t0
			}
		}
		evs := a.eventsOf(k, from, to)
		fmt.Fprintf(&b, "\nstory of %s", shorten(k))
		if !from.IsZero() {
			fmt.Fprintf(&b, " from %v to %v", from.Sub(t0).Round(time.Millisecond), to.Sub(t0).Round(time.Millisecond))
		}
		fmt.Fprintf(&b, " (%d events", len(evs))
		if len(evs) > storyLines {
			fmt.Fprintf(&b, ", the last %d told", storyLines)
			evs = evs[len(evs)-storyLines:]
		}
		b.WriteString("):")
		for _, e := range evs {
			fmt.Fprintf(&b, "\n  %10.3fs  %s", e.when.Sub(t0).Seconds(), e.text)
		}
	}
	return b.String()
}

// start returns when the run's first operation began, which a story
// counts time from.
func (a *analysis) start() time.Time {
	var t0 time.Time
	for _, o := range a.ops {
		if !o.start.IsZero() && (t0.IsZero() || o.start.Before(t0)) {
			t0 = o.start
		}
	}
	return t0
}

// fullKey returns the run's key that k, as a message shows it, names: a
// message shortens a long key (see op.String).
func (a *analysis) fullKey(k string) string {
	if _, ok := a.r.keyInfo[k]; ok {
		return k
	}
	for _, key := range a.r.keys {
		if strings.HasPrefix(key, k) {
			return key
		}
	}
	return k
}

// eventsOf returns the events of key between from and to (all of them if
// from is zero), in time order.
func (a *analysis) eventsOf(key string, from, to time.Time) []event {
	var evs []event
	add := func(when time.Time, format string, args ...any) {
		if when.IsZero() || !from.IsZero() && (when.Before(from) || when.After(to)) {
			return
		}
		evs = append(evs, event{when: when, seq: len(evs), text: fmt.Sprintf(format, args...)})
	}
	if a.r.sched != nil {
		for _, side := range sides {
			for _, w := range a.r.sched.faultsOf(side) {
				add(w.start, "%s: %s begins", side, w.kind)
				add(w.end, "%s: %s ends", side, w.kind)
			}
		}
	}
	for _, o := range a.ops {
		if !a.concerns(o, key) {
			continue
		}
		add(o.start, "%s", o)
		var saw []string
		for _, s := range o.seen {
			if s.key == key {
				saw = append(saw, s.String())
			}
		}
		if len(saw) > 0 {
			add(o.end, "  op #%d returns, showing %s", o.index, strings.Join(saw, ", "))
		} else {
			add(o.end, "  op #%d returns", o.index)
		}
	}
	for _, c := range a.r.log.snapshot() {
		if c.key != key {
			continue
		}
		text := fmt.Sprintf("%s: %s -> %s, by %s", c.side, valueName(c.prev), valueName(c.value), madeBy(c.op, c.reconciler, c.by))
		if c.uncertain {
			text += " (its call failed: it may land later)"
		}
		add(c.when, "%s", text)
	}
	t0 := a.start()
	for _, c := range a.r.log.entriesOf(key) {
		verb := "stored"
		if c.removed {
			verb = "removed"
		}
		add(c.when, "journal on the %s: %s %s for the %s, %s, by %s", c.side, c.entry.Op, versionName(c.entry.Version, t0), c.entry.Missing, verb, madeBy(c.op, c.reconciler, c.by))
	}
	slices.SortStableFunc(evs, func(x, y event) int {
		if c := x.when.Compare(y.when); c != 0 {
			return c
		}
		return x.seq - y.seq
	})
	return evs
}

// concerns reports whether o changed, read or listed key.
func (a *analysis) concerns(o *op, key string) bool {
	if o.key == key || o.src == key {
		return true
	}
	for _, s := range o.seen {
		if s.key == key {
			return true
		}
	}
	return false
}

// madeBy names, in a story, what made a change: a client operation, or a
// reconcile pass.
func madeBy(op int64, reconciler bool, by reconcilerOf) string {
	switch {
	case reconciler:
		return fmt.Sprintf("reconciler of writer %d instance %d", by.writer, by.instance)
	case op != 0:
		return fmt.Sprintf("op #%d", op)
	}
	return "no operation"
}

// versionName names a change's version in a story: its writer, and the
// time its writer's clock gave it, counted from t0 (a clock that runs
// fast shows ahead of the story's time).
func versionName(version string, t0 time.Time) string {
	v, err := failoverblob.ParseVersion(version)
	if err != nil || v.IsZero() {
		return fmt.Sprintf("of version %q", version)
	}
	return fmt.Sprintf("of %s's version at %.3fs", v.Writer, time.Duration(v.Wall-t0.UnixNano()).Seconds())
}

// valueName names a side's state of a key in a story.
func valueName(v valueID) string {
	switch v {
	case 0:
		return "nothing"
	case valueUnknown:
		return "unknown"
	}
	return fmt.Sprintf("#%d", v)
}
