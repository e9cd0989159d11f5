package consumer

import (
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// The kernel's side of a backfill giving way (yield.go). Go's scheduler
// has no priorities, and the kernel's scheduler lets a running thread finish
// its time slice before a thread woken on its core gets it: with a CPU-bound backfill
// handler on a core, Redis and the engine's production threads woken on
// that core waited for the next scheduler tick (4 ms at HZ=250). While
// production is flowing, a backfill handler therefore runs with the
// shortest time slice the kernel allows, so that a thread woken on its
// core preempts it, and its thread offers the core to any waiting thread
// after each message. docs/architecture.md, "A backfill handler gives way to
// the kernel too", has the measurements.

// backfillSlice is the time slice of a thread running a backfill handler
// while production flows: the smallest the kernel accepts.
const backfillSlice = 100_000 // ns

// noCustomSlices is set once the kernel refuses or ignores a custom slice
// (before Linux 6.12, or a policy other than the default): no more tries.
// slicesChecked is set once a slice set was read back as set.
var noCustomSlices, slicesChecked atomic.Bool

// shortenSlice gives the calling thread backfillSlice and returns its id,
// or 0 if it did not. restoreSlice takes that id: the runtime may move the
// handler's goroutine to another thread meanwhile, and it is the shortened
// thread that must get its default back.
func shortenSlice() (tid int) {
	if noCustomSlices.Load() {
		return 0
	}
	tid = unix.Gettid()
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil || (attr.Policy != unix.SCHED_NORMAL && attr.Policy != unix.SCHED_BATCH) {
		noCustomSlices.Store(true)
		return 0
	}
	attr.Size = unix.SizeofSchedAttr
	attr.Runtime = backfillSlice
	if err := unix.SchedSetAttr(tid, attr, 0); err != nil {
		noCustomSlices.Store(true)
		return 0
	}
	if !slicesChecked.Load() {
		// A kernel without custom slices accepts the value and ignores it.
		if got, err := unix.SchedGetAttr(tid, 0); err != nil || got.Runtime != backfillSlice {
			noCustomSlices.Store(true)
			restoreSlice(tid)
			return 0
		}
		slicesChecked.Store(true)
	}
	return tid
}

// restoreSlice gives thread tid the kernel's default slice again.
func restoreSlice(tid int) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return
	}
	attr.Size = unix.SizeofSchedAttr
	attr.Runtime = 0 // the default
	_ = unix.SchedSetAttr(tid, attr, 0)
}

// offerCPU lets any thread waiting for this core run before the calling
// thread goes on.
func offerCPU() {
	_, _, _ = syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
}
