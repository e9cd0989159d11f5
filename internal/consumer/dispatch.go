package consumer

import (
	"slices"
	"time"
)

func msgKey(t *tracked) string { return t.msg.Envelope.Metadata.Headers.Stream }

// ready is the index of the first queued entry of lane whose aggregate has
// nothing in flight, or -1. Entries of a busy aggregate wait in order.
func (c *Consumer) ready(l Lane) int {
	for i, t := range c.queue[l] {
		if k := msgKey(t); k == "" || c.busy[k] == 0 {
			return i
		}
	}
	return -1
}

// dispatch starts what may start. It returns whether a primary run was
// handed to a worker.
func (c *Consumer) dispatch() (primary bool) {
	for !c.stopping {
		if c.dbDown && (time.Now().Before(c.dbRetryAt) || c.sl.PrimaryInflight+c.sl.BackfillInflight > 0) {
			return primary // database outage: one handler at a time probes it, after the backoff
		}
		pi, bi := -1, -1
		if !c.paused(Primary) {
			pi = c.ready(Primary)
		}
		if !c.paused(Backfill) {
			bi = c.ready(Backfill)
		}
		pr := pi >= 0 && c.sl.canStart(Primary)
		if pi >= 0 && !pr && c.lendSlot() {
			pr = c.sl.canStart(Primary)
		}
		br := bi >= 0 && c.sl.canStart(Backfill)
		if br && !pr && !c.primaryReader && !c.paused(Primary) && c.reading == 0 && time.Since(c.lastProbe) >= c.cfg.ProbeInterval && !time.Now().Before(c.retryAt) {
			if c.probe() > 0 {
				continue
			}
		}
		if br && c.primaryReader && (c.primaryUnknown || c.pDecoding > 0) && !c.paused(Primary) {
			br = false // no primary read has shown the lane drained yet, or a reply is being decoded (primaryreader.go)
		}
		if br && c.gateHeld() {
			br = false // another partition has primary work (gate.go)
		}
		grants := len(c.queue[Backfill])
		if br && c.ctl.st.Throttled && (!pr || c.cfg.MinBackfillShare > 0) {
			grants = c.backfillGrants(min(grants, c.grantWant()))
			br = grants > 0
		} else if c.ctl.st.Throttled {
			br = false // primary goes first; grants are asked for when backfill may start
		}
		lane, ok := c.credit.pick(pr, br)
		if !ok || c.inlineHeld() {
			return primary
		}
		idx, most := pi, len(c.queue[Primary])
		if lane == Backfill {
			idx, most = bi, grants
		}
		run := c.takeRun(lane, idx, most)
		if lane == Backfill {
			c.spendBackfill(len(run))
		}
		c.start(lane, run)
		primary = primary || lane == Primary
	}
	return primary
}

// maxRun bounds a run above concurrency 1, so queued work spreads over the
// free slots.
const maxRun = 16

// takeRun removes from lane's queue the entry at idx and the queued entries
// that may run after it on the same slot, in queue order, and returns them.
// Handing a worker a run of messages instead of one saves a dispatcher
// round trip (two goroutine hand-offs) per message. An entry joins the run
// when its aggregate has nothing in flight elsewhere (or is already in this
// run, behind its predecessors), so per-aggregate order holds; at
// concurrency 1 nothing else is in flight and the run is the lane's queue in
// FIFO order. With MinBackfillShare the share is decided per message, so
// runs are single messages.
func (c *Consumer) takeRun(lane Lane, idx, most int) []*tracked {
	q := c.queue[lane]
	first := q[idx]
	limit := len(q)
	if c.cfg.MinBackfillShare > 0 {
		limit = 1
	} else if c.cfg.Concurrency > 1 {
		limit = min(max(len(q)/max(c.sl.free(), 1), 1), maxRun)
	}
	limit = max(min(limit, most), 1) // most: the backfill starts granted (control.go)
	if limit == 1 {
		c.queue[lane] = slices.Delete(q, idx, idx+1)
		return []*tracked{first}
	}
	run := []*tracked{first}
	mine := map[string]bool{msgKey(first): true}
	rest := q[:idx:idx] // the entries before idx stay (their aggregates are busy)
	for _, t := range q[idx+1:] {
		if len(run) < limit {
			k := msgKey(t)
			if k == "" || mine[k] || c.busy[k] == 0 {
				run = append(run, t)
				mine[k] = true
				continue
			}
		}
		rest = append(rest, t)
	}
	c.queue[lane] = rest
	return run
}

