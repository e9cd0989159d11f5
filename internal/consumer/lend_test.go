package consumer

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func lendingConsumer() *Consumer {
	return &Consumer{lends: true, sl: slots{Concurrency: 1, BackfillCap: 1, BackfillInflight: 1}}
}

// A pausing worker's slot is lent to primary: primary may start, backfill
// may not, the worker finds the slot lent, and the slot is free again once
// the run is back.
func TestLendPausingSlot(t *testing.T) {
	c := lendingConsumer()
	require.False(t, c.sl.canStart(Primary), "the backfill run holds the only slot")
	require.False(t, c.lendSlot(), "a worker that is not pausing keeps its slot")

	c.offerSlot()
	require.True(t, c.lendSlot())
	assert.Equal(t, 1, c.sl.Lent)
	assert.True(t, c.sl.canStart(Primary), "the entry starts on the lent slot")
	assert.False(t, c.sl.canStart(Backfill), "no backfill beside the paused run")
	assert.False(t, c.lendSlot(), "a slot is lent once")
	c.sl.PrimaryInflight++
	assert.False(t, c.sl.canStart(Primary), "one handler at concurrency 1")

	assert.False(t, c.reclaimSlot(), "the worker finds its slot lent")
	c.sl.BackfillInflight--
	c.slotReturned()
	c.sl.PrimaryInflight--
	assert.Zero(t, c.sl.Lent)
	assert.Equal(t, slotFree, c.lendState.Load())
	assert.True(t, c.sl.canStart(Backfill))
}

// The worker that takes its slot back first keeps it: the dispatcher cannot
// lend it any more.
func TestLendWorkerFirst(t *testing.T) {
	c := lendingConsumer()
	c.offerSlot()
	require.True(t, c.reclaimSlot())
	assert.False(t, c.lendSlot())
	assert.False(t, c.sl.canStart(Primary))
}

// Without lending (above concurrency 1, or BackfillYield off) nothing is
// lent and the worker always keeps its slot.
func TestLendOff(t *testing.T) {
	c := lendingConsumer()
	c.lends = false
	c.offerSlot()
	assert.False(t, c.lendSlot())
	assert.True(t, c.reclaimSlot())
}

// A pause whose slot is lent meanwhile sleeps out its debt (the entry does
// not cut it short) and reports the lend, so the run goes back unfinished.
func TestBackfillYieldReportsLend(t *testing.T) {
	c := lendingConsumer()
	c.yield.primaryQueued(time.Now())
	type out struct {
		left          time.Duration
		paused, lentT bool
	}
	done := make(chan out, 1)
	go func() {
		left, paused, lent := c.backfillYield(20 * time.Millisecond)
		done <- out{left, paused, lent}
	}()
	for c.lendState.Load() != slotOffered {
		time.Sleep(100 * time.Microsecond)
	}
	c.preempt.Store(true)
	require.True(t, c.lendSlot())
	select {
	case o := <-done:
		assert.True(t, o.paused)
		assert.True(t, o.lentT)
		assert.Zero(t, o.left, "the whole debt was paused")
	case <-time.After(30 * time.Second):
		require.Fail(t, "the pause did not end")
	}
}

// A primary entry queued as the worker goes into its pause is either seen
// by the worker (it does not pause) or lent the slot: never neither, and
// never both a lend and a worker that goes on.
//
// The worker's pause is long and ends when the dispatcher's side is done
// (wakeAll), so the entry is always queued before the pause or during it.
// With a pause of a millisecond, a dispatcher goroutine started late on a
// loaded machine found the pause already over, and the slot rightly free
// (it failed so once in CI).
func TestLendRace(t *testing.T) {
	for range 2000 {
		c := lendingConsumer()
		c.yield.primaryQueued(time.Now())
		var wg sync.WaitGroup
		var paused, lent, dispatcherLent atomic.Bool
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, p, l := c.backfillYield(time.Minute)
			paused.Store(p)
			lent.Store(l)
		}()
		go func() {
			defer wg.Done()
			c.preempt.Store(true) // queued, then dispatched
			dispatcherLent.Store(c.lendSlot())
			c.yield.wakeAll()
		}()
		wg.Wait()
		require.Equal(t, dispatcherLent.Load(), lent.Load(), "the worker and the dispatcher disagree on the lend")
		require.True(t, dispatcherLent.Load() || !paused.Load(), "the worker paused holding the slot while an entry waited")
	}
}
