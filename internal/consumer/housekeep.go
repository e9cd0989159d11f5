package consumer

import (
	"time"
)

// ackStopRetry is the pause between two tries of the acks at shutdown.
const ackStopRetry = 200 * time.Millisecond

// flushAcksAtStop sends the collected acks before the consumer stops,
// trying again while the broker does not answer, until it does or Stop
// gives up (ShutdownTimeout after the stop began, or Stop's context). An
// ack given up on leaves a handled entry pending, to be run again by
// whoever takes it over, so it is worth waiting for.
func (c *Consumer) flushAcksAtStop(deadline time.Time) {
	for {
		c.flushAcksNow()
		if c.ackN == 0 || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-c.hardStop:
			deadline = time.Now()
		case <-time.After(ackStopRetry):
		}
	}
	if c.ackN > 0 {
		c.cfg.Logger.Warn("could not ack handled entries before stopping; they will run again", "group", c.cfg.Group, "consumer", c.cfg.Consumer, "n", c.ackN)
	}
}

// deleteSelfIfEmpty deletes this consumer from its groups at a graceful
// stop when it holds nothing, so the group lists only running consumers.
// One that still holds entries (handed back by release) stays: the next
// engine's takeover claims them and deletes it then. The broker refuses to
// delete a consumer with pending entries, so nothing is orphaned by a race.
func (c *Consumer) deleteSelfIfEmpty() {
	if len(c.owned) > 0 || c.ackN > 0 || c.down {
		return
	}
	for _, l := range c.laneList() {
		ctx, cancel := c.op()
		err := c.b.DeleteConsumer(ctx, c.stream(l), c.cfg.Group, c.cfg.Consumer)
		cancel()
		if err != nil {
			c.cfg.Logger.Debug("consumer not deleted at stop", "group", c.cfg.Group, "stream", c.stream(l), "consumer", c.cfg.Consumer, "error", err)
		}
	}
}
