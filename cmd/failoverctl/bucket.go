package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/failoverblob/failoverblob"
)

// withBucket opens the failover bucket at rawURL with opts (see open), runs
// fn on it and closes it, so that nothing the bucket started outlives the
// command.
func withBucket(ctx context.Context, rawURL string, opts failoverblob.Options, fn func(f *opened) error) (err error) {
	f, err := open(ctx, rawURL, opts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing the bucket: %w", cerr)
		}
	}()
	return fn(f)
}

// maxErrorLines bounds the error lines a command prints for one failure
// (a pass over thousands of keys with a side down fails for each).
const maxErrorLines = 10

// printErrors writes err to w, one line per line of its text (errors.Join
// puts one error a line), at most maxErrorLines of them.
func printErrors(w io.Writer, err error) {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		if i == maxErrorLines {
			fmt.Fprintf(w, "  ... and %d more\n", len(lines)-i)
			return
		}
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// printableKey returns key as it is, or quoted if it has spaces or
// characters a terminal would not show as themselves.
func printableKey(key string) string {
	if strings.ContainsFunc(key, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsGraphic(r) }) {
		return strconv.Quote(key)
	}
	return key
}

// age is how long ago t was, rounded for people.
func age(now, t time.Time) time.Duration {
	return roundDuration(now.Sub(t))
}

// shellQuote quotes s for a POSIX shell, if it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_./:=@%+,", r)))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// plural writes n with the singular or the plural noun: "1 key", "2 keys".
func plural(n int, singular, plural string) string {
	if n == 1 {
		return "1 " + singular
	}
	return fmt.Sprintf("%d %s", n, plural)
}
