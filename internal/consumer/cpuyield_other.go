//go:build !linux

package consumer

// Time slices and sched_yield are Linux only here (cpuyield_linux.go).

func shortenSlice() (tid int) { return 0 }

func restoreSlice(tid int) {}

func offerCPU() {}
