package consumer

import (
	"time"

	"github.com/laneway/laneway/lanewaybroker"
)

func (c *Consumer) shutdown() {
	c.stopping = true
	c.halt.Store(true)
	c.inline.CompareAndSwap(inlineArmed, inlineOff)
	c.yield.wakeAll() // a pausing backfill worker stops pausing
	if c.gate != nil {
		c.gate.leave() // a stopping consumer starts nothing, and holds no one
	}
	c.readCancelAll()
	began := time.Now()
	timeout := time.NewTimer(c.cfg.ShutdownTimeout)
	defer timeout.Stop()
	cancelHandlers := func() {
		c.handlerCancel()
	}
	for c.sl.PrimaryInflight+c.sl.BackfillInflight > 0 || c.reading != 0 || c.primaryInPipeline() {
		select {
		case r := <-c.results:
			c.onRunResult(r)
		case rr := <-c.readDone:
			c.reading = 0
			if rr.err == nil {
				c.addDecoded(rr.streams, nil, rr.decoded) // pending on us now: handed back below
			}
		case a := <-c.pArrived:
			c.onPrimaryArrived(a)
		case rr := <-c.pReadDone:
			c.onPrimaryReply(rr)
		case <-timeout.C:
			cancelHandlers()
		case <-c.hardStop:
			cancelHandlers()
		}
	}
	c.handlerCancel()
	c.flushAcksAtStop(began.Add(c.cfg.ShutdownTimeout))
	c.release()
	c.deleteSelfIfEmpty()
	close(c.work[Primary])
	close(c.work[Backfill])
	c.hwg.Wait()
	c.rwg.Wait()
}

// release hands every entry still held back to the group with its idle time
// set to ClaimIdle, so the next consumer claims it at once. Entries whose
// current delivery was never (fully) attempted get their count lowered by
// one, so the claim that follows does not count an attempt.
func (c *Consumer) release() {
	type grp struct {
		stream string
		count  int64
	}
	groups := map[grp][]string{}
	for _, t := range c.owned {
		rc := t.deliveries
		if t.st == stQueued || t.st == stCancelled {
			rc = max(rc-1, 0)
		}
		g := grp{t.msg.Stream, rc}
		groups[g] = append(groups[g], t.msg.EntryID)
	}
	for g, ids := range groups {
		ctx, cancel := c.op()
		_, err := c.b.Claim(ctx, lanewaybroker.ClaimParams{Stream: g.stream, Group: c.cfg.Group, Consumer: c.cfg.Consumer, IDs: ids, RetryCount: g.count, Idle: c.cfg.ClaimIdle})
		cancel()
		if err != nil {
			c.cfg.Logger.Warn("could not hand entries back at shutdown; they stay pending", "stream", g.stream, "n", len(ids), "error", err)
		}
	}
}
