package consumer

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
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
	// A garbage collection's stop parks the locked thread, a real wait the
	// meter rightly sees: the busy loop gets a few attempts, each after a
	// collection, and one must go without a wait.
	var exact time.Duration
	waited := true
	for attempt := 0; attempt < 5 && waited; attempt++ {
		runtime.GC()
		m := startCPUMeter(true)
		busyCPU(t, 2*time.Millisecond)
		_, exact, waited = m.read()
	}
	assert.False(t, waited, "a busy loop waited in every attempt")
	assert.GreaterOrEqual(t, exact, 2*time.Millisecond, "the CPU time of a loop that used 2 ms")
	// A sleep parks the thread on a futex. On a loaded machine the thread
	// can be preempted on its way there until the timer has fired, and then
	// the futex returns without a switch the kernel counts as a wait: a few
	// attempts, one of which must be seen.
	waited = false
	for attempt := 0; attempt < 5 && !waited; attempt++ {
		m := startCPUMeter(true)
		time.Sleep(5 * time.Millisecond)
		_, _, waited = m.read()
	}
	assert.True(t, waited, "a sleep did not wait in any attempt")
}

// busyCPU spins until the calling thread has used d of CPU, not for d of
// wall time: on a loaded machine a thread can be kept off its core for most
// of that.
func busyCPU(t *testing.T, d time.Duration) {
	t.Helper()
	read := func() time.Duration {
		var ts unix.Timespec
		require.NoError(t, unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts))
		return time.Duration(ts.Nano())
	}
	began := read()
	for read()-began < d {
		for end := time.Now().Add(100 * time.Microsecond); time.Now().Before(end); {
		}
	}
}
