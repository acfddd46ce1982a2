//go:build unix

package cputime

import (
	"syscall"
	"time"
)

// used returns the user and system CPU time the process has used so far.
func used() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
