package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests call run in this process, for what a child process cannot
// show: the bar drawn on a terminal, and a scan in several chunks.

func runHere(t *testing.T, tty bool, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	code = run(context.Background(), args, &env{stdout: &out, stderr: &errs, tty: tty})
	return code, out.String(), errs.String()
}

func TestDrainDrawsABarOnATerminal(t *testing.T) {
	pdir, sdir := t.TempDir(), t.TempDir()
	want := leaveOutageWork(t, pdir, sdir)
	code, stdout, stderr := runHere(t, true, "drain", failoverURL(fileURL(pdir), fileURL(sdir)))
	require.Equal(t, exitOK, code, stderr)
	// The bar is redrawn in place with carriage returns; its last
	// drawing is full, with the bytes in its description.
	require.Contains(t, stdout, "\r")
	require.Regexp(t, `drain 3\.0 KiB/3\.0 KiB \([0-9.]+ [KM]?i?B/s\)\s+100% \|[^|]+\| \(5/5, \d+ keys/s\)`, stdout)
	require.NotRegexp(t, regexp.MustCompile(`(?m)^drain: `), stdout, "no plain lines on a terminal")
	require.Contains(t, stdout, "\nsettled 5 keys in ")
	require.Equal(t, want, contents(t, openDir(t, pdir)))
}

func TestVerifyResumesChunkByChunk(t *testing.T) {
	defer func(n int) { verifyChunk = n }(verifyChunk)
	verifyChunk = 2
	pdir, sdir := t.TempDir(), t.TempDir()
	p, s := openDir(t, pdir), openDir(t, sdir)
	ctx := context.Background()
	for _, k := range []string{"k1", "k2", "k3", "k4", "k5"} {
		require.NoError(t, p.WriteAll(ctx, k, []byte(k), nil))
	}
	require.NoError(t, s.WriteAll(ctx, "k6", []byte("stray"), nil))
	u := failoverURL(fileURL(pdir), fileURL(sdir))

	code, stdout, stderr := runHere(t, false, "verify", "-repair", "-settle", "-1s", u)
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "scanned 6 keys in ")
	require.Contains(t, stdout, ": 1 differs (1 repaired, 5 B copied)")

	// A bound that ends inside a chunk.
	code, stdout, stderr = runHere(t, false, "verify", "-max-keys", "3", u)
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "scanned 3 keys in ")
	require.Contains(t, stdout, "stopped after key k3: resume with -after k3")
}

func TestProgressLine(t *testing.T) {
	for _, c := range []struct {
		name string
		p    *progress
		want string
	}{
		{"drain under way", &progress{verb: "drain", showBytes: true, total: 100, totalBytes: 10 << 20, keys: 40, bytes: 4 << 20},
			"drain: 40/100 keys, 4.0 MiB/10.0 MiB, 60 left, 20 keys/s, 2.0 MiB/s, ETA 3s"},
		{"drain done", &progress{verb: "drain", showBytes: true, total: 3, totalBytes: 11, keys: 3, bytes: 11},
			"drain: 3/3 keys, 11 B/11 B, 0 left, 1.5 keys/s, 5 B/s"},
		{"verify, unknown total", &progress{verb: "verify", total: -1, totalBytes: -1, keys: 9000, note: "2 differing, 0 repaired"},
			"verify: 9000 keys, 2 differing, 0 repaired, 4500 keys/s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, c.p.line(2*time.Second))
		})
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		require.Equal(t, want, formatBytes(n), "formatBytes(%d)", n)
	}
}
