package consumer

import (
	"context"
	"time"

	"github.com/laneway/laneway/lanewaybroker"
)

// The primary reader (Config.PrimaryReader, lanes on): a blocking read of
// the primary lane alone is kept outstanding at all times, on its own
// connection, beside the reads of backfill. A production entry is then in
// the consumer's memory one round trip after it is written, whatever the
// backfill is doing, and the running backfill handler's run stops at the
// next message for it (preemption). Without it, primary is checked by a
// non-blocking probe between backfill runs, at most every ProbeInterval:
// a production entry written just after a probe waits for the next one.
//
// Only the primary reader reads primary, so primary entries still arrive
// in stream order, and the backfill reads may read ahead at any
// concurrency. Its read is issued again as soon as the dispatcher has
// queued what the last one brought, unless a batch of primary entries is
// already waiting for a slot (they are handled before more are read), the
// lane is paused or the broker is backing off.
//
// Backfill starts only once a primary read has come back with less than a
// full batch (primaryUnknown false): at start, after a full batch and after
// a failed read, entries may wait in primary that no read has brought yet.
// Such a read is sent without BLOCK, so an empty primary answers at once;
// after it the reader blocks, and an entry written meanwhile is delivered
// to it (it waits, as with a probe, for at most the backfill handler that
// started in between).

// maybeReadPrimary issues the primary reader's next read when one is due.
func (c *Consumer) maybeReadPrimary() {
	if !c.primaryReader || c.preading || c.stopping || c.paused(Primary) ||
		time.Now().Before(c.retryAt) || len(c.queue[Primary]) >= c.cfg.Count {
		return
	}
	ctx, cancel := context.WithCancel(c.readCtx)
	c.preading, c.pCancel = true, cancel
	block := c.readBlock()
	if c.primaryUnknown {
		block = 0
	}
	p := lanewaybroker.ReadParams{Group: c.cfg.Group, Consumer: c.cfg.Consumer, Streams: []string{c.cfg.Primary},
		Count: c.cfg.Count, Block: block}
	c.readAsync(ctx, cancel, ReadBlockingPrimary, p, c.pReadDone)
}

// onPrimaryRead queues what the primary reader brought.
func (c *Consumer) onPrimaryRead(rr readResult) {
	c.preading, c.pCancel = false, nil
	if rr.err != nil {
		c.primaryUnknown = true
		c.brokerFailed("read primary", rr.err)
		return
	}
	c.brokerOK()
	n := c.primaryIn(rr.streams)
	c.countRead(rr.kind, n)
	if !rr.cut {
		c.sawPrimary(n, c.cfg.Count)
	}
	c.addDecoded(rr.streams, nil, rr.decoded)
}

// cancelPrimaryRead ends the outstanding primary read (a pause of the
// lane); its result still comes back through pReadDone.
func (c *Consumer) cancelPrimaryRead() {
	if c.pCancel != nil {
		c.pCancel()
		c.pCancel = nil
	}
}
