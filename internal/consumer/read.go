package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/laneway/laneway/lanewaybroker"
)

func (c *Consumer) maybeRead() {
	if c.stopping || time.Now().Before(c.retryAt) {
		return
	}
	plan := c.plan()
	if c.reading != 0 {
		// A primary-only read while backfill could now be read too: cut it
		// short (it returns at once, with whatever it read) and re-plan.
		if c.reading == ReadBlockingPrimary && plan.Mode == ReadBlockingBoth && c.readCancel != nil {
			c.readCancel()
			c.readCancel = nil
		}
		return
	}
	if plan.Mode == 0 {
		return
	}
	c.maybeFlushAcks(true) // never hold acks across a blocking read (sent on the side, not awaited)
	streams := c.readStreams(plan.Mode)
	ctx, cancel := context.WithCancel(c.readCtx)
	c.reading, c.readCancel, c.readSent = plan.Mode, cancel, time.Now()
	p := lanewaybroker.ReadParams{Group: c.cfg.Group, Consumer: c.cfg.Consumer, Streams: streams, Count: plan.Count, Block: c.readBlock()}
	c.readAsync(ctx, cancel, plan.Mode, p, c.readDone)
}

// readAsync runs the read p on a goroutine of its own (owned by rwg) and
// sends its result, decoded, to done; cancel ends it early.
func (c *Consumer) readAsync(ctx context.Context, cancel context.CancelFunc, kind ReadMode, p lanewaybroker.ReadParams, done chan<- readResult) {
	c.rwg.Add(1)
	go func() {
		defer c.rwg.Done()
		defer cancel()
		res, cut, err := c.readGroup(ctx, p)
		done <- readResult{kind: kind, streams: res, decoded: c.decodeAll(res), err: err, cut: cut}
	}()
}

// readGroup is one read; cut says ctx ended it, on purpose. The context's
// own error is then no failure, but any other error still is: a connection
// lost while the read was being cut may have lost a reply that delivered
// entries, and only a failure starts the own-pending check that finds them.
func (c *Consumer) readGroup(ctx context.Context, p lanewaybroker.ReadParams) (res []lanewaybroker.StreamEntries, cut bool, err error) {
	res, err = c.b.ReadGroup(ctx, p)
	cut = ctx.Err() != nil
	if err != nil && cut && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		err = nil
	}
	return res, cut, err
}

func (c *Consumer) onRead(rr readResult) {
	c.reading, c.readCancel = 0, nil
	if rr.err != nil {
		c.brokerFailed("read", rr.err)
		return
	}
	c.brokerOK()
	n := 0
	for _, s := range rr.streams {
		n += len(s.Entries)
	}
	c.countRead(rr.kind, n)
	if !rr.cut && rr.kind != ReadBackfill {
		c.sawPrimary(c.primaryIn(rr.streams), c.cfg.Count)
	}
	if c.lanes && rr.kind == ReadBlockingBoth {
		// This read looked at primary too. It stands for a probe only if no
		// backfill handler ran since it was sent: a read-ahead answered in
		// the middle of a backfill handler says nothing about a primary
		// entry that arrived after it, and the next backfill message must
		// not start on its word.
		// Nor does a read that filled its COUNT with primary entries: more
		// may be waiting behind them.
		primaryFull := false
		for _, s := range rr.streams {
			if c.laneOf(s.Stream) == Primary && len(s.Entries) >= c.cfg.Count {
				primaryFull = true
			}
		}
		if c.sl.BackfillInflight == 0 && !c.readSent.Before(c.lastBackfillDone) && !primaryFull {
			c.lastProbe = time.Now()
		}
	}
	c.addDecoded(rr.streams, nil, rr.decoded)
}

// decodeAll decodes read entries, off the dispatcher.
func (c *Consumer) decodeAll(streams []lanewaybroker.StreamEntries) []decoded {
	if len(streams) == 0 {
		return nil
	}
	out := make([]decoded, len(streams))
	for i, s := range streams {
		d := decoded{ts: make([]tracked, len(s.Entries))}
		for j, e := range s.Entries {
			env, err := c.cfg.Decode(e)
			d.ts[j].msg.Envelope = env
			if err != nil {
				if d.errs == nil {
					d.errs = make([]error, len(s.Entries))
				}
				d.errs[j] = err
			}
		}
		out[i] = d
	}
	return out
}

// addStreams queues read entries, primary first. deliveries gives counts
// of claimed entries (nil: fresh reads, count 1).
func (c *Consumer) addStreams(streams []lanewaybroker.StreamEntries, deliveries map[string]int64) {
	c.addDecoded(streams, deliveries, nil)
}

