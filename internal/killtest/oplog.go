//go:build unix

package killtest

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// opLog is a child's record of its operations, one line each, in a file
// the parent reads once the child is dead:
//
//	B <op> <kind> <key> <value> <t>
//	                              the operation starts (value: a put's id),
//	                              t nanoseconds after the log was created
//	                              (for reading a failed run's logs)
//	A <op> <result>               the library returned nil (result: a
//	                              read's value id, or "absent")
//	F <op> <error>                the library returned an error
//	K <point>                     the child is killed at this point
//
// Fields are separated by tabs. Each line is one write(2), made before
// the next operation on the key starts, so a line the child wrote is in
// the file whatever becomes of the child: a SIGKILL loses nothing the
// kernel has taken. (A crash of the machine could lose it; this test
// kills processes, not machines, so the lines are not fsynced.)
type opLog struct {
	mu    sync.Mutex
	f     *os.File
	n     int
	start time.Time
}

func createOpLog(path string) (*opLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &opLog{f: f, start: time.Now()}, nil
}

func (l *opLog) line(fields ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.WriteString(strings.Join(fields, "\t") + "\n"); err != nil {
		// Without its log the child's run cannot be checked.
		fmt.Fprintln(os.Stderr, "killtest: writing the operation log:", err)
		os.Exit(2)
	}
}

// begin logs the start of an operation and returns its id. Operations
// that concern no key (taking the primary down, healing it, draining)
// have key "-".
func (l *opLog) begin(kind, key, value string) string {
	l.mu.Lock()
	l.n++
	id := fmt.Sprint(l.n)
	l.mu.Unlock()
	l.line("B", id, kind, key, value, fmt.Sprint(time.Since(l.start).Nanoseconds()))
	return id
}

func (l *opLog) ok(id, result string) { l.line("A", id, result) }

func (l *opLog) failed(id string, err error) {
	l.line("F", id, strings.NewReplacer("\t", " ", "\n", " ").Replace(err.Error()))
}

func (l *opLog) killed(point string) { l.line("K", point) }

// outcome is how an operation ended, as far as its log says.
type outcome int

const (
	inFlight outcome = iota // started, and the child died before it returned
	acked                   // the library returned nil
	failed                  // the library returned an error
)

// loggedOp is one operation read back from a log.
type loggedOp struct {
	id, kind, key, value string
	outcome              outcome
	result               string // A: the result; F: the error
}

// childLog is what a child's log says: its operations in the order they
// started, and the kill point, if it was killed.
type childLog struct {
	ops    []*loggedOp
	killed string
}

// readOpLog reads a child's log. A last line without its newline (cut by
// the kill in the middle of a write) is ignored.
func readOpLog(path string) (*childLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cl := &childLog{}
	byID := map[string]*loggedOp{}
	r := bufio.NewReader(f)
	for {
		s, err := r.ReadString('\n')
		if err != nil {
			return cl, nil // io.EOF, with s the unterminated rest if any
		}
		fields := strings.Split(strings.TrimSuffix(s, "\n"), "\t")
		switch {
		case fields[0] == "B" && len(fields) == 6:
			op := &loggedOp{id: fields[1], kind: fields[2], key: fields[3], value: fields[4]}
			byID[fields[1]] = op
			cl.ops = append(cl.ops, op)
		case (fields[0] == "A" || fields[0] == "F") && len(fields) == 3 && byID[fields[1]] != nil:
			op := byID[fields[1]]
			op.outcome, op.result = acked, fields[2]
			if fields[0] == "F" {
				op.outcome = failed
			}
		case fields[0] == "K" && len(fields) == 2:
			cl.killed = fields[1]
		default:
			return nil, fmt.Errorf("%s: malformed line %q", path, s)
		}
	}
}