// start hands ts (one message, or a run at Concurrency 1) to a worker. A
// backfill run stops at the next message once primary entries are queued or
// after ProbeInterval (preemption: primary waits at most one backfill
// handler, or a few ms); a primary run after ackFlushEvery, so acks and
// results flow while primary is saturated.
func (c *Consumer) start(lane Lane, ts []*tracked) {
	r := run{lane: lane, ts: ts, budget: ackFlushEvery}
	c.inRuns[lane] += len(ts)
	for _, t := range ts {
		t.st = stRunning
		if k := msgKey(t); k != "" {
			c.busy[k]++
		}
	}
	if lane == Backfill {
		c.sl.BackfillInflight++
		c.preempt.Store(len(c.queue[Primary]) > 0)
		if !c.primaryReader {
			r.budget = c.cfg.ProbeInterval // back for the next probe
		}
	} else {
		c.sl.PrimaryInflight++
	}
	c.work[lane] <- r // never blocks: at most Concurrency runs are in flight
}

// onRunResult frees the run's slot, queues what it did not start again, at
// the front of its lane, and settles what it handled.
//
// The worker's next run is handed out before the settling (the counters,
// the observer, the acks, the retries): the worker would otherwise wait
// idle for it, and with a backlog, runs of hundreds of messages, that was
// a third of its time.
func (c *Consumer) onRunResult(rr runResult) {
	if rr.inline {
		if !c.inlineRunning {
			// The reader handed its entry over before it ran it, but the
			// result was taken first.
			c.onPrimaryReply(<-c.pReadDone)
		}
		c.inlineRunning = false
		c.inlineDone()
	}
	c.inRuns[rr.lane] -= len(rr.done) + len(rr.unstarted)
	if rr.lane == Backfill {
		c.lastBackfillDone = time.Now()
		c.sl.BackfillInflight--
		if rr.lent {
			c.slotReturned()
		}
	} else {
		c.sl.PrimaryInflight--
	}
	for _, r := range rr.done {
		c.unbusy(r.t)
	}
	if rr.outage != nil {
		c.dbFailed(rr.outage)
	}
	for _, t := range rr.unstarted {
		c.unbusy(t)
		t.st = stQueued
	}
	if len(rr.unstarted) > 0 {
		c.queue[rr.lane] = append(slices.Clone(rr.unstarted), c.queue[rr.lane]...)
		if rr.lane == Backfill {
			c.refundBackfill(len(rr.unstarted))
		}
	}
	if len(rr.done) > 0 && !c.dbDown {
		c.dispatch()
	}
	for _, r := range rr.done {
		c.onResult(r)
	}
}

func (c *Consumer) unbusy(t *tracked) {
	if k := msgKey(t); k != "" {
		if c.busy[k]--; c.busy[k] <= 0 {
			delete(c.busy, k)
		}
	}
}

// onResult settles a handled message (its aggregate is no longer busy:
// onRunResult).
func (c *Consumer) onResult(r result) {
	t := r.t
	if r.err == nil {
		c.dbOK()
		c.handled[t.lane].Add(1)
		if c.cfg.Observer != nil {
			c.cfg.Observer.Handled(t.lane, OutcomeOK, r.d, &t.msg)
		}
		c.ack(t)
		return
	}
	if r.cancelled {
		t.st = stCancelled // handed back at shutdown, not an attempt
		return
	}
	c.dbOK() // Outage said no: the database answers
	c.failed[t.lane].Add(1)
	if c.cfg.Observer != nil {
		c.cfg.Observer.Handled(t.lane, OutcomeError, r.d, &t.msg)
	}
	t.failedAt, t.lastErr = time.Now(), r.err.Error()
	if t.msg.Attempt < int64(c.cfg.MaxRetries) && !isPermanent(r.err) {
		c.cfg.Logger.Warn("handler failed; will retry", "group", c.cfg.Group, "stream", t.msg.Stream, "id", t.msg.EntryID, "attempt", t.msg.Attempt, "error", r.err)
		t.st = stWaiting
		c.retries.add(retryItem{due: time.Now().Add(c.cfg.RetryDelay), key: t.key})
		c.nRetries.Add(1)
		if c.cfg.Observer != nil {
			c.cfg.Observer.Retried(t.lane)
		}
		return
	}
	c.cfg.Logger.Warn("handler failed; attempts exhausted", "group", c.cfg.Group, "stream", t.msg.Stream, "id", t.msg.EntryID, "attempts", t.msg.Attempt, "error", r.err)
	c.deadLetter(t)
}
