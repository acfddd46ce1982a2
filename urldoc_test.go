package failoverblob

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var updateDocs = flag.Bool("update-docs", false, "TestURLParameterDocs: rewrite URLOpener's list of parameters from urlParams")

// urlParamDocs renders urlParams as the list in URLOpener's doc comment.
func urlParamDocs() []string {
	var lines []string
	for _, p := range urlParams {
		takes := p.value.takes
		if p.required {
			takes += "; required"
		}
		lines = append(lines, wrapDocItem(fmt.Sprintf("%s (%s): %s.", p.name, takes, p.sets))...)
	}
	return lines
}

// wrapDocItem wraps a list item of a doc comment at 77 columns.
func wrapDocItem(s string) []string {
	const width = 77
	var lines []string
	line := "//   -"
	for _, w := range strings.Fields(s) {
		if len(line)+1+len(w) > width && line != "//   -" && line != "//    " {
			lines = append(lines, line)
			line = "//    "
		}
		line += " " + w
	}
	return append(lines, line)
}

// TestURLParameterDocs checks that URLOpener's doc comment lists the URL
// parameters as urlParams parses them: the list is generated from the
// table, so the two cannot drift. go test -run TestURLParameterDocs
// -update-docs rewrites it.
func TestURLParameterDocs(t *testing.T) {
	src, err := os.ReadFile("url.go")
	require.NoError(t, err)
	lines := strings.Split(string(src), "\n")
	start, end := -1, -1
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "// The parameters, "):
			start = i + 3 // the heading's two lines, then "//"
		case start >= 0 && i >= start && end < 0 && !strings.HasPrefix(l, "//   ") && !strings.HasPrefix(l, "//     "):
			end = i
		}
	}
	require.True(t, start >= 0 && end > start, "url.go: URLOpener's doc has no list after \"// The parameters, \"")
	want := urlParamDocs()
	got := lines[start:end]
	if *updateDocs {
		out := append(append(append([]string{}, lines[:start]...), want...), lines[end:]...)
		require.NoError(t, os.WriteFile("url.go", []byte(strings.Join(out, "\n")), 0o644))
		return
	}
	require.Equal(t, strings.Join(want, "\n"), strings.Join(got, "\n"),
		"URLOpener's list of parameters differs from urlParams; run go test -run TestURLParameterDocs -update-docs")
}
