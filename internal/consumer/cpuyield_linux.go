package consumer

import "syscall"

// offerCPU lets any thread waiting for this core run before the calling
// thread goes on. A backfill worker calls it after each message while
// production flows (yield.go): the kernel's scheduler lets a running
// thread finish its time slice before a thread woken on its core gets it,
// so with a CPU-bound backfill handler on a core, Redis and the engine's
// production threads woken there waited for the next scheduler tick (4 ms
// at HZ=250). docs/architecture.md, "A backfill handler gives way to the
// kernel too", has the measurements.
func offerCPU() {
	_, _, _ = syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
}
