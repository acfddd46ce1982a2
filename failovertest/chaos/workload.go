package chaos

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"gocloud.dev/blob"
)

// The outcome of an operation, as the check sorts it.
type outcome int

const (
	outOK outcome = iota
	outNotFound
	outPrecondition // FailedPrecondition: an IfNotExist write found the key
	outUnavailable
	outFailed // any other error
)

var outcomeNames = [...]string{"ok", "not found", "precondition failed", "unavailable", "failed"}

func (c outcome) String() string { return outcomeNames[c] }

// opKind is a kind of client operation.
type opKind int

const (
	opPut opKind = iota
	opPutIfAbsent
	opGet
	opAttributes
	opDelete
	opList
	opCopy
	numOpKinds
)

var opKinds = [numOpKinds]struct {
	name   string
	weight int
}{
	opPut:         {"Put", 30},
	opPutIfAbsent: {"PutIfNotExist", 3},
	opGet:         {"Get", 24},
	opAttributes:  {"Attributes", 10},
	opDelete:      {"Delete", 13},
	opList:        {"List", 6},
	opCopy:        {"Copy", 7},
}

// deleteTwice is the share of deletes, in 1/16, that the client follows with
// a second delete of the same key, after up to fifteen thinking times: often
// across a fault window's change, and before the reconciler has applied
// the first.
const deleteTwice = 5

func (k opKind) String() string { return opKinds[k].name }

// op is one client operation and what it returned.
type op struct {
	index   int64 // numbers the operations of a seed from 1; a Put's value id
	client  int
	writer  int       // the writer whose failover bucket it went through
	inst    *instance // the instance of it; nil for a fault found after the run
	kind    opKind
	key     string // the key written, read or deleted; for Copy, the destination
	src     string // Copy: the source key
	size    int64  // Put: the size of the value written
	style   string // Put: how the value was written
	again   *op    // the first of two deletes of the key in a row, for the second
	final   bool   // a read of the final state, after every fault healed
	call    int64  // logical time of the call
	ret     int64  // logical time of the return
	start   time.Time
	end     time.Time
	out     outcome
	err     error
	crashed bool       // its instance crashed before it returned: its answer reached no one
	stuck   bool       // it ran past pace.stuckAfter
	seen    []sighting // what a read, a listing or an answer showed
	faults  []string   // what the operation saw that is wrong in itself
}

func (o *op) String() string {
	s := fmt.Sprintf("op #%d (client %d, %s %.60s", o.index, o.client, o.kind, o.key)
	switch o.kind {
	case opPut, opPutIfAbsent:
		s += fmt.Sprintf(" = value #%d, %d bytes, %s", o.index, o.size, o.style)
	case opCopy:
		s += " from " + o.src
	case opList:
		s = fmt.Sprintf("op #%d (client %d, %s", o.index, o.client, o.kind)
	}
	if o.again != nil {
		s += fmt.Sprintf(", again after op #%d", o.again.index)
	}
	if o.inst != nil && (len(o.inst.w.r.writers) > 1 || len(o.inst.w.insts) > 1) {
		s += fmt.Sprintf(", writer %d instance %d", o.writer, o.inst.n)
	}
	if o.crashed {
		s += ", cut off by its instance's crash"
	}
	if o.final {
		s += ", final read"
	}
	s += ") -> " + o.out.String()
	if o.err != nil && o.out != outNotFound {
		s += fmt.Sprintf(" (%s)", shorten(o.err.Error()))
	}
	return s
}

// shorten elides the middle of a long message (an error that quotes a long
// key, say).
func shorten(msg string) string {
	const most = 400
	if len(msg) <= most {
		return msg
	}
	return msg[:most/2] + " [...] " + msg[len(msg)-most/2:]
}

// seenKind is what a sighting says about a key.
type seenKind int

const (
	seenAbsent seenKind = iota
	seenValue           // a value, identified by its id
	seenEmpty           // some empty value (an empty read names no id)
	seenExists          // some value, of a size if size >= 0
)

// sighting is what an operation showed about one key.
type sighting struct {
	key   string
	kind  seenKind
	value valueID
	size  int64
}

func (s sighting) String() string {
	switch s.kind {
	case seenAbsent:
		return "absent"
	case seenValue:
		return fmt.Sprintf("value #%d", s.value)
	case seenEmpty:
		return "an empty value"
	}
	if s.size < 0 {
		return "present"
	}
	return fmt.Sprintf("present with %d bytes", s.size)
}

