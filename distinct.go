package failoverblob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"gocloud.dev/blob/driver"

	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/journal"
)

// ErrSameStorage is returned (wrapped) by Drain and Run when the primary and
// the secondary turn out to be the same storage under two handles: the
// reconciler's removal of a temporary copy would then remove the only copy.
var ErrSameStorage = errors.New("failoverblob: the primary and the secondary are the same storage")

// checkDistinct makes sure, once, that the two sides are not the same
// storage: a marker written under the reserved prefix of the secondary must
// not appear on the primary. Its calls go to the sides without their
// breakers, so as not to take a half-open breaker's probe from the repairs;
// while a breaker is open it does not try.
func (f *Failover) checkDistinct(ctx context.Context) error {
	if f.distinct.Load() {
		return nil
	}
	pr, sec := f.sides[journal.Primary], f.sides[journal.Secondary]
	for _, s := range f.sides {
		if s.br.State() == circuit.StateOpen {
			return unavailable(nil, "the %s is down; the reconciler needs both sides", s.id)
		}
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	key := ReservedPrefix + "identity/" + hex.EncodeToString(id[:])
	timeout := f.opts.CallTimeout
	err := sec.direct(ctx, timeout, func(ctx context.Context) error {
		return sec.writeSmall(ctx, key, []byte("written on the secondary; must not be seen on the primary"), nil)
	})
	if err != nil {
		return fmt.Errorf("failoverblob: checking that the sides are distinct storage: %w", err)
	}
	defer func() {
		_ = sec.direct(ctx, timeout, func(ctx context.Context) error { return sec.d.Delete(ctx, key, &driver.DeleteOptions{}) })
	}()
	err = pr.direct(ctx, timeout, func(ctx context.Context) error {
		_, err := pr.d.Attributes(ctx, key)
		return err
	})
	switch {
	case err == nil:
		f.opts.Logger.Error("failoverblob: the primary and the secondary are the same storage; the reconciler will not run")
		return ErrSameStorage
	case !isNotFound(err):
		return fmt.Errorf("failoverblob: checking that the sides are distinct storage: %w", err)
	}
	f.distinct.Store(true)
	return nil
}
