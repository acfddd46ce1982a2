package journal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// BucketPrefix is where a Bucket journal keeps its entries on each side,
// under the failover bucket's reserved prefix (".failover/"), so they are
// hidden from its listings and refused as user keys.
const BucketPrefix = ".failover/journal/"

// ErrPartial is returned (wrapped) by a Bucket journal's List when a side
// could not be listed: the entries returned are those kept on the other
// side, if any. Test with errors.Is.
var ErrPartial = errors.New("journal: partial listing: a side could not be listed")

// Bucket is a Journal kept on the failover bucket's two sides themselves,
// so that a fleet of stateless instances shares it and a lost local disk
// loses nothing.
//
// Each entry is one immutable object under BucketPrefix, created with
// IfNotExist under a name no other writer uses (a random id chosen when
// the journal is opened, and a sequence number), so appends never contend
// and no object is ever rewritten (GCS allows about one write a second to
// one name). An entry is kept on the side that holds the data it describes
// (the side that is not Missing: the secondary, for a write redirected
// while the primary is down), or, if that side cannot be reached, on the
// other. The entry itself is encoded in the object's name where it fits,
// so that List reads the journal with LIST calls alone; an entry for a long
// key is read from the object's body. Ack deletes the objects.
//
// The journal writes nothing unless the failover bucket records a repair:
// while both sides are healthy and nothing is pending, the failover bucket
// appends nothing, and a List costs one LIST call per side.
//
// List returns each writer's entries in the order it appended them, and the
// writers one after another. When a side cannot be listed it returns the
// entries on the other side with an error wrapping ErrPartial.
type Bucket struct {
	sides   [2]*blob.Bucket
	timeout time.Duration
	writer  string
	seq     atomic.Uint64
}

var _ Journal = (*Bucket)(nil)

// BucketOptions configures a Bucket journal. The zero value is ready to
// use.
type BucketOptions struct {
	// CallTimeout bounds each call the journal makes to a side. Zero means
	// 10 seconds.
	CallTimeout time.Duration
}

