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

// Reads are pipelined while a backlog waits: the next read is sent as soon
// as a full reply is in (primaryArrived), while that reply is still being
// decoded, so Redis serves the next batch while this one is decoded. At
// most two reads are in the pipeline (one at Redis, one decoding), and
// their results reach the dispatcher in the order the reads were sent (each
// waits for its predecessor's), so primary entries are queued in stream
// order. Entries of a full reply not yet queued (pDecoding) count as queued
// primary work: backfill does not start past them.
//
// A reply of less than a full read says the lane is drained: it carries
// its arrival and reaches the dispatcher in one hand-off, where sending the
// arrival ahead woke the dispatcher twice (the arrival, then the entries)
// for a next read that would only block. The dispatcher learns of these
// entries only once they are decoded (a microsecond or two), like of an
// entry written just after a read; a backfill run started meanwhile stops
// at its next message.

// While a backlog waits (the last reply was full, or no read has shown
// primary drained), a read is primaryBatches reads of Count pipelined in
// one round trip: it is not blocking, and the round trips, not Redis,
// bound how fast one consumer takes a backlog in.

// primaryArrival says a primary read's reply is in: n entries of a full
// read of full, or failed.
type primaryArrival struct {
	n, full int
	failed  bool
}

const (
	// maxPrimaryReads bounds the primary reads in the pipeline.
	maxPrimaryReads = 2
	// primaryBatches is the reads of Count one primary read makes while a
	// backlog waits.
	primaryBatches = 4
)

// maybeReadPrimary issues the primary reader's next read when one is due.
func (c *Consumer) maybeReadPrimary() {
	if !c.primaryReader || c.preading || c.pPending >= maxPrimaryReads || c.pHold || c.stopping ||
		c.paused(Primary) || time.Now().Before(c.retryAt) || len(c.queue[Primary])+c.pDecoding >= maxPrimaryReads*primaryBatches*c.cfg.Count {
		return
	}
	ctx, cancel := context.WithCancel(c.readCtx)
	c.preading, c.pCancel = true, cancel
	c.pPending++
	p := lanewaybroker.ReadParams{Group: c.cfg.Group, Consumer: c.cfg.Consumer, Streams: []string{c.cfg.Primary},
		Count: c.cfg.Count, Block: c.readBlock()}
	if c.primaryUnknown || c.pLastFull {
		// Entries may be waiting that no read has brought yet.
		p.Block, p.Batches = 0, primaryBatches
	}
	full := c.cfg.Count * max(p.Batches, 1)
	prev, sent := c.pSent, make(chan struct{})
	c.pSent = sent
	c.rwg.Add(1)
	go func() {
		defer c.rwg.Done()
		defer cancel()
		res, cut, err := c.readGroup(ctx, p)
		a := primaryArrival{n: entriesIn(res), full: full, failed: err != nil}
		rr := readResult{kind: ReadBlockingPrimary, streams: res, err: err, cut: cut, full: full}
		if a.n >= full {
			c.pArrived <- a // buffered: never blocks
		} else {
			rr.arrival = &a
		}
		rr.decoded = c.decodeAll(res)
		<-prev
		var inline *tracked
		if rr.arrival != nil {
			inline = c.takeInline(&rr)
		}
		c.pReadDone <- rr
		close(sent)
		if inline != nil {
			c.runInline(inline)
		}
	}()
}

// onPrimaryArrived frees the pipeline for the next read.
func (c *Consumer) onPrimaryArrived(a primaryArrival) {
	c.preading, c.pCancel = false, nil
	c.pDecoding += a.n
	c.pLastFull = a.n >= a.full
	if a.failed {
		c.pHold = true // no read until the failure is counted (its backoff)
	}
}

// drainPrimaryArrivals takes the arrivals already sent: an arrival is sent
// before its result, but a select may receive the result first.
func (c *Consumer) drainPrimaryArrivals() {
	for {
		select {
		case a := <-c.pArrived:
			c.onPrimaryArrived(a)
		default:
			return
		}
	}
}

// onPrimaryRead queues what a primary read brought.
func (c *Consumer) onPrimaryRead(rr readResult) {
	n := c.primaryDelivered(rr)
	if rr.err != nil {
		c.pHold = false
		c.primaryUnknown = true
		c.brokerFailed("read primary", rr.err)
		return
	}
	c.brokerOK()
	c.countRead(rr.kind, n)
	if !rr.cut {
		c.sawPrimary(n, rr.full)
	}
	if rr.inlined != nil {
		c.onInlineStarted(rr)
		return
	}
	// When the lane is drained (rr.arrival set), the next, blocking, read
	// goes out after these entries are handed to their worker, in the same
	// round of the dispatcher (run): issuing it first (a goroutine, a
	// context, a channel) put a few microseconds before every idle
	// production entry's handler.
	c.addDecoded(rr.streams, nil, rr.decoded)
}

// onPrimaryReply takes a primary read's result: queued, or kept for the
// hand-back while stopping.
func (c *Consumer) onPrimaryReply(rr readResult) {
	if !c.stopping {
		c.onPrimaryRead(rr)
		return
	}
	c.primaryDelivered(rr)
	switch {
	case rr.inlined != nil:
		c.onInlineStarted(rr) // its result is awaited like a worker's
	case rr.err == nil:
		c.addDecoded(rr.streams, nil, rr.decoded) // pending on us now: handed back at the end
	}
}

// primaryDelivered takes a primary read's result out of the pipeline's
// bookkeeping and returns its entry count.
func (c *Consumer) primaryDelivered(rr readResult) int {
	c.drainPrimaryArrivals()
	if rr.arrival != nil {
		c.onPrimaryArrived(*rr.arrival)
	}
	c.pPending--
	n := c.primaryIn(rr.streams)
	c.pDecoding -= n
	return n
}

// primaryInPipeline says whether primary reads are in flight or decoding.
func (c *Consumer) primaryInPipeline() bool { return c.pPending > 0 }

// cancelPrimaryRead ends the outstanding primary read (a pause of the
// lane); its result still comes back through pReadDone.
func (c *Consumer) cancelPrimaryRead() {
	if c.pCancel != nil {
		c.pCancel()
		c.pCancel = nil
	}
}

func entriesIn(streams []lanewaybroker.StreamEntries) int {
	n := 0
	for _, s := range streams {
		n += len(s.Entries)
	}
	return n
}
