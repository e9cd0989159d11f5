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
