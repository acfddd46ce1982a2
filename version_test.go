package failoverblob

import (
	"sort"
	"testing"
	"testing/synctest"
	"time"
)

func TestVersionRoundTripAndOrder(t *testing.T) {
	vs := []Version{
		{},
		{Wall: 1, Logical: 0, Writer: "a"},
		{Wall: 1, Logical: 1, Writer: "a"},
		{Wall: 1, Logical: 1, Writer: "b"},
		{Wall: 2, Logical: 0, Writer: "a"},
		{Wall: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), Logical: 7, Writer: "w"},
	}
	for i, v := range vs {
		got, err := ParseVersion(v.String())
		if err != nil || got != v {
			t.Errorf("ParseVersion(%q): got %v, %v; want %v", v.String(), got, err, v)
		}
		for j, w := range vs {
			want := cmpOrder(i, j)
			if got := v.Compare(w); got != want {
				t.Errorf("%v.Compare(%v): got %d, want %d", v, w, got, want)
			}
			if got := cmpStrings(v.String(), w.String()); got != want {
				t.Errorf("encodings %q and %q sort %d, want %d", v.String(), w.String(), got, want)
			}
		}
	}
}

func cmpOrder(i, j int) int {
	switch {
	case i < j:
		return -1
	case i > j:
		return 1
	}
	return 0
}

func cmpStrings(a, b string) int {
	s := []string{a, b}
	switch {
	case a == b:
		return 0
	case sort.StringsAreSorted(s):
		return -1
	}
	return 1
}

func TestParseVersionRejectsMalformed(t *testing.T) {
	for _, s := range []string{"x", "0000000000000001.00000000", "1.00000000.a", "000000000000000g.00000000.a", "0000000000000001.00000000."} {
		if _, err := ParseVersion(s); err == nil {
			t.Errorf("ParseVersion(%q): got nil error", s)
		}
	}
}

// The clock never repeats or goes back, even when the wall clock stands
// still (virtual time does) or another writer's clock is ahead.
func TestClockIsMonotonic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newClock("w", time.Now)
		prev := c.Now()
		for range 1000 {
			v := c.Now()
			if v.Compare(prev) <= 0 {
				t.Fatalf("Now: got %v after %v", v, prev)
			}
			prev = v
		}
		ahead := Version{Wall: prev.Wall + int64(time.Hour), Logical: 3, Writer: "z"}
		c.Observe(ahead)
		if v := c.Now(); v.Compare(ahead) <= 0 {
			t.Errorf("Now after observing %v: got %v, want newer", ahead, v)
		}
	})
}
