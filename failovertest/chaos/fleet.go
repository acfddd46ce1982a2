package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"

	"github.com/failoverblob/failoverblob/journal"
)

// writer is one of a seed's failover buckets, as a process that runs one
// instance of it at a time: its name, clock and journal stay across
// restarts.
type writer struct {
	r           *run
	n           int
	id          string        // its WriterID
	offset      time.Duration // its clock's skew
	journalPath string        // Options.JournalFile: where its journal file is
	journal     journal.Journal
	file        *journal.File // the journal, when it is a file

	mu    sync.Mutex
	cur   *instance     // nil while it restarts
	ready chan struct{} // closed when cur is set again
	insts []*instance   // every instance, in the order opened
}

// instance is one instance of a writer's failover bucket: one process's
// life.
type instance struct {
	w        *writer
	n        int
	target   Target
	fence    *fence
	callers  sync.WaitGroup // operations and reconcile passes using it
	killedAt atomic.Int64   // the history's logical time of its crash; 0: none
	closed   bool           // closed by a clean restart (restart's goroutine only)
}

// now is the writer's clock.
func (w *writer) now() time.Time { return time.Now().Add(w.offset) }

// openJournal opens the writer's journal: at first a new one; after a
// restart, the same memory journal, or the journal file opened again.
func (w *writer) openJournal() error {
	if w.journalPath == "" {
		if w.journal == nil {
			w.journal = journal.NewMemory()
		}
		return nil
	}
	f, err := journal.OpenFile(w.journalPath)
	if err != nil {
		return fmt.Errorf("writer %d: opening its journal file: %w", w.n, err)
	}
	w.file, w.journal = f, f
	return nil
}

// closeJournal closes the writer's journal file, if it has one, as a
// process's exit does.
func (w *writer) closeJournal() error {
	if w.file == nil {
		return nil
	}
	err := w.file.Close()
	w.file, w.journal = nil, nil
	if err != nil {
		return fmt.Errorf("writer %d: closing its journal file: %w", w.n, err)
	}
	return nil
}

