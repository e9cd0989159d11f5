package consumer

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU is the calling thread's id and the CPU time it has used, ok
// false when they cannot be read. The thread's CPU clock is exact to the
// nanosecond; getrusage's per-thread figure moves in scheduler ticks (4 ms
// at HZ=250), too coarse for one handler.
func threadCPU() (tid int, used time.Duration, ok bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, 0, false
	}
	return unix.Gettid(), time.Duration(ts.Nano()), true
}
