//go:build !linux

package consumer

// offerCPU is Linux only here (sched_yield, cpuyield_linux.go).
func offerCPU() {}