// start opens the writer's first instance.
func (w *writer) start(ctx context.Context) error {
	if err := w.openJournal(); err != nil {
		return err
	}
	inst, err := w.openInstance(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.cur = inst
	w.mu.Unlock()
	return nil
}

// openInstance calls open for a new instance of the writer.
func (w *writer) openInstance(ctx context.Context) (*instance, error) {
	w.mu.Lock()
	inst := &instance{w: w, n: len(w.insts), fence: &fence{}}
	w.mu.Unlock()
	env := Env{
		Journal:  &fencedJournal{j: w.journal, f: inst.fence},
		WriterID: w.id,
		Now:      w.now,
		Writer:   w.n,
		Instance: inst.n,
	}
	env.Primary = blob.NewBucket(&fencedSide{Bucket: w.r.sides[journal.Primary], f: inst.fence, side: journal.Primary})
	env.Secondary = blob.NewBucket(&fencedSide{Bucket: w.r.sides[journal.Secondary], f: inst.fence, side: journal.Secondary})
	t, err := w.r.open(ctx, env)
	switch {
	case err != nil:
		err = fmt.Errorf("open: %w", err)
	case t.Bucket == nil || t.Reconcile == nil:
		err = errors.New("open returned a Target without a Bucket or a Reconcile")
	case (w.n > 0 || inst.n > 0) && (t.Mirror != w.r.mirror || t.AckBoth != w.r.ackBoth || t.StrictReads != w.r.strictReads):
		err = errors.New("open returned Targets that disagree on Mirror, AckBoth or StrictReads")
	}
	if err != nil {
		if t.Bucket != nil {
			_ = t.Bucket.Close()
		}
		_ = env.Primary.Close()
		_ = env.Secondary.Close()
		return nil, fmt.Errorf("writer %d, instance %d: %w", w.n, inst.n, err)
	}
	if w.n == 0 && inst.n == 0 {
		w.r.mirror, w.r.ackBoth, w.r.strictReads = t.Mirror, t.AckBoth, t.StrictReads
	}
	inst.target = t
	w.mu.Lock()
	w.insts = append(w.insts, inst)
	w.mu.Unlock()
	return inst, nil
}

// acquire returns the writer's current instance for one caller, waiting
// while the writer restarts. The caller releases it when done.
func (w *writer) acquire() *instance {
	for {
		w.mu.Lock()
		if inst := w.cur; inst != nil {
			inst.callers.Add(1)
			w.mu.Unlock()
			return inst
		}
		ready := w.ready
		w.mu.Unlock()
		<-ready
	}
}

func (inst *instance) release() { inst.callers.Done() }

// reconcile makes one reconcile pass on the writer's current instance.
func (w *writer) reconcile(ctx context.Context) (int, error) {
	inst := w.acquire()
	defer inst.release()
	ctx = context.WithValue(ctx, reconcilerKey{}, reconcilerOf{writer: w.n, instance: inst.n})
	return inst.target.Reconcile(ctx)
}

// restart replaces the writer's instance with a new one over the same sides
// and journal, startup after the old one is gone. A clean restart lets the
// calls in flight finish and closes the instance; a crash kills it (its
// fence fails every call it makes from now on) and closes it later, once
// its callers are done. New callers wait for the new instance.
func (w *writer) restart(ctx context.Context, crash bool, startup time.Duration) error {
	w.mu.Lock()
	old := w.cur
	w.cur, w.ready = nil, make(chan struct{})
	w.mu.Unlock()
	var errs []error
	if crash {
		old.killedAt.Store(w.r.clock.Add(1))
		<-old.fence.kill()
		w.r.closers.Go(func() {
			old.callers.Wait()
			_ = old.target.Bucket.Close() // a dead process reports nothing
		})
	} else {
		old.callers.Wait()
		if err := old.target.Bucket.Close(); err != nil {
			errs = append(errs, fmt.Errorf("writer %d: closing instance %d: %w", w.n, old.n, err))
		}
		old.closed = true
		<-old.fence.kill()
	}
	errs = append(errs, w.closeJournal())
	time.Sleep(startup)
	next := old // if the restart fails, the dead instance fails every call
	err := w.openJournal()
	if err == nil {
		var inst *instance
		if inst, err = w.openInstance(ctx); err == nil {
			next = inst
		}
	}
	errs = append(errs, err)
	w.mu.Lock()
	w.cur = next
	close(w.ready)
	w.mu.Unlock()
	return errors.Join(errs...)
}

// restartNowAndThen restarts a writer every RestartEvery or so (from half
// of it to one and a half times it) until ctx is done; a share of
// Options.Crashes of the restarts are crashes.
func (r *run) restartNowAndThen(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(r.seed), 0x7e57a7))
	for {
		gap := r.o.RestartEvery/2 + time.Duration(rng.Int64N(int64(r.o.RestartEvery)+1))
		if sleep(ctx, gap) != nil {
			return
		}
		w := r.writers[rng.IntN(len(r.writers))]
		crash := rng.Float64() < r.o.Crashes
		startup := r.pace.startupMin + time.Duration(rng.Int64N(int64(r.pace.startupSpan)+1))
		if crash {
			r.crashes.Add(1)
		} else {
			r.restarts.Add(1)
		}
		if err := w.restart(context.Background(), crash, startup); err != nil {
			r.failSeed(err)
			return
		}
	}
}

// closeWriters closes every writer's current instance and journal, once
// the crashed instances are closed too.
func (r *run) closeWriters() error {
	var errs []error
	for _, w := range r.writers {
		w.mu.Lock()
		cur := w.cur
		w.mu.Unlock()
		if cur != nil && cur.killedAt.Load() == 0 && !cur.closed {
			cur.callers.Wait()
			if err := cur.target.Bucket.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing the failover bucket of writer %d: %w", w.n, err))
			}
			<-cur.fence.kill()
		}
	}
	r.closers.Wait()
	for _, w := range r.writers {
		errs = append(errs, w.closeJournal())
	}
	return errors.Join(errs...)
}
