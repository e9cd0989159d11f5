package consumer

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Backfill handlers on a short time slice (Config.BackfillShortSlice).
//
// The kernel (EEVDF, Linux 6.6+) lets a running thread keep its core until
// its time slice is used up (about 1.4 ms on two cores by default) before a
// thread woken on that core may preempt it; past that, the switch waits for
// the next scheduler tick (4 ms at HZ=250). A CPU-bound backfill handler
// therefore held Redis and the engine's production threads off its core
// for up to a tick. While production flows, a backfill handler whose
// predecessor on the same worker was CPU-bound (its thread never waited,
// see cpuBound) runs with the shortest slice the kernel accepts, so a
// woken thread preempts it sooner. A handler that waits (a database, an
// API) gives up its core at every wait anyway, and on a short
// slice it was slower on a machine whose cores other processes kept busy,
// so it keeps the default; so does a CPU-bound one those processes keep
// off the CPU. docs/architecture.md ("Backfill handlers on a short time
// slice") has the measurements.

// backfillSlice is a backfill handler's time slice while production flows:
// the smallest the kernel accepts.
const backfillSlice = 100_000 // ns

// noCustomSlices is set once the kernel refuses or ignores a custom slice
// (before Linux 6.12, or a policy other than the default): no more tries.
// slicesChecked is set once a slice set was read back as set.
var noCustomSlices, slicesChecked atomic.Bool

// shortenSlice gives the calling thread backfillSlice and returns its id,
// or 0 if it did not. The caller locks its goroutine to the thread first
// (see runOne) and passes the id to restoreSlice.
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

// restoreSlice gives thread tid the kernel's default slice again. Only the
// slice changes: the nice value read back is written back, so a thread
// lowered by Config.BackfillNice stays lowered.
func restoreSlice(tid int) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return
	}
	attr.Size = unix.SizeofSchedAttr
	attr.Runtime = 0 // the default
	_ = unix.SchedSetAttr(tid, attr, 0)
}
