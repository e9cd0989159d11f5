package consumer

import (
	"syscall"
	"time"
)

// rusageThread is getrusage's RUSAGE_THREAD (Linux).
const rusageThread = 1

// threadCPU is the calling thread's id and the CPU time it has used, ok
// false when they cannot be read.
func threadCPU() (tid int, used time.Duration, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, 0, false
	}
	return syscall.Gettid(), time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
