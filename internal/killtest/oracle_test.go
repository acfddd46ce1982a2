//go:build unix

package killtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// step is one event of a key's history: a change (put with value, or
// delete with value absent) with its outcome, or an observation.
type step struct {
	observe bool
	value   string
	outcome outcome
}

func put(v string, o outcome) step { return step{value: v, outcome: o} }
func del(o outcome) step           { return step{value: absent, outcome: o} }
func saw(v string) step            { return step{observe: true, value: v} }

func TestKeyOracle(t *testing.T) {
	tests := []struct {
		name      string
		history   []step
		violation string // a word the last observation's violation holds; "" for none
		flip      bool
	}{
		{"acknowledged put read back", []step{put("v1", acked), saw("v1")}, "", false},
		{"acknowledged put lost", []step{put("v1", acked), saw(absent)}, "lost write", false},
		{"older value after an acknowledged put", []step{put("v1", acked), put("v2", acked), saw("v1")}, "older", false},
		{"acknowledged delete undone", []step{put("v1", acked), del(acked), saw("v1")}, "delete undone", false},
		{"value never written", []step{put("v1", acked), saw("v9")}, "never written", false},
		{"cut put taken effect", []step{put("v1", acked), put("v2", inFlight), saw("v2")}, "", false},
		{"cut put not taken effect", []step{put("v1", acked), put("v2", inFlight), saw("v1")}, "", false},
		{"cut put seen, then undone", []step{put("v1", acked), put("v2", inFlight), saw("v2"), saw("v1")}, "", true},
		{"failed delete seen, then undone", []step{put("v1", acked), del(failed), saw(absent), saw("v1")}, "", true},
		{"a later acknowledged put settles a cut one", []step{put("v1", inFlight), put("v2", acked), saw("v1")}, "older", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newKeyOracle("k")
			var violation, flip string
			for i, s := range tt.history {
				if s.observe {
					violation, flip = k.observe(s.value, "step")
				} else {
					k.change(s.value, s.outcome, fmt.Sprint("op ", i+1))
				}
			}
			switch {
			case tt.violation == "" && violation != "":
				t.Errorf("violation %q, want none", violation)
			case !strings.Contains(violation, tt.violation):
				t.Errorf("violation %q, want one that says %q", violation, tt.violation)
			case (flip != "") != tt.flip:
				t.Errorf("flip %q, want one: %v", flip, tt.flip)
			}
		})
	}
}

// A line cut by the kill in the middle of its write is not read; the lines
// before it are.
func TestReadOpLogIgnoresATornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "child-0.log")
	log := "B\t1\tput\tk00\tk00.c0.60.00000001\t10\nA\t1\t-\nB\t2\tdelete\tk00\t-\t20\nA\t2"
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	cl, err := readOpLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.ops) != 2 || cl.ops[0].outcome != acked || cl.ops[1].outcome != inFlight {
		t.Errorf("read %d operations; want an acknowledged put and a delete in flight", len(cl.ops))
	}
}