// NewBucket returns a journal kept on primary and secondary, the failover
// bucket's sides, under BucketPrefix. It does not close them. nil opts is
// the zero BucketOptions.
func NewBucket(primary, secondary *blob.Bucket, opts *BucketOptions) *Bucket {
	var o BucketOptions
	if opts != nil {
		o = *opts
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 10 * time.Second
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	return &Bucket{sides: [2]*blob.Bucket{primary, secondary}, timeout: o.CallTimeout, writer: hex.EncodeToString(id[:])}
}

// The name of an entry object is
//
//	BucketPrefix + writer "/" seq "/" payload
//
// where seq is sixteen hex digits, so that one writer's entries list in the
// order it appended them, and payload is the entry (see encodeEntry) in
// unpadded base64url, cut into segments of at most segmentLen characters
// (fileblob keeps each segment as a file name, which file systems bound),
// or, for an entry too long to fit, longMarker and a hash of the entry, the
// entry being read from the object's body.
const (
	segmentLen  = 200
	maxPayload  = 640 // characters of base64 in a name
	longMarker  = "~"
	contentType = "application/octet-stream"
)

var b64 = base64.RawURLEncoding

// encodeEntry encodes the fields of e other than its ID.
func encodeEntry(e Entry) []byte {
	var b []byte
	b = append(b, byte(e.Op), byte(e.Missing))
	b = binary.AppendUvarint(b, uint64(len(e.Key)))
	b = append(b, e.Key...)
	b = binary.AppendUvarint(b, uint64(len(e.Version)))
	b = append(b, e.Version...)
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendVarint(b, e.Recorded.Unix())
	b = binary.AppendUvarint(b, uint64(e.Recorded.Nanosecond()))
	return b
}

// decodeEntry decodes what encodeEntry encoded.
func decodeEntry(b []byte) (Entry, error) {
	d := &decoder{p: b}
	op, missing := d.byte(), d.byte()
	key := d.string()
	version := d.string()
	size := d.varint()
	sec := d.varint()
	nsec := d.uvarint()
	if d.err != nil || len(d.p) != 0 || op > byte(Delete) || missing > byte(Secondary) || nsec >= 1e9 {
		return Entry{}, errors.New("journal: malformed entry object")
	}
	return Entry{Key: key, Op: Op(op), Version: version, Missing: Side(missing), Size: size, Recorded: time.Unix(sec, int64(nsec))}, nil
}

// objectName returns the name of the object for e, appended by this
// journal's writer as number seq.
func (j *Bucket) objectName(e Entry, seq uint64, payload []byte) string {
	var b strings.Builder
	b.WriteString(BucketPrefix)
	b.WriteString(j.writer)
	fmt.Fprintf(&b, "/%016x/", seq)
	enc := b64.EncodeToString(payload)
	if len(enc) > maxPayload {
		sum := sha256.Sum256(payload)
		b.WriteString(longMarker)
		b.WriteString(hex.EncodeToString(sum[:16]))
		return b.String()
	}
	for i := 0; i < len(enc); i += segmentLen {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(enc[i:min(i+segmentLen, len(enc))])
	}
	return b.String()
}

// sideCode names the side an entry object is kept on, in its ID; bothCode
// says it may be kept on both: its append on one side failed (and may
// have stored it all the same) before it was stored on the other.
var sideCode = [2]string{"p:", "s:"}

const bothCode = "b:"

// Appended reports whether the entry with ID id (as Append or List
// returned it) was appended through this journal, rather than by another
// instance sharing its storage or by an earlier opening of it.
func (j *Bucket) Appended(id string) bool {
	for _, code := range append(sideCode[:], bothCode) {
		if name, ok := strings.CutPrefix(id, code); ok {
			return strings.HasPrefix(name, BucketPrefix+j.writer+"/")
		}
	}
	return false
}

// Append implements Journal. It writes the entry on the side that is not
// e.Missing, or on the other side if that one fails. The entry is durable
// as the side's storage is once Append returns nil. If both writes fail,
// either may have stored it: the ID returned with the error names it on
// both sides.
func (j *Bucket) Append(ctx context.Context, e Entry) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if e.Recorded.IsZero() {
		e.Recorded = time.Now()
	}
	payload := encodeEntry(e)
	name := j.objectName(e, j.seq.Add(1), payload)
	first := e.Missing.Other()
	var errs []error
	for _, s := range []Side{first, first.Other()} {
		err := j.call(ctx, func(ctx context.Context) error {
			return j.sides[s].WriteAll(ctx, name, payload, &blob.WriterOptions{
				ContentType: contentType, IfNotExist: true, DisableContentTypeDetection: true,
			})
		})
		if err == nil {
			if len(errs) > 0 {
				return bothCode + name, nil
			}
			return sideCode[s] + name, nil
		}
		if ctx.Err() != nil {
			return bothCode + name, err
		}
		errs = append(errs, fmt.Errorf("on the %s: %w", s, err))
	}
	// A write that failed may have stored the entry on either side.
	return bothCode + name, fmt.Errorf("journal: appending an entry for %q: %w", e.Key, errors.Join(errs...))
}

// call runs fn with the journal's per-call deadline.
func (j *Bucket) call(ctx context.Context, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	return fn(cctx)
}

// List implements Journal: it lists BucketPrefix on both sides. If a side
// cannot be listed, it returns the other side's entries (none, if neither
// can be listed) and an error wrapping ErrPartial.
func (j *Bucket) List(ctx context.Context) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Both sides are listed at once, and merged as if one after the other.
	var listed [2][]Entry
	var listErrs [2]error
	var wg sync.WaitGroup
	for _, s := range []Side{Primary, Secondary} {
		wg.Go(func() { listed[s], listErrs[s] = j.listSide(ctx, s) })
	}
	wg.Wait()
	var all []Entry
	var errs []error
	at := map[string]int{} // entries by object name
	for _, s := range []Side{Primary, Secondary} {
		es, err := listed[s], listErrs[s]
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			errs = append(errs, fmt.Errorf("listing the %s: %w", s, err))
			continue
		}
		for _, e := range es {
			// An entry whose append failed on one side and was retried on
			// the other may be on both: it is one entry, kept on both.
			name := e.ID[len(sideCode[s]):]
			if i, ok := at[name]; ok {
				all[i].ID = bothCode + name
				continue
			}
			at[name] = len(all)
			all = append(all, e)
		}
	}
	if len(errs) > 0 {
		// An entry found on the side listed may be kept on the other one
		// too (see bothCode): its acknowledgement must remove it there
		// as well, or a later listing would find it again.
		for i := range all {
			all[i].ID = bothCode + all[i].ID[len(bothCode):]
		}
		return all, fmt.Errorf("%w: %w", ErrPartial, errors.Join(errs...))
	}
	return all, nil
}

