package consumer

import (
	"errors"
	"runtime"
	"time"
)

// Handler workers.
//
// Each lane has its own long-lived workers, as many as the lane's handler
// slots can have runs in flight (Concurrency for primary, the backfill cap
// for backfill: the lane controls only lower it); the dispatcher's slots
// (sched.go) decide how many actually run. Long-lived
// workers (rather than a goroutine per message) keep their grown stacks: a
// fresh goroutine grew its stack again for every message a real handler
// ran.
//
// With Config.BackfillNice the backfill workers run on OS threads of their
// own whose nice value is that much above the process's (lower priority).
// On a machine whose cores are all busy, the kernel then gives the CPU to
// the process's other threads first (the primary reader, the dispatcher,
// primary handlers) and to the Redis and database servers beside it, so a
// production entry that arrives during a CPU-heavy backfill is read,
// dispatched and started without waiting for the backfill handler's time
// slice. The lanes decide which message starts next; the nice value decides
// who gets the CPU once both are running. A thread's priority can be
// lowered but not raised back without privileges, so these threads never
// serve anything else; they are kept for the life of the process and lent
// to the backfill workers of every consumer (lowthreads.go).
//
// What a backfill handler does on goroutines of its own is not covered, nor
// is the handler under Config.HandlerTimeout, which runs on a goroutine of
// its own so that a hung handler can be left behind.

// startWorkers starts both lanes' workers.
func (c *Consumer) startWorkers() {
	c.hwg.Add(c.cfg.Concurrency)
	for range c.cfg.Concurrency {
		go c.worker(Primary)
	}
	if !c.lanes {
		return
	}
	c.hwg.Add(c.bfCap)
	for i := range c.bfCap {
		if c.cfg.BackfillNice > 0 {
			// The worker is counted done only once its thread is back in
			// the pool: a consumer started after Stop then borrows it.
			err := runLowPriority(c.cfg.BackfillNice, func() { c.runWorker(Backfill) }, c.hwg.Done)
			if err == nil {
				continue
			}
			if i == 0 {
				if errors.Is(err, errors.ErrUnsupported) {
					c.cfg.Logger.Debug("backfill handlers run at the process's CPU priority (per-thread priority is Linux only)", "group", c.cfg.Group)
				} else {
					c.cfg.Logger.Warn("backfill handlers run at the process's CPU priority", "group", c.cfg.Group, "error", err)
				}
			}
		}
		go c.worker(Backfill)
	}
}

// worker runs lane's handlers until the dispatcher closes its work.
func (c *Consumer) worker(lane Lane) {
	defer c.hwg.Done()
	c.runWorker(lane)
}

// runWorker is worker's loop, for a caller that counts it done itself.
func (c *Consumer) runWorker(lane Lane) {
	st := workerState{probeGap: 1} // the first handler is a probe
	for r := range c.work[lane] {
		c.results <- c.runOne(r, &st)
	}
}

// workerState is what a backfill worker carries from one message to the
// next while production flows.
type workerState struct {
	// owed is handler CPU time not yet paused for (yield.go).
	owed time.Duration
	// cpuBound says the last handler measured ran without waiting (see
	// cpuBound). Only then does the next handler get the short slice
	// (slice_linux.go).
	cpuBound bool
	// sinceProbe counts the handlers run unmeasured since the last
	// measured one; the next is measured once it reaches probeGap. The
	// gap doubles, up to probeEvery, after each handler measured not
	// CPU-bound, and is 1 again after one that was: a CPU-bound migration
	// whose probe happened to wait (for the collector, say) is found again
	// soon, and one that waits pays for few probes.
	sinceProbe, probeGap int
}

// probeEvery is how often a backfill worker not on the short slice
// measures a handler, while production flows (Config.BackfillShortSlice).
// A measured handler runs locked to its thread: only then is the thread's
// CPU time the handler's own, since an unlocked goroutine that waits
// leaves its thread to others (with eight backfill slots, waiting handlers
// passed for CPU-bound that way). Locking costs a handler that waits:
// its thread hands its processor to another and sleeps, and a short timer
// it waits for may then fire up to a millisecond late (one probe in 16
// added 4-5 s to a 15 s drain of 100,000 handlers that sleep 1 µs). So it
// is done for at most one handler in probeEvery (see workerState). A
// handler on the short slice is locked, and so measured, anyway.
const probeEvery = 256

