package consumer

import (
	"fmt"
	"runtime"
	"syscall"
)

// lowerThreadPriority locks the calling goroutine to its OS thread for good
// and raises that thread's nice value by by (up to 19, the lowest
// priority). On Linux nice values are per thread. On failure the goroutine
// is unlocked again: its thread is unchanged.
func lowerThreadPriority(by int) error {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	// The raw getpriority result is 20 - nice (never negative).
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("read the thread's nice value: %w", err)
	}
	nice := min(20-raw+by, 19)
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("set the thread's nice value to %d: %w", nice, err)
	}
	return nil
}
