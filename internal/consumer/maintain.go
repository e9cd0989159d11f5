package consumer

import (
	"time"

	"github.com/laneway/laneway/lanewaybroker"
)

func (c *Consumer) maintain(now time.Time) {
	if due := c.retries.popDue(now); len(due) > 0 {
		c.runRetries(due)
	}
	if len(c.owned) > 0 && now.Sub(c.lastTouch) >= c.touchEvery() {
		c.lastTouch = now
		var stale []*tracked
		for _, t := range c.owned {
			if now.Sub(t.lastTouch) >= c.cfg.ClaimIdle/2 {
				stale = append(stale, t)
			}
		}
		if len(stale) > 0 {
			c.touch(stale)
		}
	}
	c.maybeRecoverOwn(now)
	c.maybeTakeover(now)
	if !c.stopping && now.Sub(c.lastReclaim) >= c.reclaimEvery() {
		c.lastReclaim = now // also when skipped, so a backoff does not spin the loop
		// Not while the broker is failing, nor within ReclaimGrace after
		// it answers again (as for takeovers): the other consumers could
		// not touch their entries during the outage, so an outage longer
		// than ClaimIdle leaves live consumers' entries, handled ones whose
		// acks are kept included, looking idle until their owners have
		// touched and acked them.
		if !c.down && !now.Before(c.retryAt) && !now.Before(c.tk.reclaimAfter) {
			// Handled entries waiting for their batched ack look idle to
			// XAUTOCLAIM: send the acks first.
			c.flushAcksNow()
			c.reclaim()
		}
	}
}

// runRetries claims due entries back to this consumer (which counts the new
// delivery) and queues them ahead of their lane.
func (c *Consumer) runRetries(due []retryItem) {
	byStream := map[string][]*tracked{}
	for _, it := range due {
		t, ok := c.owned[it.key]
		if !ok {
			continue
		}
		switch t.st {
		case stDLQWait:
			c.deadLetter(t)
		case stWaiting:
			byStream[t.msg.Stream] = append(byStream[t.msg.Stream], t)
		}
	}
	for stream, ts := range byStream {
		ids := make([]string, len(ts))
		for i, t := range ts {
			ids[i] = t.msg.EntryID
		}
		ctx, cancel := c.op()
		got, err := c.b.Claim(ctx, lanewaybroker.ClaimParams{Stream: stream, Group: c.cfg.Group, Consumer: c.cfg.Consumer, IDs: ids, RetryCount: -1, Idle: -1})
		cancel()
		if err != nil {
			c.brokerFailed("claim retry", err)
			for _, t := range ts {
				c.retries.add(retryItem{due: time.Now().Add(c.cfg.RetryDelay), key: t.key})
			}
			continue
		}
		present := map[string]bool{}
		for _, e := range got {
			present[e.ID] = true
		}
		var front []*tracked
		for _, t := range ts {
			if !present[t.msg.EntryID] {
				c.cfg.Logger.Warn("entry vanished before its retry", "stream", stream, "id", t.msg.EntryID)
				delete(c.owned, t.key)
				continue
			}
			t.deliveries++
			t.msg.Attempt = t.deliveries
			t.lastTouch = time.Now()
			t.st = stQueued
			front = append(front, t)
		}
		if len(front) > 0 {
			l := ts[0].lane
			c.queue[l] = append(front, c.queue[l]...)
		}
	}
}

// touch resets the idle time of entries this consumer holds (without
// counting a delivery) so another consumer's reclaim does not take them.
func (c *Consumer) touch(ts []*tracked) {
	type grp struct {
		stream string
		count  int64
	}
	groups := map[grp][]*tracked{}
	for _, t := range ts {
		g := grp{t.msg.Stream, t.deliveries}
		groups[g] = append(groups[g], t)
	}
	for g, list := range groups {
		ids := make([]string, len(list))
		for i, t := range list {
			ids[i] = t.msg.EntryID
		}
		ctx, cancel := c.op()
		_, err := c.b.Claim(ctx, lanewaybroker.ClaimParams{Stream: g.stream, Group: c.cfg.Group, Consumer: c.cfg.Consumer, IDs: ids, RetryCount: g.count, Idle: -1})
		cancel()
		if err != nil {
			c.brokerFailed("touch", err)
			return
		}
		now := time.Now()
		for _, t := range list {
			t.lastTouch = now
		}
	}
}

// reclaim takes over entries idle at least ClaimIdle on either lane
// (primary first) and queues them with their durable attempt counts.
func (c *Consumer) reclaim() {
	// An entry handled here whose ack is still batched or in flight is
	// pending and may be idle past ClaimIdle: XAUTOCLAIM would hand it back
	// and it would run twice. Flush first; reclaim once nothing is unacked.
	c.maybeFlushAcks(true)
	if c.ackN > 0 || c.ackSending != nil {
		return
	}
	lanes := []Lane{Primary}
	if c.lanes {
		lanes = append(lanes, Backfill)
	}
	for _, l := range lanes {
		if c.paused(l) {
			continue // a paused lane's idle entries wait where they are
		}
		// Page through the whole idle pending list in this tick (up to what
		// this consumer may hold): a page per tick left a large backlog of
		// orphaned entries waiting minutes.
		for more := true; more && len(c.owned) < c.holdLimit(); {
			more = c.reclaimPage(l)
		}
		if c.down {
			return
		}
	}
}

// reclaimPage claims one page of idle entries of lane and reports whether
// the scan has more to look at.
func (c *Consumer) reclaimPage(l Lane) bool {
	{
		stream := c.stream(l)
		ctx, cancel := c.op()
		res, err := c.b.AutoClaim(ctx, lanewaybroker.AutoClaimParams{Stream: stream, Group: c.cfg.Group, Consumer: c.cfg.Consumer, MinIdle: c.cfg.ClaimIdle, Start: c.claimCursor[l], Count: c.cfg.Count})
		cancel()
		if err != nil {
			c.brokerFailed("autoclaim", err)
			return false
		}
		c.claimCursor[l] = res.Next
		if res.Next == "" {
			c.claimCursor[l] = "0-0"
		}
		c.countRead(ReadClaim, len(res.Entries))
		if len(res.Entries) == 0 {
			return false
		}
		c.cfg.Logger.Info("reclaimed idle entries", "group", c.cfg.Group, "stream", stream, "n", len(res.Entries))
		ctx, cancel = c.op()
		pend, err := c.b.Pending(ctx, lanewaybroker.PendingParams{Stream: stream, Group: c.cfg.Group,
			Start: res.Entries[0].ID, End: res.Entries[len(res.Entries)-1].ID,
			Count: len(res.Entries) + len(c.owned) + 16, Consumer: c.cfg.Consumer})
		cancel()
		deliveries := map[string]int64{}
		if err != nil {
			c.brokerFailed("pending", err)
		} else {
			for _, p := range pend {
				deliveries[p.ID] = p.Deliveries
			}
		}
		c.addStreams([]lanewaybroker.StreamEntries{{Stream: stream, Entries: res.Entries}}, deliveries)
		return c.claimCursor[l] != "0-0"
	}
}