// addDecoded is addStreams with the entries already decoded (dec parallel
// to streams), or decoded here when dec is nil.
func (c *Consumer) addDecoded(streams []lanewaybroker.StreamEntries, deliveries map[string]int64, dec []decoded) {
	// One clock read for the whole reply: the entries arrived together, and
	// reading the clock per entry was a measurable share of the consume
	// path's CPU on virtual machines.
	now := time.Now()
	for _, lane := range []Lane{Primary, Backfill} {
		for i, s := range streams {
			if c.laneOf(s.Stream) != lane {
				continue
			}
			for j, e := range s.Entries {
				d := int64(1)
				if deliveries != nil {
					if v, ok := deliveries[e.ID]; ok {
						d = v
					}
				}
				var t *tracked
				var err error
				if dec != nil {
					t = &dec[i].ts[j]
					if dec[i].errs != nil {
						err = dec[i].errs[j]
					}
				} else {
					t = &tracked{}
					t.msg.Envelope, err = c.cfg.Decode(e)
				}
				c.addEntry(lane, s.Stream, e, d, t, err, now)
			}
		}
	}
}

// addEntry takes t, the entry's record with its envelope decoded (or the
// decode error), into the consumer's keeping; now is when it arrived.
func (c *Consumer) addEntry(lane Lane, stream string, e lanewaybroker.Entry, deliveries int64, t *tracked, err error, now time.Time) {
	key := stream + "\x00" + e.ID
	if deliveries > 1 && c.ackPending(stream, e.ID) {
		// Handled here, its ack not sent yet, and reclaimed by our own
		// XAUTOCLAIM meanwhile: the ack on its way settles it.
		return
	}
	if old, ok := c.owned[key]; ok {
		// Already ours (a reclaim raced our own touch): keep its state and
		// put the delivery count back where it was.
		c.touch([]*tracked{old})
		return
	}
	fill(t, lane, stream, e, deliveries, now)
	c.owned[key] = t
	if err != nil {
		c.nDecode.Add(1)
		c.cfg.Logger.Error("undecodable entry; moving to DLQ", "group", c.cfg.Group, "stream", stream, "id", e.ID, "error", err)
		t.failedAt, t.lastErr = time.Now(), err.Error()
		c.deadLetter(t)
		return
	}
	if t.msg.Attempt > int64(c.cfg.MaxRetries) {
		// Its attempts ran out on a consumer that died before moving it:
		// this delivery is not an attempt.
		t.failedAt, t.lastErr = time.Now(), fmt.Sprintf("exhausted %d attempts (delivery count %d)", c.cfg.MaxRetries, t.deliveries)
		t.msg.Attempt = t.deliveries - 1
		c.deadLetter(t)
		return
	}
	t.st = stQueued
	c.queue[lane] = append(c.queue[lane], t)
	if lane == Primary {
		c.preempt.Store(true)
		if (c.cfg.BackfillYield || c.cfg.BackfillShortSlice) && c.lanes {
			c.yield.primaryQueued(now)
			if !c.lends {
				c.yield.wakeAll() // the pausing backfill workers give their slots back (lend.go)
			}
		}
	}
}

// probe is the non-blocking check of primary before a backfill message.
//
// At Concurrency 1 the probe also tops up the backfill queue once it is down
// to half a batch (XREADGROUP over both lanes, without BLOCK): backfill work
// does no read-ahead there (planRead), so without it every batch would cost
// the probe's round trip and then a read's.
func (c *Consumer) probe() int {
	c.lastProbe = time.Now()
	count := c.cfg.Count
	streams := []string{c.cfg.Primary}
	if c.cfg.Concurrency > 1 {
		count = max(1, min(count, c.sl.free()-len(c.queue[Primary])))
	} else if !c.paused(Backfill) && len(c.queue[Backfill]) <= c.cfg.Count/2 {
		streams = append(streams, c.cfg.Backfill)
	}
	ctx, cancel := c.op()
	defer cancel()
	res, err := c.b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: c.cfg.Group, Consumer: c.cfg.Consumer, Streams: streams, Count: count})
	if err != nil {
		c.brokerFailed("probe", err)
		return 0
	}
	n := 0
	for _, s := range res {
		n += len(s.Entries)
		if c.laneOf(s.Stream) == Primary && len(s.Entries) >= count {
			// A full batch of primary: more may be waiting behind it, so
			// the next backfill message must probe again first.
			c.lastProbe = time.Time{}
		}
	}
	c.brokerOK()
	c.sawPrimary(c.primaryIn(res), count)
	c.countRead(ReadProbe, n)
	c.addStreams(res, nil)
	return n
}

// primaryIn counts the primary entries of a read.
func (c *Consumer) primaryIn(streams []lanewaybroker.StreamEntries) int {
	n := 0
	for _, s := range streams {
		if c.laneOf(s.Stream) == Primary {
			n += len(s.Entries)
		}
	}
	return n
}
