//go:build unix

package killtest

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Add adds o's counts, findings and times to r.
func (r *Result) Add(o Result) {
	r.Runs += o.Runs
	r.Children += o.Children
	r.Kills += o.Kills
	r.Keys += o.Keys
	r.TempFiles += o.TempFiles
	r.Apart += o.Apart
	r.Drains += o.Drains
	r.ChildTime += o.ChildTime
	r.RecoveryTime += o.RecoveryTime
	r.Violations = append(r.Violations, o.Violations...)
	r.Flips = append(r.Flips, o.Flips...)
	r.Verify.Scanned += o.Verify.Scanned
	r.Verify.Differing += o.Verify.Differing
	r.Verify.Repaired += o.Verify.Repaired
	for _, m := range []struct {
		to   *map[string]int
		from map[string]int
	}{
		{&r.Points, o.Points}, {&r.Ops, o.Ops}, {&r.Reserved, o.Reserved},
	} {
		if *m.to == nil {
			*m.to = map[string]int{}
		}
		for k, n := range m.from {
			(*m.to)[k] += n
		}
	}
}

// Summary returns r's figures in a few lines, each starting with indent.
func (r Result) Summary(indent string) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, indent+format+"\n", args...) }
	op := func(name string) int { return r.Ops[name] }
	paths := map[string]int{}
	for p, n := range r.Points {
		path, _, _ := strings.Cut(p, ":")
		paths[path] += n
	}
	line("%d runs, %d children, %d killed (by path: %s); %d keys checked after recovery",
		r.Runs, r.Children, r.Kills, counts(paths), r.Keys)
	line("violations: %d; flips of unacknowledged operations before recovery: %d",
		len(r.Violations), len(r.Flips))
	line("puts: %d acknowledged, %d ambiguous (%d failed, %d cut by a kill)",
		op("put acked"), op("put failed")+op("put in flight"), op("put failed"), op("put in flight"))
	line("deletes: %d acknowledged, %d answered NotFound, %d ambiguous (%d failed, %d cut by a kill)",
		op("delete acked"), op("delete not found"), op("delete failed")+op("delete in flight"), op("delete failed"), op("delete in flight"))
	line("reads: %d checked, %d unavailable, %d cut by a kill; primary taken down %d times, healed %d; drains in the children: %d done, %d failed, %d cut by a kill",
		op("read acked"), op("read failed"), op("read in flight"), op("down"), op("up"), op("drain acked"), op("drain failed"), op("drain in flight"))
	line("recovery: %d drain passes; %d keys apart with no journal entry after them, Verify found %d and repaired %d; left behind: %d files in the children's TMPDIR, reserved objects %s",
		r.Drains, r.Apart, r.Verify.Differing, r.Verify.Repaired, r.TempFiles, counts(r.Reserved))
	line("time: children %v, recoveries and checks %v",
		r.ChildTime.Round(time.Millisecond), r.RecoveryTime.Round(time.Millisecond))
	return b.String()
}

// PointList returns the kill points r's children died at, most frequent
// first, one a line, each starting with indent.
func (r Result) PointList(indent string) string {
	names := make([]string, 0, len(r.Points))
	for p := range r.Points {
		names = append(names, p)
	}
	sort.Slice(names, func(i, j int) bool {
		if r.Points[names[i]] != r.Points[names[j]] {
			return r.Points[names[i]] > r.Points[names[j]]
		}
		return names[i] < names[j]
	})
	var b strings.Builder
	for _, p := range names {
		fmt.Fprintf(&b, "%s%5d  %s\n", indent, r.Points[p], p)
	}
	return b.String()
}

// counts lists m as "name n, name n", in name order.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
