package consumer

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A backfill handler that waits uses little CPU, so the yield hardly slows
// it: its debt is its thread's CPU time, not its wall time.
func TestBackfillYieldCountsCPUNotWaiting(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	m := startCPUMeter()
	assert.True(t, m.ok, "per-thread CPU time is readable on Linux")
	time.Sleep(50 * time.Millisecond)
	assert.Less(t, m.debt(), 25*time.Millisecond, "a sleeping thread used the CPU")
}

// A handler that ends on another thread than it began adds nothing: that
// thread's CPU time is not its own.
func TestBackfillYieldIgnoresAnotherThread(t *testing.T) {
	m := startCPUMeter()
	m.tid = -1 // as if it had begun on another thread
	assert.Zero(t, m.debt())
}

// A handler counts as CPU-bound when its thread was on the CPU for most of
// its wall time, and not when the thread used more than that (it ran other
// goroutines while the handler waited) or nothing at all.
func TestCPUBound(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		cpu, wall time.Duration
		want      bool
	}{
		{2 * ms, 2 * ms, true},
		{1900 * time.Microsecond, 2 * ms, true},
		{1600 * time.Microsecond, 2 * ms, true},
		{1500 * time.Microsecond, 2 * ms, false},
		{100 * time.Microsecond, 2 * ms, false},
		{0, 2 * ms, false},
		{0, 0, false},
		{2200 * time.Microsecond, 2 * ms, true},
		{2300 * time.Microsecond, 2 * ms, false},
		{2670 * time.Microsecond, 2100 * time.Microsecond, false},
		{100 * time.Microsecond, 110 * time.Microsecond, true},
		{25 * time.Microsecond, 30 * time.Microsecond, false},
	} {
		assert.Equal(t, c.want, cpuBound(c.cpu, c.wall), "cpu %s wall %s", c.cpu, c.wall)
	}
}
