// Package testrun reads the output of a verbose go test run, for tests that
// run part of their own suite in a child process (gocloud's conformance
// suite, in states where some of its checks fail by design) and check how
// it went.
package testrun

import (
	"bufio"
	"bytes"
	"regexp"
	"sort"
	"strings"
)

// Run is the outcome of a run with -test.v: the full names of the tests
// that failed, and each test's output.
type Run struct {
	Failed map[string]bool
	Output map[string]string
}

var (
	resultLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)
	headerLine = regexp.MustCompile(`^=== (RUN|CONT|NAME|PAUSE)\s+(\S+)$`)
)

// Parse reads the output of a run with -test.v.
func Parse(out []byte) Run {
	r := Run{Failed: map[string]bool{}, Output: map[string]string{}}
	current := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := headerLine.FindStringSubmatch(line); m != nil {
			current = m[2]
			continue
		}
		if m := resultLine.FindStringSubmatch(line); m != nil {
			if m[1] == "FAIL" {
				r.Failed[m[2]] = true
			}
			continue
		}
		if current != "" {
			r.Output[current] += line + "\n"
		}
	}
	return r
}

// FailedChecks returns the failed tests none of whose subtests failed,
// sorted.
func (r Run) FailedChecks() []string {
	var names []string
	for name := range r.Failed {
		leaf := true
		for other := range r.Failed {
			if strings.HasPrefix(other, name+"/") {
				leaf = false
				break
			}
		}
		if leaf {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// ContainsAll reports whether s contains every one of subs.
func ContainsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
