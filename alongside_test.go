package failoverblob

import (
	"testing"

	"github.com/failoverblob/failoverblob/journal"
)

// An alongside entry's Size reads back as the object's size, and tells
// an alongside entry from an ordinary put and from an unseen tombstone.
func TestAlongsideSizeReadsBack(t *testing.T) {
	for _, n := range []int64{0, 1, 1 << 40} {
		e := journal.Entry{Op: journal.Put, Size: alongsideSize(n)}
		if got := e.ObjectSize(); got != n {
			t.Errorf("ObjectSize of an alongside entry of %d bytes = %d", n, got)
		}
		if !alongsideEntry(e.Op, e.Size) || unseenEntry(e.Op, e.Size) {
			t.Errorf("an alongside entry of %d bytes: alongside %t, unseen %t", n, alongsideEntry(e.Op, e.Size), unseenEntry(e.Op, e.Size))
		}
		if o := (journal.Entry{Op: journal.Put, Size: n}); alongsideEntry(o.Op, o.Size) || o.ObjectSize() != n {
			t.Errorf("an ordinary put of %d bytes: alongside %t, ObjectSize %d", n, alongsideEntry(o.Op, o.Size), o.ObjectSize())
		}
	}
	if alongsideEntry(journal.Delete, unseenSize) || alongsideEntry(journal.Delete, -5) {
		t.Error("a tombstone taken for an alongside entry")
	}
}