// cpuBound says whether a handler measured locked to its thread was
// CPU-bound: its thread never gave up its core to wait (being preempted
// does not count: that is what the short slice is for) and used at least
// minCPUBound. A handler that waits even briefly, for a timer or a
// socket, blocks its locked thread.
func cpuBound(cpu time.Duration, waited bool) bool {
	return !waited && cpu >= minCPUBound
}

// minCPUBound is the least CPU time of a CPU-bound handler: the short
// slice itself. A handler that ends sooner seldom holds a core long enough
// for a slice to matter.
const minCPUBound = 100 * time.Microsecond

// runOne runs r's messages in order until one preempts the rest. st is the
// worker's state between messages (backfill).
func (c *Consumer) runOne(r run, st *workerState) runResult {
	out := runResult{lane: r.lane, done: make([]result, 0, len(r.ts))}
	began := time.Now()
	// now is the last clock read: the end of the previous handler, or a
	// fresh read after anything that may have taken time between two
	// handlers (a pause, the CPU meter's system calls). One read per
	// message instead of three: on virtual machines the clock is a
	// measurable share of a no-op handler's cost.
	now := began
	yields := r.lane == Backfill && c.cfg.BackfillYield
	shortens := r.lane == Backfill && c.cfg.BackfillShortSlice
	for i, t := range r.ts {
		paused, lent := false, false
		if yields {
			if st.owed, paused, lent = c.backfillYield(st.owed); lent {
				out.unstarted, out.lent = r.ts[i:], true
				break
			}
			if paused {
				now = time.Now()
			}
		}
		if (i > 0 || paused) && (c.halt.Load() || now.Sub(began) >= r.budget || (r.lane == Backfill && (c.preempt.Load() || c.gateHeld()))) {
			out.unstarted = r.ts[i:]
			break
		}
		var meter cpuMeter
		shortened := 0 // the thread given a short time slice (slice_linux.go)
		locked := false
		if (yields || shortens) && c.yield.productionFlowing(now) {
			if shortens && (st.cpuBound || st.sinceProbe+1 >= st.probeGap) {
				// Locked for the handler, and before the meter starts: its
				// thread's CPU time is its own (probeEvery), no other
				// goroutine runs on a shortened thread, and a thread the
				// runtime starts meanwhile does not inherit the slice (the
				// runtime starts threads for a locked one from a clean
				// thread of its own).
				runtime.LockOSThread()
				locked = true
			}
			meter = startCPUMeter(locked)
			if locked && st.cpuBound {
				shortened = shortenSlice()
			}
		}
		begin := now
		if !meter.began.IsZero() {
			begin = time.Now() // after the meter's start
		}
		err := c.safeHandle(&t.msg)
		if shortened != 0 {
			restoreSlice(shortened)
		}
		if locked {
			runtime.UnlockOSThread()
		}
		cancelled := err != nil && c.handlerCtx.Err() != nil
		if err != nil && !cancelled && c.cfg.Outage != nil && c.cfg.Outage(err) {
			// The database is down: not an attempt. This message and the
			// rest of the run go back, in order, with their delivery counts.
			out.outage, out.unstarted = err, r.ts[i:]
			break
		}
		now = time.Now()
		d := now.Sub(begin)
		out.done = append(out.done, result{t: t, err: err, d: d, cancelled: cancelled})
		if !meter.began.IsZero() {
			debt, exact, waited := meter.read()
			if yields {
				st.owed = min(st.owed+debt, maxYield)
			}
			if locked {
				st.cpuBound, st.sinceProbe = cpuBound(exact, waited), 0
				if st.cpuBound {
					st.probeGap = 1
				} else {
					st.probeGap = min(2*st.probeGap, probeEvery)
				}
			} else {
				st.sinceProbe++
			}
			now = time.Now() // after the meter's system calls
		}
	}
	return out
}
