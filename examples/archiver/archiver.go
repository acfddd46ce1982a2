package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"gocloud.dev/blob"
)

// archiver copies the messages of a JetStream consumer into a bucket, one
// object per batch, and commits a batch on the log only once the bucket has
// acknowledged its write. This is the part of the example to copy.
//
// The consumer must be durable, with AckPolicy AckAllPolicy (acknowledging a
// message acknowledges every earlier one, so the consumer's ack floor is the
// committed offset, as in Kafka) and MaxAckPending no larger than a batch (so
// the log hands out at most the batch being archived). Its stream must keep
// every message until it is archived: its retention is the buffer that
// carries the archive through an outage of both sides.
//
// The guarantees, whatever point a crash stops it at:
//   - Nothing is lost. The committed offset only moves past a batch whose
//     write was acknowledged, and a restarted archiver starts from it.
//   - Nothing is archived twice. Batches are aligned on sequence numbers
//     (with 100 messages a batch: 1-100, 101-200, ...), so the batch that
//     was being archived when the crash came is cut again at the same
//     messages, written with the same name and the same bytes, and replaces
//     any copy the crashed run stored. At most that batch is written again.
//
// A pipeline that must also cut batches on a timer cannot keep them aligned;
// it names each object by its first offset alone, so that a rewrite of the
// same start replaces the earlier copy whatever its end.
type archiver struct {
	consumer jetstream.Consumer
	bucket   *blob.Bucket
	prefix   string // object names are prefix + "<first>-<last>.jsonl"
	size     uint64 // messages per batch
	// progress, if set, is called at each step (the example prints a
	// timeline from it, and kills the archiver from it).
	progress func(event)
}

// A batch is the messages with stream sequence numbers first to last.
type batch struct {
	first, last uint64
	msgs        []jetstream.Msg // msgs[i] has sequence first+i
	redelivered int             // messages the log had delivered before, to an earlier run
}

// An event is a step of the archiver's progress.
type event struct {
	kind    eventKind
	batch   *batch
	written int // messages written to the batch's object so far
}

type eventKind int

const (
	started   eventKind = iota // Run read the committed offset; batch is the first to archive
	wrote                      // one more message was written to the open object
	stored                     // the bucket acknowledged the batch's write
	committed                  // the log acknowledged the batch's commit
)

// record is one line of an archived object (JSON Lines). It holds only what
// the log holds, so a batch written twice has the same bytes both times.
type record struct {
	Seq     uint64 `json:"seq"`
	Subject string `json:"subject"`
	Data    []byte `json:"data"`
}

// objectName names the batch of messages first to last. Zero-padded, names
// sort in log order.
func objectName(prefix string, first, last uint64) string {
	return fmt.Sprintf("%s%020d-%020d.jsonl", prefix, first, last)
}

// Run archives batch after batch until ctx is done or a step fails, and
// returns why it stopped. Run again, it resumes at the committed offset: to
// retry after a failure (a write that no side took, say), call Run again
// after a backoff; that is the same path as a restart after a crash.
func (a *archiver) Run(ctx context.Context) error {
	info, err := a.consumer.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading the committed offset: %w", err)
	}
	done := info.AckFloor.Stream
	if done%a.size != 0 {
		return fmt.Errorf("the committed offset %d is not at a batch boundary: it was archived in batches of another size than %d", done, a.size)
	}
	it, err := a.consumer.Messages(jetstream.PullMaxMessages(int(a.size)))
	if err != nil {
		return err
	}
	defer it.Stop()
	a.report(event{kind: started, batch: &batch{first: done + 1, last: done + a.size}})
	for first := done + 1; ; first += a.size {
		b, err := a.collect(ctx, it, first)
		if err != nil {
			return err
		}
		if err := a.store(ctx, b); err != nil {
			return fmt.Errorf("storing messages %d-%d: %w", b.first, b.last, err)
		}
		a.report(event{kind: stored, batch: b, written: len(b.msgs)})
		if err := ctx.Err(); err != nil {
			return err // stopped between the two steps: stored, not committed
		}
		// Acknowledging the last message commits the whole batch (AckAll).
		// DoubleAck waits until the log has recorded it.
		if err := b.msgs[len(b.msgs)-1].DoubleAck(ctx); err != nil {
			return fmt.Errorf("committing messages %d-%d: %w", b.first, b.last, err)
		}
		a.report(event{kind: committed, batch: b, written: len(b.msgs)})
	}
}

// collect receives the messages of the batch that starts at first. They can
// come out of order and more than once: after a restart the log first sends
// what no run has seen yet, and redelivers what the crashed run held once
// the consumer's AckWait has passed.
func (a *archiver) collect(ctx context.Context, it jetstream.MessagesContext, first uint64) (*batch, error) {
	b := &batch{first: first, last: first + a.size - 1, msgs: make([]jetstream.Msg, a.size)}
	for have := uint64(0); have < a.size; {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		seq := meta.Sequence.Stream
		if seq < b.first || seq > b.last || b.msgs[seq-first] != nil {
			continue // already committed, or a second delivery of one we hold
		}
		if meta.NumDelivered > 1 {
			b.redelivered++
		}
		b.msgs[seq-first] = msg
		have++
	}
	return b, nil
}

// store writes the batch as one object, one record per line. The write is
// acknowledged when Close returns nil. If ctx is done before that, the write
// is aborted: no object is created, and an earlier one of the same name
// stays as it was.
func (a *archiver) store(ctx context.Context, b *batch) error {
	w, err := a.bucket.NewWriter(ctx, objectName(a.prefix, b.first, b.last),
		&blob.WriterOptions{ContentType: "application/jsonl"})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	for i, msg := range b.msgs {
		if err := enc.Encode(record{Seq: b.first + uint64(i), Subject: msg.Subject(), Data: msg.Data()}); err != nil {
			_ = w.Close()
			return err
		}
		a.report(event{kind: wrote, batch: b, written: i + 1})
	}
	return w.Close()
}

func (a *archiver) report(e event) {
	if a.progress != nil {
		a.progress(e)
	}
}
