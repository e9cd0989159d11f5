package consumer

import (
	"sync"
	"sync/atomic"
	"time"
)

// Backfill gives way in time (Config.BackfillYield).
//
// The lanes decide which message starts next, but once a backfill handler
// runs it competes for the CPU with everything production needs: the
// primary reader, the dispatcher, a production handler, the relay and the
// servers beside the engine. Go's scheduler has no priorities, so on a
// machine whose cores the backfill keeps busy, each of a production
// event's hand-offs waits for a core. While production entries are
// arriving (one was queued within productionWindow), a backfill worker
// therefore pauses for as long as its handlers have used the CPU since its
// last pause, before its next message: a CPU-bound backfill gets about half
// its slot's time, and the CPU it leaves is there when production needs it.
// A handler that mostly waits (a database, an API) uses little CPU and is
// hardly slowed: the debt is the CPU time of the handler's thread (Linux),
// not its wall time, and a handler that ended on another thread than it
// began adds nothing (its thread's time is not its own). Elsewhere the debt
// is the wall time. A pausing worker never makes production wait for its
// slot: at concurrency 1 the dispatcher lends the slot to primary while the
// worker pauses (lend.go); above it the pause ends at once when a primary
// entry is queued. It also ends when the consumer stops. Once production
// has been quiet for productionWindow, backfill runs flat out again.

const (
	// productionWindow is how long after the last primary entry production
	// counts as flowing.
	productionWindow = time.Second
	// minYield is the shortest pause worth a timer: shorter debts are kept
	// until they add up (a timer's sleep is not much finer).
	minYield = time.Millisecond
	// maxYield bounds one pause, and so the debt a worker carries.
	maxYield = 100 * time.Millisecond
)

// yielder is the consumer's state for the pauses: when production was last
// seen, and a channel closed to end every pause in progress.
type yielder struct {
	lastPrimary atomic.Int64 // UnixNano
	mu          sync.Mutex
	wake        chan struct{}
}

// primaryQueued records a primary entry.
func (y *yielder) primaryQueued(now time.Time) {
	y.lastPrimary.Store(now.UnixNano())
}

// wakeAll ends the pauses in progress.
func (y *yielder) wakeAll() {
	y.mu.Lock()
	if y.wake != nil {
		close(y.wake)
		y.wake = nil
	}
	y.mu.Unlock()
}

// woken is closed by the next wakeAll.
func (y *yielder) woken() <-chan struct{} {
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.wake == nil {
		y.wake = make(chan struct{})
	}
	return y.wake
}

// productionFlowing says whether a primary entry was queued within
// productionWindow of now.
func (y *yielder) productionFlowing(now time.Time) bool {
	return now.UnixNano()-y.lastPrimary.Load() < int64(productionWindow)
}

// backfillYield pauses a backfill worker whose handlers have run for owed
// since its last pause, if production is flowing. It returns the debt left,
// whether it paused, and whether its slot was lent to primary meanwhile
// (lend.go: the run then goes back unfinished). A pause ends early when the
// consumer stops, or above concurrency 1 when a primary entry is queued;
// the caller then checks preempt and halt as between any two messages.
func (c *Consumer) backfillYield(owed time.Duration) (left time.Duration, paused, lent bool) {
	now := time.Now()
	if !c.yield.productionFlowing(now) {
		return 0, false, false // no debt carried into a later production spell
	}
	if owed < minYield {
		return owed, false, false
	}
	woken := c.yield.woken()
	c.offerSlot()
	// preempt and halt are set before the wake-up and before a lend: read
	// after taking the channel and offering the slot, they cannot be missed.
	if c.preempt.Load() || c.halt.Load() {
		return owed, false, !c.reclaimSlot()
	}
	t := time.NewTimer(owed)
	defer t.Stop()
	select {
	case <-t.C:
	case <-woken:
	}
	return max(owed-time.Since(now), 0), true, !c.reclaimSlot()
}

// cpuMeter measures one handler: the CPU its thread used while it ran, or
// its wall time where threads' CPU time cannot be read.
type cpuMeter struct {
	tid         int
	used, exact time.Duration // threadCPU's two figures at the start
	waits       int64
	wantExact   bool
	began       time.Time
	ok          bool
}

// startCPUMeter starts measuring the calling thread; wantExact also reads
// its CPU clock, which only a handler locked to its thread needs (its
// CPU-bound test).
func startCPUMeter(wantExact bool) cpuMeter {
	tid, used, exact, waits, ok := threadCPU(wantExact)
	return cpuMeter{tid: tid, used: used, exact: exact, waits: waits, wantExact: wantExact, began: time.Now(), ok: ok}
}

// read is what the handler measured since m: debt adds to the worker's
// debt; exact is the thread's CPU time to the nanosecond, and waited
// whether the thread gave up its core to wait. exact is 0 where it was not
// asked for, cannot be read, or the handler ended on another thread.
func (m cpuMeter) read() (debt, exact time.Duration, waited bool) {
	if !m.ok {
		return time.Since(m.began), 0, true
	}
	tid, used, exactNow, waits, ok := threadCPU(m.wantExact)
	if !ok || tid != m.tid {
		return 0, 0, true
	}
	return used - m.used, exactNow - m.exact, waits != m.waits
}
