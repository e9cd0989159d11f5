package consumer

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A backfill handler's thread gets the shortest slice while it runs and the
// default one after; where the kernel has no custom slices, nothing is
// changed and no further tries are made.
func TestShortenSliceSetsAndRestoresTheThreadsSlice(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := unix.SchedGetAttr(0, 0)
	require.NoError(t, err)

	if tid := shortenSlice(); tid != 0 {
		assert.Equal(t, unix.Gettid(), tid)
		during, err := unix.SchedGetAttr(0, 0)
		require.NoError(t, err)
		assert.EqualValues(t, backfillSlice, during.Runtime)
		assert.Equal(t, before.Nice, during.Nice, "the nice value is kept")
		restoreSlice(tid)
		after, err := unix.SchedGetAttr(0, 0)
		require.NoError(t, err)
		assert.NotEqualValues(t, backfillSlice, after.Runtime)
		assert.Equal(t, before.Nice, after.Nice)
	} else {
		assert.True(t, noCustomSlices.Load(), "a refused slice is not tried again")
		now, err := unix.SchedGetAttr(0, 0)
		require.NoError(t, err)
		assert.NotEqualValues(t, backfillSlice, now.Runtime)
	}
}

// A thread whose nice value was raised (backfill_nice) keeps it through a
// shortened slice: the slice must never lower it back (an unprivileged
// process cannot, and must not try).
func TestShortenSliceKeepsARaisedNiceValue(t *testing.T) {
	done := make(chan struct{})
	var before, during, after *unix.SchedAttr
	var shortened int
	// The pool's threads stay lowered for the life of the process.
	require.NoError(t, runLowPriority(3, func() {
		defer close(done)
		before, _ = unix.SchedGetAttr(0, 0)
		shortened = shortenSlice()
		during, _ = unix.SchedGetAttr(0, 0)
		if shortened != 0 {
			restoreSlice(shortened)
		}
		after, _ = unix.SchedGetAttr(0, 0)
	}, nil))
	<-done
	require.NotNil(t, before, "the thread's priority could be lowered")
	require.NotNil(t, during)
	require.NotNil(t, after)
	assert.Equal(t, before.Nice, during.Nice)
	assert.Equal(t, before.Nice, after.Nice)
	if shortened != 0 {
		assert.EqualValues(t, backfillSlice, during.Runtime)
	}
}

// The handler's goroutine may end on another thread than it began: the
// thread that was shortened is the one restored, from wherever.
func TestRestoreSliceAppliesToTheShortenedThread(t *testing.T) {
	tids := make(chan int)
	check := make(chan uint64)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- shortenSlice()
		<-check
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			check <- 1
			return
		}
		check <- attr.Runtime
	}()
	tid := <-tids
	if tid == 0 {
		assert.True(t, noCustomSlices.Load())
		check <- 0
		<-check
		return
	}
	assert.NotEqual(t, unix.Gettid(), tid, "restored from another thread")
	restoreSlice(tid)
	check <- 0
	assert.NotEqualValues(t, backfillSlice, <-check)
}
