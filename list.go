package failoverblob

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"sort"
	"strings"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/journal"
)

// defaultPageSize is the page size asked of a side when the caller sets none.
const defaultPageSize = 1000

// listToken is where a listing stands: the side it reads, the side's token
// for the page to read next, and the last key returned to the caller.
// Pending work is merged into each side page, so one side page may yield
// more than one of our pages; the side token is then kept and the keys up to
// last are skipped.
type listToken struct {
	side      journal.Side
	sideToken []byte
	last      string
}

func (t listToken) encode() []byte {
	b := []byte{byte(t.side)}
	b = binary.AppendUvarint(b, uint64(len(t.last)))
	b = append(b, t.last...)
	return append(b, t.sideToken...)
}

func decodeListToken(b []byte) (listToken, error) {
	bad := errors.New("failoverblob: malformed list page token")
	if len(b) < 2 || b[0] > 1 {
		return listToken{}, bad
	}
	n, w := binary.Uvarint(b[1:])
	if w <= 0 || uint64(len(b)-1-w) < n {
		return listToken{}, bad
	}
	rest := b[1+w:]
	return listToken{side: journal.Side(b[0]), last: string(rest[:n]), sideToken: rest[n:]}, nil
}

// list implements ListPaged: a page of the serving side merged with the keys
// that have pending work (pending puts appear, tombstoned keys do not), with
// the reserved prefix hidden. In Redirect mode with the primary down it fails
// with ErrUnavailable unless Options.BestEffortList is set. A listing whose
// side fails part-way goes on from the other side where that side holds
// every key (Mirror mode) or a partial list is allowed (BestEffortList),
// starting after the last key returned.
func (f *Failover) list(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	if err := f.journalKnown(ctx); err != nil {
		return nil, err
	}
	if err := f.keptRecorded(ctx, opts.Prefix, true); err != nil {
		return nil, err
	}
	l := &lister{f: f, ctx: ctx, opts: opts, pageSize: opts.PageSize}
	if len(opts.PageToken) > 0 {
		var err error
		if l.tok, err = decodeListToken(opts.PageToken); err != nil {
			return nil, err
		}
	}
	if l.pageSize <= 0 {
		l.pageSize = defaultPageSize
	}
	if err := l.resolve(); err != nil {
		return nil, err
	}
	// The index is read before the side is: a repair acknowledged, or a
	// change committed, while the page is fetched must not make the page
	// and the index disagree about a key (the page would then show what the
	// index no longer stands for, or drop what it does). Read first, the
	// index can only be older than the page, and the page's objects then
	// stand for themselves.
	if f.opts.Mode == Mirror {
		l.committing = f.idx.committing(opts.Prefix)
	}
	l.keys, l.states = f.idx.snapshot(opts.Prefix)
	l.lostSinceResolve()
	objs, next, err := l.fetch()
	if err != nil {
		return nil, err
	}
	return l.page(objs, next)
}

// lister is one call of list.
type lister struct {
	f        *Failover
	ctx      context.Context
	opts     *driver.ListOptions
	tok      listToken
	pageSize int
	s        *side // the side the page comes from

	keys       []string            // pending keys with a known state, sorted
	states     map[string]keyState // their states
	committing map[string]bool     // Mirror: keys with a change being committed
	unresolved map[string]error    // keys whose state could not be resolved
	refused    map[string]bool     // keys a side refuses to answer about
	stopAt     string              // keys from here on are left for the next page
}

// resolve resolves the state of the keys in the listing's way whose state
// is unknown (see keyState), up to a page of them, so that none is listed,
// or left out, on the strength of a journal entry. The page stops short of
// the first key left for later.
func (l *lister) resolve() error {
	unknown := l.f.idx.unknown(l.opts.Prefix, l.tok.last, l.pageSize+1)
	if len(unknown) > l.pageSize {
		l.stopAt, unknown = unknown[l.pageSize], unknown[:l.pageSize]
	}
	for _, k := range unknown {
		if _, _, err := l.f.state(l.ctx, k); err != nil {
			if l.f.refusedNowhere(l.ctx, k, err, l.f.opts.BestEffortList) {
				l.refuse(k)
				continue
			}
			if !errors.Is(err, ErrUnavailable) {
				return err
			}
			if l.unresolved == nil {
				l.unresolved = map[string]error{}
			}
			l.unresolved[k] = err
		}
	}
	return nil
}

