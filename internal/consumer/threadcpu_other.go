//go:build !linux

package consumer

import "time"

// threadCPU is Linux only (per-thread CPU time); elsewhere the yield counts
// a handler's wall time.
func threadCPU() (tid int, used time.Duration, ok bool) { return 0, 0, false }
