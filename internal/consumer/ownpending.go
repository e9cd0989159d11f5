package consumer

import (
	"time"

	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
)

// A read, probe or claim whose reply is lost (the connection dropped, Redis
// was killed after writing its append-only file but before answering, a
// deadline passed) leaves entries in this consumer's own pending list that
// it never saw. No one else takes them: this consumer is alive and its
// heartbeat says so, and the idle reclaim waits ClaimIdle. So after any
// broker failure the consumer lists its own pending entries and claims back
// the ones it does not hold, once the broker answers again.
//
// The check waits takeoverMinIdle after the last failure, and lists and
// claims only entries idle that long: an entry some other consumer claimed
// meanwhile (a takeover, the idle reclaim) has a fresh idle time and is left
// to it (without the guard the claim would take it back, and both
// consumers would run it). An entry delivered by a lost reply was
// delivered before the failure, so it is old enough when the check runs.

// maybeRecoverOwn runs the own-pending check when one is due. Not while a
// read is in flight: its reply may carry the very entries the list shows.
func (c *Consumer) maybeRecoverOwn(now time.Time) {
	if !c.ownCheck || c.stopping || c.reading != 0 || c.primaryInPipeline() || now.Before(c.retryAt) || now.Before(c.ownCheckAt) {
		return
	}
	for _, l := range c.laneList() {
		if !c.recoverOwn(l) {
			return // a failure or no room: again on a later tick
		}
	}
	c.ownCheck = false
}

// recoverOwn claims back the entries of lane's stream pending on this
// consumer that it neither holds nor has acked. It reports whether the
// whole list was checked.
func (c *Consumer) recoverOwn(l Lane) bool {
	stream := c.stream(l)
	recovered := 0
	defer func() {
		if recovered > 0 {
			c.cfg.Logger.Warn("claimed back entries delivered to this consumer whose reply was lost", "group", c.cfg.Group, "stream", stream, "n", recovered)
		}
	}()
	for start := "-"; ; {
		ctx, cancel := c.op()
		pend, err := c.b.Pending(ctx, lanewaybroker.PendingParams{Stream: stream, Group: c.cfg.Group,
			Start: start, End: "+", Count: takeoverPage, Consumer: c.cfg.Consumer, MinIdle: takeoverMinIdle})
		cancel()
		if err != nil {
			c.brokerFailed("pending", err)
			return false
		}
		// Grouped by delivery count: the claim sets the count it had, as
		// the lost delivery was never run and is not a new attempt.
		byCount := map[int64][]string{}
		n := 0
		for _, p := range pend {
			if _, ok := c.owned[stream+"\x00"+p.ID]; ok || c.ackPending(stream, p.ID) {
				continue
			}
			byCount[p.Deliveries] = append(byCount[p.Deliveries], p.ID)
			n++
		}
		if n > c.holdLimit()-len(c.owned) {
			return false
		}
		for count, ids := range byCount {
			ctx, cancel = c.op()
			got, err := c.b.Claim(ctx, lanewaybroker.ClaimParams{Stream: stream, Group: c.cfg.Group, Consumer: c.cfg.Consumer,
				MinIdle: takeoverMinIdle, IDs: ids, RetryCount: count, Idle: -1})
			cancel()
			if err != nil {
				c.brokerFailed("claim back own entries", err)
				return false
			}
			deliveries := make(map[string]int64, len(got))
			for _, e := range got {
				deliveries[e.ID] = max(count, 1)
			}
			c.countRead(ReadClaim, len(got))
			recovered += len(got)
			c.addStreams([]lanewaybroker.StreamEntries{{Stream: stream, Entries: got}}, deliveries)
		}
		if len(pend) < takeoverPage {
			return true
		}
		start = lanes.NextID(pend[len(pend)-1].ID)
	}
}