// takeState takes into the listing the state of k that the index holds
// now, and reports whether there is one to list it by: a known state, or
// none at all (k has no pending work left, and the side's object stands for
// itself).
func (l *lister) takeState(k string) bool {
	p, ok := l.f.idx.get(k)
	switch {
	case !ok:
		return true
	case !p.known:
		return false
	}
	i := sort.SearchStrings(l.keys, k)
	if i == len(l.keys) || l.keys[i] != k {
		l.keys = append(l.keys, "")
		copy(l.keys[i+1:], l.keys[i:])
		l.keys[i] = k
	}
	l.states[k] = p
	return true
}

// refuse leaves the key k out of the listing: a side refuses to answer
// about it, and neither side holds it (see Failover.refusedNowhere).
func (l *lister) refuse(k string) {
	if l.refused == nil {
		l.refused = map[string]bool{}
	}
	l.refused[k] = true
}

// lostSinceResolve resolves again the keys whose state became unknown
// after resolve and before the index was read (a change of one that failed
// part-way, or a reading of the journal that took in another instance's
// entries of it), and takes in the state found, read before the side is.
// One that cannot be resolved is counted as unresolved: neither is there
// a state to list it by, nor may the side's object stand for itself, since
// the other side may hold a newer version. A key a side refuses (see
// refuse) is left out instead: a change of it fails every time.
func (l *lister) lostSinceResolve() {
	for _, k := range l.f.idx.unknown(l.opts.Prefix, l.tok.last, math.MaxInt) {
		if _, ok := l.unresolved[k]; ok || l.refused[k] || l.stopAt != "" && k >= l.stopAt {
			continue
		}
		_, _, err := l.f.state(l.ctx, k)
		if err != nil && l.f.refusedNowhere(l.ctx, k, err, l.f.opts.BestEffortList) {
			l.refuse(k)
			continue
		}
		if err == nil && l.takeState(k) {
			continue
		}
		if l.unresolved == nil {
			l.unresolved = map[string]error{}
		}
		l.unresolved[k] = unavailable(nil, "a change of %q failed while it was listed, and which side holds its newest version is not known", k)
	}
}

// canMove reports whether a listing may go on from the secondary when the
// side it reads fails.
func (l *lister) canMove() bool { return l.f.opts.Mode == Mirror || l.f.opts.BestEffortList }

// fetch reads the side page the token points at. If its side is down and
// the listing can move, it reads the secondary instead: from its first page
// when the listing was on the primary, skipping the keys already returned.
func (l *lister) fetch() (objs []*driver.ListObject, next []byte, err error) {
	l.s = l.f.sides[l.tok.side]
	objs, next, err = l.fetchFrom(l.ctx, l.s, l.tok.sideToken)
	if err == nil || !l.s.outage(l.ctx, err) {
		return objs, next, err
	}
	if l.s.id == journal.Primary && l.canMove() {
		sec := l.f.sides[journal.Secondary]
		var err2 error
		if objs, next, err2 = l.fetchFrom(l.f.failingOver(l.ctx, opList, err), sec, nil); err2 == nil {
			l.s, l.tok.sideToken = sec, nil
			return objs, next, nil
		}
		return nil, nil, unavailable(errors.Join(err, err2), "both sides are down listing")
	}
	return nil, nil, unavailable(err, "listing needs the %s, which is down", l.s.id)
}

