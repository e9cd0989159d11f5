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
	m := startCPUMeter(false)
	assert.True(t, m.ok, "per-thread CPU time is readable on Linux")
	time.Sleep(50 * time.Millisecond)
	debt, _, _ := m.read()
	assert.Less(t, debt, 25*time.Millisecond, "a sleeping thread used the CPU")
}

// A handler that ends on another thread than it began adds nothing: that
// thread's CPU time is not its own.
func TestBackfillYieldIgnoresAnotherThread(t *testing.T) {
	m := startCPUMeter(true)
	m.tid = -1 // as if it had begun on another thread
	debt, exact, _ := m.read()
	assert.Zero(t, debt)
	assert.Zero(t, exact)
}

// A handler counts as CPU-bound when its locked thread never waited and
// used at least the short slice's worth of CPU.
func TestCPUBound(t *testing.T) {
	assert.True(t, cpuBound(2*time.Millisecond, false))
	assert.True(t, cpuBound(minCPUBound, false))
	assert.False(t, cpuBound(2*time.Millisecond, true), "it waited")
	assert.False(t, cpuBound(minCPUBound-time.Microsecond, false), "too short to matter")
	assert.False(t, cpuBound(0, false))
}

// A thread that waits gives up its core: the meter sees it. One that
// keeps it does not.
func TestCPUMeterSeesWaits(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	m := startCPUMeter(true)
	for end := time.Now().Add(2 * time.Millisecond); time.Now().Before(end); {
	}
	_, exact, waited := m.read()
	assert.False(t, waited, "a busy loop waited")
	assert.GreaterOrEqual(t, exact, time.Millisecond, "a 2 ms busy loop's CPU time")
	m = startCPUMeter(true)
	time.Sleep(time.Millisecond)
	_, _, waited = m.read()
	assert.True(t, waited, "a sleep did not wait")
}
