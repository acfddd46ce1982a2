//go:build unix

package killtest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/gcerrors"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
	"github.com/failoverblob/failoverblob/journal"
)

// childConfig is what a child is told on its command line.
type childConfig struct {
	dir     string // the run's directory (see layout)
	mode    failoverblob.Mode
	journal string // "bucket" or "file"
	workers int    // 1: drains inline; more: each owns some keys, and Run repairs alongside
	keys    int
	seed    uint64
	// The child dies at the killAt-th kill point on killPath (write,
	// delete, repair; empty for any path), counted from 1, or at the
	// fallback-th of all, whichever comes first.
	killPath string
	killAt   int64
	fallback int64
	child    int // the child's number in its run, for value ids
}

// A run's directory holds
//
//	primary/, secondary/  the two fileblob buckets
//	journal               the file journal, for a file-journal run
//	tmp/                  the children's TMPDIR and spool directory
//	child-N.log           child N's operation log
func (c childConfig) path(name string) string { return filepath.Join(c.dir, name) }

func (c childConfig) logPath() string { return c.path(fmt.Sprintf("child-%d.log", c.child)) }

func (c childConfig) args() []string {
	return []string{
		"-dir", c.dir, "-mode", c.mode.String(), "-journal", c.journal,
		"-workers", fmt.Sprint(c.workers), "-keys", fmt.Sprint(c.keys),
		"-seed", fmt.Sprint(c.seed), "-kill-path", c.killPath, "-kill", fmt.Sprint(c.killAt),
		"-kill-fallback", fmt.Sprint(c.fallback), "-child", fmt.Sprint(c.child),
	}
}

func parseChildFlags(args []string) (childConfig, error) {
	var c childConfig
	fs := flag.NewFlagSet("killchild", flag.ContinueOnError)
	fs.StringVar(&c.dir, "dir", "", "the run's directory")
	mode := fs.String("mode", "redirect", "redirect or mirror")
	fs.StringVar(&c.journal, "journal", "bucket", "bucket or file")
	fs.IntVar(&c.workers, "workers", 1, "workers")
	fs.IntVar(&c.keys, "keys", 6, "keys")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the workload")
	fs.StringVar(&c.killPath, "kill-path", "", "path of the kill point: write, delete, repair, or empty for any")
	fs.Int64Var(&c.killAt, "kill", 1, "kill point to die at, on -kill-path")
	fs.Int64Var(&c.fallback, "kill-fallback", 1000, "kill point of all to die at, if -kill is not reached first")
	fs.IntVar(&c.child, "child", 0, "the child's number in its run")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if *mode == "mirror" {
		c.mode = failoverblob.Mirror
	}
	if c.dir == "" || c.workers < 1 || c.keys < c.workers || (c.journal != "bucket" && c.journal != "file") {
		return c, fmt.Errorf("killchild: bad arguments %q", args)
	}
	return c, nil
}

// ChildMain is the child process: it runs the workload its command line
// describes until it reaches its kill point and kills itself. It exits 3 if
// it runs out of operations first, and 2 if it cannot run at all.
func ChildMain() {
	c, err := parseChildFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := runChild(c); err != nil {
		fmt.Fprintln(os.Stderr, "killchild:", err)
		os.Exit(2)
	}
	os.Exit(3)
}

// opsPerWorker bounds a child that never reaches its kill point.
const opsPerWorker = 5000

// child is a running child: a failover bucket over the run's two sides,
// the primary behind a fault injector, with kill points on both sides and
// on a file journal.
type child struct {
	c      childConfig
	log    *opLog
	f      *failoverblob.Failover
	faults *failovertest.Injector
	down   bool
}

func runChild(c childConfig) error {
	log, err := createOpLog(c.logPath())
	if err != nil {
		return err
	}
	p := &points{path: c.killPath, killAt: c.killAt, fallback: c.fallback, log: log}
	var raw [2]*blob.Bucket
	for i, name := range []string{"primary", "secondary"} {
		if raw[i], err = fileblob.OpenBucket(c.path(name), &fileblob.Options{CreateDir: true}); err != nil {
			return err
		}
	}
	primary, faults := failovertest.Wrap(p.bucket(journal.Primary, raw[0]), nil)
	secondary := p.bucket(journal.Secondary, raw[1])
	opts := &failoverblob.Options{
		Mode: c.mode,
		Breaker: &circuit.Settings{
			ReadyToTrip: func(n circuit.Counts) bool { return n.ConsecutiveFailures >= 1 },
			Timeout:     5 * time.Millisecond,
		},
		MaxClockSkew:         recoveryClockSkew,
		CallTimeout:          childCallTimeout,
		IdleTimeout:          childIdleTimeout,
		SpoolMemory:          1 << 10, // larger values spool to a file
		SpoolDir:             c.path("tmp"),
		ReconcileInterval:    childReconcileInterval,
		ReconcileConcurrency: 2,
	}
	if c.journal == "file" {
		jf, err := journal.OpenFile(c.path("journal"))
		if err != nil {
			return err
		}
		opts.Journal = &pointedJournal{p: p, j: jf}
	}
	rng := rand.New(rand.NewPCG(c.seed, 0))
	ch := &child{c: c, log: log, faults: faults}
	if rng.IntN(2) == 0 {
		ch.toggle() // start with the primary down
	}
	ctx := context.Background()
	if ch.f, err = failoverblob.New(onPath(ctx, "open"), primary, secondary, opts); err != nil {
		return err
	}
	if c.workers > 1 {
		go func() { _ = ch.f.Run(onPath(ctx, "repair")) }()
	}
	var wg sync.WaitGroup
	for w := range c.workers {
		wrng := rand.New(rand.NewPCG(c.seed, uint64(w)+1))
		wg.Go(func() { ch.work(ctx, w, wrng) })
	}
	wg.Wait()
	return nil
}