func (l *lister) fetchFrom(ctx context.Context, s *side, token []byte) (objs []*driver.ListObject, next []byte, err error) {
	lopts := driver.ListOptions{
		Prefix:     l.opts.Prefix,
		Delimiter:  l.opts.Delimiter,
		PageSize:   l.pageSize,
		PageToken:  token,
		BeforeList: guardHook(l.opts.BeforeList, false),
	}
	var page *driver.ListPage
	err = s.call(ctx, opList, l.f.opts.CallTimeout, func(ctx context.Context) (err error) {
		page, err = s.d.ListPaged(ctx, &lopts)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return page.Objects, page.NextPageToken, nil
}

// page merges the side page objs (whose side token for the page after it is
// next) with the pending work, and returns the failover bucket's page.
func (l *lister) page(objs []*driver.ListObject, next []byte) (*driver.ListPage, error) {
	more := len(next) > 0
	inRange := l.sideRange(objs, more)
	if err := l.checkUnsettled(inRange); err != nil {
		return nil, err
	}
	merged, err := l.merge(objs, inRange)
	if err != nil {
		return nil, err
	}
	held := l.stopAt != "" && inRange(l.stopAt)
	if held {
		// Keys from stopAt on wait until their state is resolved.
		i := sort.Search(len(merged), func(i int) bool { return merged[i].Key >= l.stopAt })
		merged = merged[:i]
	}
	if len(merged) > l.pageSize {
		// Return a full page and read the same side page again next time.
		return &driver.ListPage{
			Objects:       merged[:l.pageSize],
			NextPageToken: l.token(l.tok.sideToken, merged[l.pageSize-1].Key),
		}, nil
	}
	page := &driver.ListPage{Objects: merged}
	last := l.tok.last
	if len(merged) > 0 {
		last = merged[len(merged)-1].Key
	}
	switch {
	case held:
		page.NextPageToken = l.token(l.tok.sideToken, last)
	case more:
		page.NextPageToken = l.token(next, last)
	}
	return page, nil
}

// sideRange returns whether a key belongs to the side page objs: keys in
// (tok.last, bound], bound being the page's last key, or open when the side
// has no more pages.
func (l *lister) sideRange(objs []*driver.ListObject, more bool) func(string) bool {
	bound := ""
	if more && len(objs) > 0 {
		bound = objs[len(objs)-1].Key
	}
	return func(k string) bool { return k > l.tok.last && (!more || k <= bound) }
}

// token is the page token of a listing that goes on from sideToken on the
// side it reads, after the key last.
func (l *lister) token(sideToken []byte, last string) []byte {
	return listToken{side: l.s.id, sideToken: sideToken, last: last}.encode()
}

// checkUnsettled fails the page if a key in its range may read differently
// on the two sides without the index knowing which is right: a key whose
// state could not be resolved, or, served by the secondary in Mirror mode,
// a key with a change being committed. Reads of such keys are unavailable
// too (see read); a best-effort listing leaves them out instead.
func (l *lister) checkUnsettled(inRange func(string) bool) error {
	for k, err := range l.unresolved {
		if inRange(k) && !l.f.opts.BestEffortList {
			return err
		}
	}
	if l.s.id == journal.Secondary && l.f.opts.Mode == Mirror {
		for k := range l.committing {
			if inRange(k) {
				return unavailable(nil, "%q may read differently on the two sides, and the primary is down", k)
			}
		}
	}
	return nil
}

// hidden reports whether an object of the side page stands for nothing the
// listing shows: reserved, out of range, or superseded by pending work.
func (l *lister) hidden(o *driver.ListObject, inRange func(string) bool) bool {
	if !inRange(o.Key) || strings.HasPrefix(o.Key, ReservedPrefix) || l.unresolved[o.Key] != nil || l.refused[o.Key] {
		return true
	}
	if l.s.id == journal.Secondary && l.committing[o.Key] {
		return true
	}
	// Tombstoned, or the newest version is on the other side: the object
	// is stale, and the pending state stands for it.
	st, ok := l.states[o.Key]
	return ok && !o.IsDir && (st.deleted || !st.on[l.s.id])
}

// merge returns, sorted, the side page's objects that stand and the pending
// puts in range.
func (l *lister) merge(objs []*driver.ListObject, inRange func(string) bool) ([]*driver.ListObject, error) {
	merged := make([]*driver.ListObject, 0, len(objs)+len(l.keys))
	seen := make(map[string]bool, len(objs))
	for _, o := range objs {
		stands, err := l.stands(o, inRange)
		if err != nil {
			return nil, err
		}
		if stands {
			seen[o.Key] = true
			merged = append(merged, o)
		}
	}
	for _, k := range l.keys {
		obj := l.pendingObject(k)
		if obj == nil || !inRange(obj.Key) || seen[obj.Key] {
			continue
		}
		seen[obj.Key] = true
		merged = append(merged, obj)
	}
	sort.Slice(merged, func(i, j int) bool { return merged[i].Key < merged[j].Key })
	return merged, nil
}

// stands reports whether an object of the side page is listed: it is not
// hidden, and, if it is a directory, something under it is neither deleted
// nor reserved.
func (l *lister) stands(o *driver.ListObject, inRange func(string) bool) (bool, error) {
	if l.hidden(o, inRange) {
		return false, nil
	}
	if o.IsDir && (tombstoneUnder(l.keys, l.states, o.Key) || strings.HasPrefix(ReservedPrefix, o.Key)) {
		return l.dirLive(o.Key)
	}
	return true, nil
}

// pendingObject returns what the pending key k, whose state is known, adds
// to the listing: its object, or under the delimiter its directory; nil if
// it is deleted, or being committed on the listed side.
func (l *lister) pendingObject(k string) *driver.ListObject {
	st := l.states[k]
	if st.deleted || (l.committing[k] && st.on[l.s.id]) {
		// A key being committed on the listed side, which reads go to, is
		// listed as that side shows it: the index catches up only once the
		// commit is done.
		return nil
	}
	prefix, delim := l.opts.Prefix, l.opts.Delimiter
	if delim != "" {
		if i := strings.Index(k[len(prefix):], delim); i >= 0 {
			return &driver.ListObject{Key: k[:len(prefix)+i+len(delim)], IsDir: true}
		}
	}
	return &driver.ListObject{Key: k, ModTime: st.modTime, Size: st.size}
}

// tombstoneUnder reports whether a key under prefix has a pending delete.
func tombstoneUnder(keys []string, states map[string]keyState, prefix string) bool {
	i := sort.SearchStrings(keys, prefix)
	for ; i < len(keys) && strings.HasPrefix(keys[i], prefix); i++ {
		if states[keys[i]].deleted {
			return true
		}
	}
	return false
}

// dirLive reports whether the directory prefix holds an object that is not
// deleted and not reserved: a pending put, or an object on the listed side
// without a pending delete. It is asked only of directories with a
// tombstone under them, or that the reserved prefix lies in, so the extra
// listing is rare. If the listed side fails and the listing can move, the
// secondary answers.
func (l *lister) dirLive(prefix string) (bool, error) {
	i := sort.SearchStrings(l.keys, prefix)
	for ; i < len(l.keys) && strings.HasPrefix(l.keys[i], prefix); i++ {
		if !l.states[l.keys[i]].deleted {
			return true, nil
		}
	}
	live, err := l.scanDir(l.ctx, l.s, prefix)
	if err != nil && l.s.outage(l.ctx, err) && l.s.id == journal.Primary && l.canMove() {
		var err2 error
		if live, err2 = l.scanDir(l.f.failingOver(l.ctx, opList, err), l.f.sides[journal.Secondary], prefix); err2 != nil {
			return false, unavailable(errors.Join(err, err2), "both sides are down listing")
		}
		return live, nil
	}
	if err != nil && l.s.outage(l.ctx, err) {
		return false, unavailable(err, "listing needs the %s, which is down", l.s.id)
	}
	return live, err
}

// scanDir lists prefix on s, looking for an object that is not deleted and
// not reserved. Where the reserved prefix lies under prefix, the listing
// uses its delimiter, so that the library's own objects fold into one
// entry that is skipped, however many there are.
func (l *lister) scanDir(ctx context.Context, s *side, prefix string) (bool, error) {
	opts := &driver.ListOptions{Prefix: prefix, PageSize: defaultPageSize}
	if strings.HasPrefix(ReservedPrefix, prefix) {
		opts.Delimiter = "/"
	}
	for {
		var page *driver.ListPage
		err := s.call(ctx, opList, l.f.opts.CallTimeout, func(ctx context.Context) (err error) {
			page, err = s.d.ListPaged(ctx, opts)
			return err
		})
		if err != nil {
			return false, err
		}
		if live, err := l.liveIn(ctx, s, page.Objects); live || err != nil {
			return live, err
		}
		if len(page.NextPageToken) == 0 {
			return false, nil
		}
		opts.PageToken = page.NextPageToken
	}
}

// liveIn reports whether objs, a page of a listing of s, holds an object
// that is not deleted and not reserved, directly or under a directory.
func (l *lister) liveIn(ctx context.Context, s *side, objs []*driver.ListObject) (bool, error) {
	for _, o := range objs {
		switch {
		case strings.HasPrefix(o.Key, ReservedPrefix):
		case o.IsDir:
			if live, err := l.scanDir(ctx, s, o.Key); live || err != nil {
				return live, err
			}
		default:
			if st, ok := l.states[o.Key]; !ok || !st.deleted {
				return true, nil
			}
		}
	}
	return false, nil
}
