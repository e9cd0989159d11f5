package consumer

import (
	"context"
	"time"
)

// Control is the operator's hold on one consumer's lanes, kept outside the
// consumer so it can be shared by every engine of a domain (the lane
// controls live in Redis): a paused lane is neither read nor started, the
// backfill lane may be held to a shared rate, and a governor may lower the
// backfill's slots below BackfillConcurrency.
//
// State and Changed are called from the consumer's dispatcher and must not
// block; TakeBackfill may do I/O (one round trip) and is called only while
// State().Throttled.
type Control interface {
	// Changed receives a value whenever State may have changed. The
	// consumer wakes on it even while a blocking read is outstanding, and
	// cuts that read short, so a pause takes effect without waiting for
	// the read's BLOCK to run out.
	Changed() <-chan struct{}
	// State is the current view.
	State() ControlState
	// TakeBackfill asks for up to n backfill handler starts. It returns how
	// many may start now and, when none, how long to wait before asking
	// again.
	TakeBackfill(ctx context.Context, n int) (granted int, wait time.Duration)
}

// ControlState is what a Control asks of the consumer.
type ControlState struct {
	// PrimaryPaused and BackfillPaused stop reading and starting that
	// lane's entries. In-flight handlers finish; entries already read stay
	// pending on this consumer, queued, until the lane is resumed.
	PrimaryPaused, BackfillPaused bool
	// BackfillConcurrency, when positive, lowers the backfill slot limit
	// (never raises it above BackfillConcurrency). 0 keeps the configured
	// limit.
	BackfillConcurrency int
	// Throttled means every backfill start needs a grant from TakeBackfill.
	Throttled bool
}

// tokenTTL bounds how long granted backfill starts are kept unused (a run
// cut short by preemption gives its grants back). Older grants are dropped,
// so a consumer never spends, in a burst, grants it got long ago.
const tokenTTL = 250 * time.Millisecond

// control is the consumer's side of Config.Control, owned by the dispatcher.
type control struct {
	st        ControlState
	tokens    int
	tokensAt  time.Time
	waitUntil time.Time // no grant before this
}

// ctlChanged is Config.Control's signal, or nil (never ready) without one.
func (c *Consumer) ctlChanged() <-chan struct{} {
	if c.cfg.Control == nil {
		return nil
	}
	return c.cfg.Control.Changed()
}

// loadControl applies the Control's current state. A read in flight is cut
// short so the next read follows the new state: a paused lane must not be
// read (what is read becomes pending on this consumer), and a resumed lane
// should be read at once rather than after the read's BLOCK.
func (c *Consumer) loadControl() {
	if c.cfg.Control == nil {
		return
	}
	st := c.cfg.Control.State()
	old := c.ctl.st
	c.ctl.st = st
	c.sl.BackfillCap = c.bfCap
	if st.BackfillConcurrency > 0 {
		c.sl.BackfillCap = max(1, min(c.bfCap, st.BackfillConcurrency))
	}
	if !st.Throttled {
		c.ctl.tokens, c.ctl.waitUntil = 0, time.Time{}
	}
	if old.PrimaryPaused != st.PrimaryPaused || old.BackfillPaused != st.BackfillPaused {
		c.cfg.Logger.Info("lane controls changed", "group", c.cfg.Group, "consumer", c.cfg.Consumer,
			"primary", c.cfg.Primary, "primary_paused", st.PrimaryPaused,
			"backfill", c.cfg.Backfill, "backfill_paused", st.BackfillPaused)
		if c.readCancel != nil {
			c.readCancel()
			c.readCancel = nil
		}
		if st.PrimaryPaused {
			c.cancelPrimaryRead()
		}
	}
}

// paused reports whether lane l is paused (a lane that does not exist, the
// backfill with lanes off, counts as paused).
func (c *Consumer) paused(l Lane) bool {
	if l == Backfill {
		return !c.lanes || c.ctl.st.BackfillPaused
	}
	return c.ctl.st.PrimaryPaused
}

// plan is planRead with the paused lanes left out: one lane paused reads
// the other alone (backfill alone may block only because primary is
// paused), both paused reads nothing.
func (c *Consumer) plan() readPlan {
	pP, pB := c.paused(Primary), c.paused(Backfill)
	qP, qB := len(c.queue[Primary]), len(c.queue[Backfill])
	if c.primaryReader {
		// Primary has its own read: this one reads backfill alone, a
		// batch ahead of its handlers (the entries in a run count: at
		// concurrency 1 a run takes the whole queue).
		if !pB && qB+c.inRuns[Backfill] <= c.cfg.Count {
			return readPlan{Mode: ReadBackfill, Count: c.cfg.Count}
		}
		return readPlan{}
	}
	switch {
	case !pP && !pB:
		return planRead(c.sl, qP, qB, c.cfg.Count, c.lanes)
	case !pP:
		p := planRead(c.sl, qP, 0, c.cfg.Count, false)
		return p
	case !pB:
		if qB <= c.cfg.Count {
			return readPlan{Mode: ReadBackfill, Count: c.cfg.Count}
		}
	}
	return readPlan{}
}

// readStreams are the streams a read of kind k asks for.
func (c *Consumer) readStreams(k ReadMode) []string {
	switch k {
	case ReadBlockingBoth:
		return []string{c.cfg.Primary, c.cfg.Backfill}
	case ReadBackfill:
		return []string{c.cfg.Backfill}
	}
	return []string{c.cfg.Primary}
}

// backfillGrants is how many backfill messages may start now, at most
// want: unlimited (want) when not throttled, else the grants held or
// fetched from the Control.
func (c *Consumer) backfillGrants(want int) int {
	if !c.ctl.st.Throttled || want <= 0 {
		return want
	}
	now := time.Now()
	if c.ctl.tokens > 0 && now.Sub(c.ctl.tokensAt) > tokenTTL {
		c.ctl.tokens = 0
	}
	if c.ctl.tokens > 0 {
		return min(c.ctl.tokens, want)
	}
	if now.Before(c.ctl.waitUntil) {
		return 0
	}
	ctx, cancel := c.op()
	got, wait := c.cfg.Control.TakeBackfill(ctx, want)
	cancel()
	if got <= 0 {
		c.ctl.waitUntil = time.Now().Add(min(max(wait, time.Millisecond), time.Second))
		return 0
	}
	c.ctl.tokens, c.ctl.tokensAt = got, time.Now()
	return min(got, want)
}

// grantWant is how many backfill starts to ask for at once: what the free
// backfill slots can start now. Asking for more would hold grants other
// consumers could use, and see them expire unused.
func (c *Consumer) grantWant() int {
	return max(1, min(c.sl.BackfillCap-c.sl.BackfillInflight, maxRun))
}

// spendBackfill records n backfill starts against the grants held.
func (c *Consumer) spendBackfill(n int) {
	if c.ctl.st.Throttled {
		c.ctl.tokens = max(c.ctl.tokens-n, 0)
	}
}

// refundBackfill gives back the grants of n backfill messages a run did not
// start.
func (c *Consumer) refundBackfill(n int) {
	if c.ctl.st.Throttled && n > 0 {
		c.ctl.tokens += n
	}
}

// controlWake is when a throttled backfill may ask for grants again (zero:
// nothing to wait for).
func (c *Consumer) controlWake() time.Time {
	if c.ctl.st.Throttled && c.ctl.tokens == 0 && len(c.queue[Backfill]) > 0 && !c.paused(Backfill) {
		return c.ctl.waitUntil
	}
	return time.Time{}
}
