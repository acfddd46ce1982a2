package failoverblob

import "time"

// watchdog cancels a call to a side that makes no progress for a while. It
// is armed only while the library waits on the side.
type watchdog struct{ t *time.Timer }

func newWatchdog(d time.Duration, cancel func()) watchdog {
	return watchdog{t: time.AfterFunc(d, cancel)}
}

// kick restarts the countdown at d.
func (w watchdog) kick(d time.Duration) { w.t.Reset(d) }

func (w watchdog) stop() { w.t.Stop() }
