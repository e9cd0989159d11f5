package consumer

import (
	"time"

	"github.com/laneway/laneway/lanewaybroker"
)

// Starting an idle consumer's production entry on the primary reader.
//
// An entry that reaches an idle consumer went from the primary reader's
// goroutine to the dispatcher's, and from there to a worker's: two
// goroutine hand-offs before its handler started. On an idle machine each
// wakes a parked thread, and on a virtual machine that costs tens of
// microseconds, sometimes hundreds: the idle production lane's whole
// overhead over a bare XREADGROUP loop, and most of its tail.
//
// So when the consumer has nothing else to do, the dispatcher arms an
// inline start, and the primary reader that brings one entry starts its
// handler itself, on its own goroutine, right after decoding it. The
// dispatcher learns of the entry first (the reader hands it over without
// waiting, then runs it), and of the result afterwards, as from a worker.
//
// The handshake is one atomic, like the lending of a slot (lend.go): the
// dispatcher arms it at the end of a round in which the consumer is idle
// (below), and disarms it before it starts anything; the reader takes it
// by moving it from armed to taken. Whichever moves it first wins, so a
// handler never runs beside an inline one on the single slot. A dispatcher
// that finds it taken starts nothing until the reader's entry has come
// back.
//
// Idle means: concurrency 1 with a primary reader of its own, no handler
// in flight, nothing queued or waiting for a retry in either lane, no slot
// lent, the primary lane not paused, no gate, the broker and the database
// answering, not stopping, and the outstanding primary read a blocking
// one (the lane drained). Only a reply of exactly one entry, decoded, on
// its first delivery is started inline; anything else goes the usual way.
// Under a flood the consumer is never idle, so nothing changes there.

const (
	inlineOff   int32 = iota // the dispatcher starts every entry
	inlineArmed              // the primary reader may start one entry itself
	inlineTaken              // it did; the slot is its own until the result is back
)

// armInline is the dispatcher's, at the end of each round: it arms the
// inline start when the consumer is idle and disarms it otherwise.
func (c *Consumer) armInline() {
	if !c.inlines {
		return
	}
	idle := !c.stopping && !c.down && !c.dbDown && c.preading && c.pPending == 1 && !c.pLastFull &&
		!c.primaryUnknown && !c.pHold && c.pDecoding == 0 &&
		c.sl.PrimaryInflight+c.sl.BackfillInflight == 0 && c.sl.Lent == 0 &&
		len(c.queue[Primary])+len(c.queue[Backfill]) == 0 && len(c.retries) == 0 && len(c.busy) == 0 &&
		!c.paused(Primary)
	if idle {
		c.inline.CompareAndSwap(inlineOff, inlineArmed)
	} else {
		c.inline.CompareAndSwap(inlineArmed, inlineOff)
	}
}

// inlineHeld is the dispatcher's, before it starts a run: it disarms the
// inline start, and reports whether the primary reader took the slot
// first.
func (c *Consumer) inlineHeld() bool {
	return c.inlines && !c.inline.CompareAndSwap(inlineArmed, inlineOff) && c.inline.Load() == inlineTaken
}

// takeInline is the primary reader's, with a drained reply decoded: it
// returns the entry to start on this goroutine, with its record filled in
// as the dispatcher would, or nil.
func (c *Consumer) takeInline(rr *readResult) *tracked {
	if !c.inlines || rr.err != nil || rr.cut || len(rr.streams) != 1 || len(rr.streams[0].Entries) != 1 ||
		rr.streams[0].Stream != c.cfg.Primary || rr.decoded[0].errs != nil || c.halt.Load() ||
		c.cfg.MaxRetries < 1 || !c.inline.CompareAndSwap(inlineArmed, inlineTaken) {
		return nil
	}
	t := &rr.decoded[0].ts[0]
	fill(t, Primary, c.cfg.Primary, rr.streams[0].Entries[0], 1, time.Now())
	t.st = stRunning
	rr.inlined = t
	return t
}

// runInline is the primary reader's: it runs t as a worker would and
// reports the result to the dispatcher. The result channel has room: t
// holds the only slot.
func (c *Consumer) runInline(t *tracked) {
	res := c.runOne(run{lane: Primary, ts: []*tracked{t}, budget: ackFlushEvery}, &workerState{probeGap: 1})
	res.inline = true
	c.results <- res
}

// onInlineStarted is the dispatcher's: the primary reader has started
// rr's entry. It is kept and counted as started by a worker.
func (c *Consumer) onInlineStarted(rr readResult) {
	t := rr.inlined
	c.owned[t.key] = t
	c.inRuns[Primary]++
	if k := msgKey(t); k != "" {
		c.busy[k]++
	}
	c.sl.PrimaryInflight++
	c.inlineRunning = true
	c.nInline.Add(1)
	if (c.cfg.BackfillYield || c.cfg.BackfillShortSlice) && c.lanes {
		c.yield.primaryQueued(time.Now())
	}
}

// inlineDone is the dispatcher's, when the inline run's result is in: the
// slot is the dispatcher's again.
func (c *Consumer) inlineDone() { c.inline.Store(inlineOff) }

// fill sets t's record for entry e of stream on lane, read with deliveries
// at now, keeping the envelope already decoded into it.
func fill(t *tracked, lane Lane, stream string, e lanewaybroker.Entry, deliveries int64, now time.Time) {
	env := t.msg.Envelope
	*t = tracked{key: stream + "\x00" + e.ID, lane: lane, entry: e, deliveries: deliveries, lastTouch: now,
		msg: Message{Stream: stream, EntryID: e.ID, Lane: lane, Attempt: deliveries, Envelope: env}}
}