// client runs n operations, with 0 to 2 virtual seconds (over the wire, 0
// to Window/20) between them, through its writer's failover bucket.
func (r *run) client(ctx context.Context, c, n int) {
	rng := rand.New(rand.NewPCG(uint64(r.seed), uint64(c)+100))
	w := c % len(r.writers)
	total := 0
	for _, k := range opKinds {
		total += k.weight
	}
	for range n {
		time.Sleep(time.Duration(rng.Int64N(int64(r.pace.think))))
		kind := opKind(0)
		for x := rng.IntN(total); x >= opKinds[kind].weight; kind++ {
			x -= opKinds[kind].weight
		}
		o := &op{client: c, writer: w, kind: kind}
		switch kind {
		case opPut, opPutIfAbsent, opDelete, opCopy:
			o.key = r.pickKey(rng, r.changes[w])
		default:
			o.key = r.pickKey(rng, r.keys)
		}
		switch kind {
		case opPut, opPutIfAbsent:
			r.put(ctx, o, rng)
		case opGet:
			r.get(ctx, o)
		case opAttributes:
			r.attributes(ctx, o)
		case opDelete:
			r.delete(ctx, o)
			if r.o.RepeatDeletes && rng.IntN(16) < deleteTwice {
				time.Sleep(time.Duration(rng.Int64N(15 * int64(r.pace.think))))
				r.delete(ctx, &op{client: c, writer: w, kind: opDelete, key: o.key, again: o})
			}
		case opList:
			o.key = ""
			r.list(ctx, o, rng)
		case opCopy:
			o.src = r.pickKey(rng, r.keys)
			for o.src == o.key {
				o.src = r.pickKey(rng, r.keys)
			}
			r.do(ctx, o, func(ctx context.Context, b *blob.Bucket) error { return b.Copy(ctx, o.key, o.src, nil) })
			switch o.out {
			case outOK:
				o.seen = append(o.seen, sighting{key: o.src, kind: seenExists, size: -1})
			case outNotFound:
				o.seen = append(o.seen, sighting{key: o.src, kind: seenAbsent})
			}
		}
	}
}

// pickKey draws a key from keys: one the sides refuse one time in 16, if
// keys has any, and otherwise one they accept.
func (r *run) pickKey(rng *rand.Rand, keys []string) string {
	refused := len(r.o.Refused) > 0 && rng.IntN(16) == 0
	for {
		k := keys[rng.IntN(len(keys))]
		if r.keyInfo[k].refused == refused {
			return k
		}
	}
}

func (r *run) delete(ctx context.Context, o *op) {
	r.do(ctx, o, func(ctx context.Context, b *blob.Bucket) error { return b.Delete(ctx, o.key) })
	if o.out == outNotFound {
		o.seen = append(o.seen, sighting{key: o.key, kind: seenAbsent})
	}
}

// valueSize draws the size of a value: mostly small (bytes moved are what a
// run costs, under the race detector above all), 16 KiB to 1 MiB one write
// in 100, and 1 MiB to MaxSize one in 1,000.
func (r *run) valueSize(rng *rand.Rand) int64 {
	var n int64
	switch p := rng.IntN(1000); {
	case p < 75:
		n = 0
	case p < 550:
		n = valueHeaderLen + rng.Int64N(1<<10)
	case p < 989:
		n = 1<<10 + rng.Int64N(15<<10)
	case p < 999:
		n = 16<<10 + rng.Int64N(1008<<10)
	default:
		n = 1<<20 + rng.Int64N(max(1, r.o.MaxSize-1<<20))
	}
	return min(n, r.o.MaxSize)
}

// putStyles are the ways a client writes a value, so that every write path
// of the bucket is taken: buffered, sniffed, streamed in pieces, uploaded
// from a seekable source or from a plain stream, with a checksum. Values
// over 64 KiB take only the streaming ones, generated as they are sent.
var putStyles = []string{"NewWriter in pieces", "Upload, seekable", "Upload, stream", "WriteAll", "WriteAll, type sniffed", "WriteAll with ContentMD5"}

const streamingStyles = 3 // the first three

