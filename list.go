package failoverblob

import (
	"context"
	"encoding/binary"
	"errors"
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
// with ErrUnavailable unless Options.BestEffortList is set.
func (f *Failover) list(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	var tok listToken
	if len(opts.PageToken) > 0 {
		var err error
		if tok, err = decodeListToken(opts.PageToken); err != nil {
			return nil, err
		}
	}
	pageSize := opts.PageSize
	if pageSize <= 0 {
		pageSize = defaultPageSize
	}
	lopts := driver.ListOptions{
		Prefix:     opts.Prefix,
		Delimiter:  opts.Delimiter,
		PageSize:   pageSize,
		PageToken:  tok.sideToken,
		BeforeList: guardHook(opts.BeforeList, false),
	}
	fetch := func(s *side) (objs []*driver.ListObject, next []byte, err error) {
		var page *driver.ListPage
		err = s.call(ctx, f.opts.CallTimeout, func(ctx context.Context) (err error) {
			page, err = s.d.ListPaged(ctx, &lopts)
			return err
		})
		if err != nil {
			return nil, nil, err
		}
		return page.Objects, page.NextPageToken, nil
	}
	// The index is read before the side is: a repair acknowledged, or a
	// change committed, while the page is fetched must not make the page
	// and the index disagree about a key (the page would then show what the
	// index no longer stands for, or drop what it does). Read first, the
	// index can only be older than the page, and the page's objects then
	// stand for themselves.
	unsettled := f.idx.unsettled(opts.Prefix)
	keys, states := f.idx.snapshot(opts.Prefix)
	s := f.sides[tok.side]
	objs, next, err := fetch(s)
	if err != nil && s.outage(ctx, err) && len(opts.PageToken) == 0 &&
		(f.opts.Mode == Mirror || f.opts.BestEffortList) {
		s = f.sides[journal.Secondary]
		var err2 error
		if objs, next, err2 = fetch(s); err2 != nil {
			return nil, unavailable(errors.Join(err, err2), "both sides are down listing")
		}
		err = nil
	}
	switch {
	case err != nil && s.outage(ctx, err):
		return nil, unavailable(err, "listing needs the %s, which is down", s.id)
	case err != nil:
		return nil, err
	}

	// Keys in (tok.last, bound] belong to this side page; bound is open when
	// the side has no more pages.
	bound, more := "", len(next) > 0
	if more && len(objs) > 0 {
		bound = objs[len(objs)-1].Key
	}
	inRange := func(k string) bool { return k > tok.last && (!more || k <= bound) }
	// Served by the secondary, keys that may read differently on the two
	// sides (a change in progress, or one that failed and may or may not
	// have taken effect) are not listed as the secondary shows them: in
	// Mirror mode the listing is then unavailable, as a read of such a key
	// would be (see read); a best-effort listing leaves them out.
	if s.id == journal.Secondary && f.opts.Mode == Mirror {
		for k := range unsettled {
			if inRange(k) {
				return nil, unavailable(nil, "%q may read differently on the two sides, and the primary is down", k)
			}
		}
	}

	merged := make([]*driver.ListObject, 0, len(objs)+len(keys))
	seen := make(map[string]bool, len(objs))
	for _, o := range objs {
		if !inRange(o.Key) || strings.HasPrefix(o.Key, ReservedPrefix) || (s.id == journal.Secondary && unsettled[o.Key]) {
			continue
		}
		if st, ok := states[o.Key]; ok && !o.IsDir && (st.deleted || st.holder != s.id) {
			// Tombstoned, or the newest version is on the other side: this
			// object is stale, and the pending state below stands for it.
			continue
		}
		if o.IsDir && tombstoneUnder(keys, states, o.Key) {
			live, err := f.dirLive(ctx, s, o.Key, keys, states)
			if err != nil {
				return nil, err
			}
			if !live {
				continue // every object under it is deleted
			}
		}
		seen[o.Key] = true
		merged = append(merged, o)
	}
	for _, k := range keys {
		st := states[k]
		if st.deleted || strings.HasPrefix(k, ReservedPrefix) || (unsettled[k] && st.holder == s.id) {
			// A key being committed on the listed side, which reads go to,
			// is listed as that side shows it: the index catches up only
			// once the commit is done.
			continue
		}
		obj := &driver.ListObject{Key: k, ModTime: st.modTime, Size: st.size}
		if opts.Delimiter != "" {
			if i := strings.Index(k[len(opts.Prefix):], opts.Delimiter); i >= 0 {
				obj = &driver.ListObject{Key: k[:len(opts.Prefix)+i+len(opts.Delimiter)], IsDir: true}
			}
		}
		if !inRange(obj.Key) || seen[obj.Key] {
			continue
		}
		seen[obj.Key] = true
		merged = append(merged, obj)
	}
	sort.Slice(merged, func(i, j int) bool { return merged[i].Key < merged[j].Key })

	page := &driver.ListPage{Objects: merged}
	switch {
	case len(merged) > pageSize:
		// Return a full page and read the same side page again next time.
		page.Objects = merged[:pageSize]
		page.NextPageToken = listToken{side: s.id, sideToken: tok.sideToken, last: merged[pageSize-1].Key}.encode()
	case more:
		last := tok.last
		if len(merged) > 0 {
			last = merged[len(merged)-1].Key
		}
		page.NextPageToken = listToken{side: s.id, sideToken: next, last: last}.encode()
	}
	return page, nil
}

// tombstoneUnder reports whether a key under prefix has a pending delete.
func tombstoneUnder(keys []string, states map[string]pendingKey, prefix string) bool {
	i := sort.SearchStrings(keys, prefix)
	for ; i < len(keys) && strings.HasPrefix(keys[i], prefix); i++ {
		if states[keys[i]].deleted {
			return true
		}
	}
	return false
}

// dirLive reports whether the directory prefix, listed by s, holds an
// object that is not deleted: one on s without a pending delete, or a
// pending put. It is asked only of directories with a tombstone under them,
// so the extra listing is rare.
func (f *Failover) dirLive(ctx context.Context, s *side, prefix string, keys []string, states map[string]pendingKey) (bool, error) {
	i := sort.SearchStrings(keys, prefix)
	for ; i < len(keys) && strings.HasPrefix(keys[i], prefix); i++ {
		if !states[keys[i]].deleted {
			return true, nil
		}
	}
	opts := &driver.ListOptions{Prefix: prefix, PageSize: defaultPageSize}
	for {
		var page *driver.ListPage
		err := s.call(ctx, f.opts.CallTimeout, func(ctx context.Context) (err error) {
			page, err = s.d.ListPaged(ctx, opts)
			return err
		})
		if err != nil {
			if s.outage(ctx, err) {
				return false, unavailable(err, "listing needs the %s, which is down", s.id)
			}
			return false, err
		}
		for _, o := range page.Objects {
			if st, ok := states[o.Key]; !ok || !st.deleted {
				return true, nil
			}
		}
		if len(page.NextPageToken) == 0 {
			return false, nil
		}
		opts.PageToken = page.NextPageToken
	}
}