// work runs worker w's operations on the keys it owns. Worker 0 also
// takes the primary down and heals it, and, working alone, drains.
func (ch *child) work(ctx context.Context, w int, rng *rand.Rand) {
	var keys []string
	for i := w; i < ch.c.keys; i += ch.c.workers {
		keys = append(keys, keyName(i))
	}
	b := ch.f.Bucket()
	for range opsPerWorker {
		key := keys[rng.IntN(len(keys))]
		switch r := rng.Float64(); {
		case w == 0 && r < 0.08:
			ch.toggle()
		case w == 0 && ch.c.workers == 1 && r < 0.18:
			id := ch.log.begin("drain", "-", "-")
			if _, err := ch.f.Drain(onPath(ctx, "repair")); err != nil {
				ch.log.failed(id, err)
			} else {
				ch.log.ok(id, "-")
			}
		case r < 0.60:
			ch.put(ctx, b, key, rng)
		case r < 0.78:
			id := ch.log.begin("delete", key, "-")
			switch err := b.Delete(onPath(ctx, "delete"), key); {
			case gcerrors.Code(err) == gcerrors.NotFound:
				ch.log.ok(id, "absent")
			case err != nil:
				ch.log.failed(id, err)
			default:
				ch.log.ok(id, "-")
			}
		default:
			id := ch.log.begin("read", key, "-")
			data, err := b.ReadAll(onPath(ctx, "read"), key)
			switch {
			case gcerrors.Code(err) == gcerrors.NotFound:
				ch.log.ok(id, "absent")
			case errors.Is(err, failoverblob.ErrUnavailable):
				ch.log.failed(id, fmt.Errorf("%s %w", unavailable, err))
			case err != nil:
				ch.log.failed(id, err)
			default:
				ch.log.ok(id, valueOf(data))
			}
		}
	}
}

// toggle takes the primary down, or heals it.
func (ch *child) toggle() {
	ch.down = !ch.down
	if ch.down {
		ch.log.begin("down", "-", "-")
		ch.faults.Outage(nil)
		return
	}
	ch.log.begin("up", "-", "-")
	ch.faults.Heal()
}

// put writes a new value of key, as a stream written in pieces or as an
// upload from a seekable source.
func (ch *child) put(ctx context.Context, b *blob.Bucket, key string, rng *rand.Rand) {
	var size int
	switch r := rng.IntN(20); {
	case r < 10:
		size = 60 + rng.IntN(200)
	case r < 17:
		size = 1<<10 + rng.IntN(7<<10)
	default:
		size = 16<<10 + rng.IntN(48<<10)
	}
	vid := fmt.Sprintf("%s.c%d.%d.%08x", key, ch.c.child, size, rng.Uint32())
	data := content(vid)
	id := ch.log.begin("put", key, vid)
	ctx = onPath(ctx, "write")
	opts := &blob.WriterOptions{ContentType: "application/octet-stream"}
	var err error
	if rng.IntN(2) == 0 {
		err = b.Upload(ctx, key, bytes.NewReader(data), opts)
	} else {
		err = writeInPieces(ctx, b, key, data, opts)
	}
	if err != nil {
		ch.log.failed(id, err)
		return
	}
	ch.log.ok(id, "-")
}

func writeInPieces(ctx context.Context, b *blob.Bucket, key string, data []byte, opts *blob.WriterOptions) error {
	w, err := b.NewWriter(ctx, key, opts)
	if err != nil {
		return err
	}
	for len(data) > 0 {
		n := min(len(data), 4<<10)
		if _, err := w.Write(data[:n]); err != nil {
			_ = w.Close()
			return err
		}
		data = data[n:]
	}
	return w.Close()
}

func keyName(i int) string { return fmt.Sprintf("k%02d", i) }

// content returns the bytes of the value with id vid
// (key.child.size.random): vid and a newline, repeated to size bytes.
func content(vid string) []byte {
	parts := strings.Split(vid, ".")
	size, _ := strconv.Atoi(parts[len(parts)-2])
	line := vid + "\n"
	b := bytes.Repeat([]byte(line), size/len(line)+1)
	return b[:max(size, len(line))]
}

// valueOf returns the id of the value whose bytes are data, or, if data is
// not exactly the bytes of the value its first line names, "corrupt:" and
// that line.
func valueOf(data []byte) string {
	first, _, _ := bytes.Cut(data, []byte("\n"))
	vid := string(first)
	if strings.Count(vid, ".") != 3 || !bytes.Equal(data, content(vid)) {
		return "corrupt:" + strings.ToValidUTF8(vid[:min(len(vid), 60)], "?")
	}
	return vid
}

// unavailable starts the logged error of a read that failed with
// failoverblob.ErrUnavailable, an answer the oracle allows.
const unavailable = "unavailable:"