func (r *run) put(ctx context.Context, o *op, rng *rand.Rand) {
	size := valueSizeOf(r.valueSize(rng))
	style := rng.IntN(len(putStyles))
	if size > 64<<10 {
		style = rng.IntN(streamingStyles)
	}
	o.style, o.size = putStyles[style], size
	pieces := 1 + rng.IntN(128<<10)
	r.do(ctx, o, func(ctx context.Context, b *blob.Bucket) error {
		id := valueID(o.index)
		opts := &blob.WriterOptions{
			ContentType: "application/octet-stream",
			Metadata:    map[string]string{valueMetadataKey: strconv.FormatInt(o.index, 10)},
			IfNotExist:  o.kind == opPutIfAbsent,
		}
		switch style {
		case 0:
			w, err := b.NewWriter(ctx, o.key, opts)
			if err != nil {
				return err
			}
			buf := make([]byte, min(int64(pieces), max(size, 1)))
			for src := newValueReader(id, size); ; {
				n, _ := src.Read(buf)
				if n == 0 {
					break
				}
				if _, err := w.Write(buf[:n]); err != nil {
					_ = w.Close()
					return err
				}
			}
			return w.Close()
		case 1:
			return b.Upload(ctx, o.key, newValueReader(id, size), opts)
		case 2:
			return b.Upload(ctx, o.key, struct{ io.Reader }{newValueReader(id, size)}, opts)
		}
		data := encodeValue(id, size)
		switch style {
		case 4:
			opts.ContentType = ""
		case 5:
			sum := md5.Sum(data)
			opts.ContentMD5 = sum[:]
		}
		return b.WriteAll(ctx, o.key, data, opts)
	})
	if o.out == outPrecondition {
		o.seen = append(o.seen, sighting{key: o.key, kind: seenExists, size: -1})
	}
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// get reads a key, checking the bytes as they stream past.
func (r *run) get(ctx context.Context, o *op) {
	var c valueChecker
	r.do(ctx, o, func(ctx context.Context, b *blob.Bucket) error {
		rd, err := b.NewReader(ctx, o.key, nil)
		if err != nil {
			return err
		}
		// Not io.Copy: blob.Reader.WriteTo allocates 1 MiB for each read.
		bp := readBufs.Get().(*[]byte)
		defer readBufs.Put(bp)
		for err == nil {
			var n int
			n, err = rd.Read(*bp)
			_, _ = c.Write((*bp)[:n])
		}
		if err == io.EOF {
			err = nil
		}
		if cerr := rd.Close(); err == nil {
			err = cerr
		}
		return err
	})
	switch o.out {
	case outNotFound:
		o.seen = append(o.seen, sighting{key: o.key, kind: seenAbsent})
	case outOK:
		id, n, err := c.result()
		switch {
		case err != nil:
			o.faults = append(o.faults, fmt.Sprintf("read %s", err))
		case n == 0:
			o.seen = append(o.seen, sighting{key: o.key, kind: seenEmpty, size: 0})
		default:
			o.seen = append(o.seen, sighting{key: o.key, kind: seenValue, value: id, size: n})
		}
	}
}

func (r *run) attributes(ctx context.Context, o *op) {
	var a *blob.Attributes
	r.do(ctx, o, func(ctx context.Context, b *blob.Bucket) (err error) {
		a, err = b.Attributes(ctx, o.key)
		return err
	})
	switch o.out {
	case outNotFound:
		o.seen = append(o.seen, sighting{key: o.key, kind: seenAbsent})
	case outOK:
		id := valueOf(a.Metadata)
		if id == 0 || len(a.Metadata) != 1 {
			o.faults = append(o.faults, fmt.Sprintf("attributes carry metadata %v, want exactly the metadata written (%s)", a.Metadata, valueMetadataKey))
		}
		if id != 0 {
			o.seen = append(o.seen, sighting{key: o.key, kind: seenValue, value: id, size: a.Size})
		}
	}
}

// list lists the key space in pages of 1 to 7 objects.
func (r *run) list(ctx context.Context, o *op, rng *rand.Rand) {
	pageSize := 1 + rng.IntN(7)
	var objs []*blob.ListObject
	r.do(ctx, o, func(ctx context.Context, b *blob.Bucket) error {
		token := blob.FirstPageToken
		for page := 0; len(token) > 0; page++ {
			if page > 10*len(r.keys) {
				return errors.New("listing does not end")
			}
			got, next, err := b.ListPage(ctx, token, pageSize, &blob.ListOptions{Prefix: r.prefix})
			if err != nil {
				return err
			}
			objs = append(objs, got...)
			token = next
		}
		return nil
	})
	listed := map[string]bool{}
	last := ""
	for _, obj := range objs {
		switch {
		case obj.Key <= last:
			o.faults = append(o.faults, fmt.Sprintf("listing is out of order or repeats a key: %q after %q", obj.Key, last))
		case !r.isKey(obj.Key):
			o.faults = append(o.faults, fmt.Sprintf("listing shows %q, which no client wrote", obj.Key))
		default:
			listed[obj.Key] = true
			o.seen = append(o.seen, sighting{key: obj.Key, kind: seenExists, size: obj.Size})
		}
		last = max(last, obj.Key)
	}
	if o.out != outOK || r.o.PartialLists {
		return
	}
	for _, k := range r.keys {
		if !listed[k] {
			o.seen = append(o.seen, sighting{key: k, kind: seenAbsent})
		}
	}
}

func (r *run) isKey(k string) bool {
	_, ok := r.keyInfo[k]
	return ok
}

// finalReads reads every key once more, after convergence, through the
// failover bucket of the writer that owns it (of the first writer, for a
// key every writer changes): its attributes (which name even an empty value)
// and its bytes. They must answer; a read that fails is retried 60 times. A
// key the sides refuse may be answered with their refusal.
func (r *run) finalReads(ctx context.Context) {
	for _, k := range r.keys {
		info := r.keyInfo[k]
		answered := func(o *op) bool {
			return o.out == outOK || o.out == outNotFound || (info.refused && o.out == outFailed)
		}
		for _, kind := range []opKind{opAttributes, opGet} {
			var o *op
			for try := 0; try < 60; try++ {
				o = &op{client: r.o.Clients, writer: max(info.owner, 0), kind: kind, key: k, final: true}
				if kind == opAttributes {
					r.attributes(ctx, o)
				} else {
					r.get(ctx, o)
				}
				if answered(o) {
					break
				}
				time.Sleep(r.pace.retry)
			}
			if !answered(o) {
				o.faults = append(o.faults, fmt.Sprintf("the final read still fails %v (%s) after reconcile settled", 60*r.pace.retry, r.pace.clock))
			}
		}
	}
}
