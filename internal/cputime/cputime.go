// Package cputime reads the CPU time the process has used, for benchmarks
// that report it beside wall time: on a shared machine the wall time of a
// CPU-bound benchmark moves with the load from other processes, its CPU
// time much less.
package cputime

import "testing"

// Report runs a benchmark's timed loop, loop, and reports the process's
// user and system CPU time per operation as the metric "cpu-ns/op", where
// the platform says how much was used. Every goroutine in the process
// counts, the runtime's (the garbage collector) and in-process servers
// included.
func Report(b *testing.B, loop func()) {
	start, ok := used()
	loop()
	end, ok2 := used()
	if ok && ok2 && b.N > 0 {
		b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
	}
}
