package failoverblob

import (
	"bytes"
	"crypto/rand"
	"os"
	"testing"
)

func TestSpoolKeepsMemoryBoundAndReplays(t *testing.T) {
	cases := []struct {
		name     string
		memLimit int64
		size     int
		wantFile bool
	}{
		{"empty", 1 << 20, 0, false},
		{"fits in memory", 1 << 20, 100 << 10, false},
		{"exactly the limit", 128 << 10, 128 << 10, false},
		{"spills to a file", 100 << 10, 1 << 20, true},
		{"no memory at all", 0, 10 << 10, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := make([]byte, tc.size)
			_, _ = rand.Read(data)
			s := newSpool(tc.memLimit, t.TempDir(), nil)
			for rest := data; len(rest) > 0; {
				n := min(len(rest), 7919) // odd pieces cross chunk boundaries
				if _, err := s.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			if s.inMem > tc.memLimit {
				t.Errorf("bytes in memory: got %d, want at most %d", s.inMem, tc.memLimit)
			}
			if got := s.file != nil; got != tc.wantFile {
				t.Errorf("spilled to a file: got %v, want %v", got, tc.wantFile)
			}
			for range 2 { // a replay can be repeated
				var out bytes.Buffer
				if _, err := s.WriteTo(&out); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out.Bytes(), data) {
					t.Fatalf("replay: got %d bytes, want the %d written", out.Len(), len(data))
				}
			}
			name := ""
			if s.file != nil {
				name = s.file.Name()
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if name != "" {
				if _, err := os.Stat(name); !os.IsNotExist(err) {
					t.Errorf("spool file %s after Close: got %v, want it gone", name, err)
				}
			}
		})
	}
}