// listSide returns the entries kept on side s, in name order.
func (j *Bucket) listSide(ctx context.Context, s Side) ([]Entry, error) {
	b := j.sides[s]
	var out []Entry
	token := blob.FirstPageToken
	for {
		var objs []*blob.ListObject
		var next []byte
		var err error
		// fileblob fails a listing that meets a file deleted while it
		// reads the directory (an entry acknowledged meanwhile): try again.
		for try := 0; try < 3; try++ {
			err = j.call(ctx, func(ctx context.Context) (err error) {
				objs, next, err = b.ListPage(ctx, token, 1000, &blob.ListOptions{Prefix: BucketPrefix})
				return err
			})
			if gcerrors.Code(err) != gcerrors.NotFound {
				break
			}
		}
		if err != nil {
			return nil, err
		}
		token = next
		for _, o := range objs {
			if _, _, _, err := entryInName(o.Key); err != nil {
				// Not an entry this journal wrote (a driver's leftover
				// temporary file, say): it would fail every listing of
				// the side for good, and with it every repair that
				// waits for a whole listing.
				continue
			}
			e, err := j.entryOf(ctx, b, o.Key)
			switch {
			case gcerrors.Code(err) == gcerrors.NotFound:
				continue // acknowledged since it was listed
			case err != nil:
				return nil, err
			}
			e.ID, e.Stored = sideCode[s]+o.Key, o.ModTime
			out = append(out, e)
		}
		if len(token) == 0 {
			return out, nil
		}
	}
}

// EntryInName returns the entry that the object a Bucket journal keeps it
// in, named name, holds in its name, and the id of the journal that
// appended it (each Bucket chooses one at random): for tools and tests
// that watch the journal's objects. ok is
// false for a name that is not an entry object's, and for an entry too
// long to be held in a name (its object's body holds it). The entry's ID
// and Stored are not set.
func EntryInName(name string) (e Entry, writer string, ok bool) {
	e, writer, inBody, err := entryInName(name)
	return e, writer, err == nil && !inBody
}

// entryInName decodes the entry in the name of the object named name;
// inBody says the name holds only a hash of it, and the object's body the
// entry.
func entryInName(name string) (e Entry, writer string, inBody bool, err error) {
	rest, found := strings.CutPrefix(name, BucketPrefix)
	parts := strings.SplitN(rest, "/", 3)
	if !found || len(parts) != 3 {
		return Entry{}, "", false, fmt.Errorf("journal: %q is not an entry object", name)
	}
	if strings.HasPrefix(parts[2], longMarker) {
		return Entry{}, parts[0], true, nil
	}
	payload, err := b64.DecodeString(strings.ReplaceAll(parts[2], "/", ""))
	if err != nil {
		return Entry{}, "", false, fmt.Errorf("journal: %q is not an entry object: %w", name, err)
	}
	e, err = decodeEntry(payload)
	return e, parts[0], false, err
}

// entryOf decodes the entry in the object named name, from the name where
// it is there, or else from the object's body.
func (j *Bucket) entryOf(ctx context.Context, b *blob.Bucket, name string) (Entry, error) {
	e, _, inBody, err := entryInName(name)
	if err != nil || !inBody {
		return e, err
	}
	var payload []byte
	err = j.call(ctx, func(ctx context.Context) (err error) {
		payload, err = b.ReadAll(ctx, name)
		return err
	})
	if err != nil {
		return Entry{}, err
	}
	return decodeEntry(payload)
}

// Ack implements Journal: it deletes the entry objects, a few at a time.
// Unknown IDs, and objects already gone, are ignored.
func (j *Bucket) Ack(ctx context.Context, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 8)
	)
	for _, id := range ids {
		sides, name, ok := parseID(id)
		if !ok {
			continue
		}
		for _, s := range sides {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				err := j.call(ctx, func(ctx context.Context) error { return j.sides[s].Delete(ctx, name) })
				if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("journal: acknowledging entries: %w", errors.Join(errs...))
	}
	return nil
}

// parseID returns the sides and object name an ID stands for.
func parseID(id string) ([]Side, string, bool) {
	if name, ok := strings.CutPrefix(id, bothCode); ok && strings.HasPrefix(name, BucketPrefix) {
		return []Side{Primary, Secondary}, name, true
	}
	for s, code := range sideCode {
		if name, ok := strings.CutPrefix(id, code); ok && strings.HasPrefix(name, BucketPrefix) {
			return []Side{Side(s)}, name, true
		}
	}
	return nil, "", false
}
