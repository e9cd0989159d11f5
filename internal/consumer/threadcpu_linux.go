package consumer

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU reads the calling thread's id, two figures of the CPU time it
// has used, and how many times it has given up its core to wait (its
// voluntary context switches); ok false when they cannot be read. exact is
// read only when wantExact (one more system call).
//
// used is getrusage's, which the kernel brings up to date only at a
// scheduler tick or a context switch: for one short handler it moves in
// steps of a tick (0 or 4 ms for a 2 ms handler at HZ=250), right on
// average. backfill_yield's debt has always been measured with it, and was
// tuned with it. exact is the thread's CPU clock, right to the nanosecond:
// what tells, with waits, whether one handler was CPU-bound (the short
// slice).
func threadCPU(wantExact bool) (tid int, used, exact time.Duration, waits int64, ok bool) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0, 0, 0, 0, false
	}
	if wantExact {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
			return 0, 0, 0, 0, false
		}
		exact = time.Duration(ts.Nano())
	}
	return unix.Gettid(), time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), exact, ru.Nvcsw, true
}
