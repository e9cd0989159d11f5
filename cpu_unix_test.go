//go:build unix

package laneway_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process has used (user + system), for
// benchmarks that report CPU per message: on a shared machine it moves far
// less with the load than wall time does.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
