package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const okLine = "OK: nothing acknowledged was lost"

func TestRun(t *testing.T) {
	dir := t.TempDir()
	fileURL := func(name string) string {
		u := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dir, name)), RawQuery: "create_dir=1"}
		return u.String()
	}
	tests := []struct {
		name string
		args []string
	}{
		{"mem URLs", []string{"-primary", "mem://", "-secondary", "mem://"}},
		{"file URLs", []string{"-primary", fileURL("primary"), "-secondary", fileURL("secondary")}},
		{"S3 and GCS emulators, the S3 port closed", []string{"-emulators"}},
		{"S3 and GCS emulators, S3 answering 503", []string{"-emulators", "-fault", "503"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := run(context.Background(), &out, tt.args)
			if err != nil {
				t.Fatalf("run(%q) = %v, want nil; output:\n%s", tt.args, err, out.String())
			}
			if !strings.Contains(out.String(), okLine) || strings.Contains(out.String(), "FAIL") {
				t.Errorf("run(%q) output lacks %q or reports a failure:\n%s", tt.args, okLine, out.String())
			}
		})
	}
}

// With no flags, run works in a fresh temporary directory and removes it.
func TestRunDefault(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out bytes.Buffer
	if err := run(context.Background(), &out, nil); err != nil {
		t.Fatalf("run() = %v, want nil; output:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), okLine) || strings.Contains(out.String(), "FAIL") {
		t.Errorf("run() output lacks %q or reports a failure:\n%s", okLine, out.String())
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("run() left %d entries in the temporary directory, want none (first: %s)", len(left), left[0].Name())
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	tests := [][]string{
		{"-primary", "mem://"},
		{"-secondary", "mem://"},
		{"extra"},
		{"-primary", "nosuchscheme://b", "-secondary", "mem://"},
		{"-fault", "503"},
		{"-emulators", "-fault", "hang"},
		{"-emulators", "-primary", "mem://", "-secondary", "mem://"},
	}
	for _, args := range tests {
		var out bytes.Buffer
		if err := run(context.Background(), &out, args); err == nil {
			t.Errorf("run(%q) = nil, want an error; output:\n%s", args, out.String())
		}
	}
}

// -h says what the walkthrough shows, then lists the flags.
func TestRunHelp(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), &out, []string{"-h"})
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run(-h) = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"probe notices it with no", "OpenTelemetry metrics", "-emulators", "-fault"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("run(-h) output lacks %q:\n%s", want, out.String())
		}
	}
}
