//go:build !linux

package consumer

import "time"

// threadCPU is Linux only (per-thread CPU time); elsewhere the yield counts
// a handler's wall time, and no handler counts as CPU-bound.
func threadCPU(wantExact bool) (tid int, used, exact time.Duration, waits int64, ok bool) {
	return 0, 0, 0, 0, false
}
