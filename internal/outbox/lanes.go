package outbox

import (
	"context"
	"math"
	"time"

	"github.com/laneway/laneway/lanewaystore"
)

// The relay is lane-aware in time, not only in order. One claim loop
// ordered by priority publishes a production row before every backfill row
// not yet claimed, but after the backfill batch already claimed: the row
// waits for that batch's publish and mark, and for the next batch's claim
// that overlaps them. With priority lanes on, the relay therefore runs two
// claim loops over disjoint rows: the production worker claims the rows at
// or above the lanes threshold, the backfill worker the rows below it. A
// production row committed while a backfill batch is being claimed,
// published or marked (or is stuck on a slow broker) is claimed by the
// production worker at once.
//
// Two loops share what one shared before: the worker id (the rows are
// disjoint, so a mark never touches the other loop's rows), the broker
// outage pause, the health log, the counters and the retry policy. Each
// priority belongs to exactly one loop and each loop publishes its batches
// one at a time in claim order, so FIFO within a priority, and priority
// order within a lane, hold as before. What is given up is an order across
// the threshold, which nothing promised: rows on either side of it go to
// different streams, read by independent consumers.
//
// The loops still share the database. On SQLite every write transaction
// takes the single writer in turn, so a backfill claim or mark of a full
// batch delays the production worker's claim and every Process commit by
// the time it holds the writer. While production rows are being relayed
// (the production worker claimed rows within productionActive) the backfill
// worker claims at most BackfillBatchSize rows, which keeps its
// transactions, and its pipelined writes to the broker, short; alone it
// claims at most BackfillQuietBatchSize rows, not a full BatchSize: the first
// production row after a quiet spell cannot warn the worker ahead of its
// commit, and on SQLite that commit waits for the backfill transaction in
// flight. The caps are 10 rows while production flows (50 until
// 2026-12-06: on a small machine a claim or mark of 50 rows held SQLite's
// one writer for about a millisecond, and a production row's commit and
// claim could each wait for one) and 100 while it is quiet (a claim of 500
// held the writer 10-15 ms, up to 40 ms, and the production commits that
// came next waited for it; 100 rows hold it 2-3 ms, and on the small
// machine the migration's relay, where it alone set the pace, was about 20 %
// slower). PostgreSQL does not serialize the writers, but smaller backfill
// statements and broker pipelines still take less of the machine's CPU
// and of the broker's single thread at a time: there the smaller cap
// lowered the production tail too, and the migration drained sooner
// (docs/benchmarks-production-lane.md).
//
// Smaller batches are not enough when the machine's cores are all busy:
// the backfill worker's claims and marks, its broker pipelines, the
// database's work for them and the engines consuming what it publishes
// then keep every core busy, and each step of a production row (the
// producer's commit, the production claim, the publish, the engine's read,
// dispatch and handler) waits for a core. Go's scheduler has no
// priorities, so the woken goroutines of a production row queue behind the
// backfill's. While production rows are being relayed, the backfill worker
// therefore yields: it claims no batch ahead, and after each batch it
// pauses yieldFactor times as long as that batch took (at most maxYield),
// so it uses at most about a sixth of the time and leaves the rest to
// production. A migration
// drains at full speed again once production has been quiet for
// productionActive.
//
// With lanes off every row goes to one stream whatever its priority, so
// there is no lane to keep ahead: the relay runs one loop over all rows,
// in priority order, as before.

// productionActive is how long after the production worker's last
// non-empty claim the backfill worker keeps its batches at the smaller cap.
const productionActive = time.Second

// worker is one claim loop of the relay.
type worker struct {
	name string
	// priorities bounds the rows the worker claims; nil claims every row.
	priorities *lanewaystore.PriorityRange
	// production marks the worker whose claims make the backfill worker
	// shrink its batches; backfill marks the worker that shrinks them.
	production, backfill bool

	notifyCh chan struct{}
	listenCh chan struct{}
	// handoff, on the production worker, holds the rows handed over in
	// memory (handoff.go).
	handoff *handoff
}

// handoffReady is what the loop waits on for committed hand-offs: nil
// (never ready) for a worker without a hand-off.
func (w *worker) handoffReady() <-chan struct{} {
	if w.handoff == nil {
		return nil
	}
	return w.handoff.ready
}

func newWorker(name string, p *lanewaystore.PriorityRange) *worker {
	return &worker{name: name, priorities: p, notifyCh: make(chan struct{}, 1), listenCh: make(chan struct{}, 1)}
}

// newWorkers returns the claim loops cfg asks for: one over every row, or
// with lanes on one per lane.
func (r *Relay) newWorkers() []*worker {
	if !r.cfg.Lanes.Enabled {
		return []*worker{newWorker("all", nil)}
	}
	t := int(r.cfg.Lanes.Threshold)
	prod := newWorker("production", &lanewaystore.PriorityRange{Min: t, Max: math.MaxInt})
	prod.production = true
	if !r.cfg.NoHandOff {
		prod.handoff = &handoff{ready: make(chan struct{}, 1), marks: marker{r: r}}
		r.handoff = prod.handoff
	}
	back := newWorker("backfill", &lanewaystore.PriorityRange{Min: math.MinInt, Max: t - 1})
	back.backfill = true
	return []*worker{prod, back}
}

// maxYield bounds one pause of the yielding backfill worker, so that a
// batch slowed by an outage or a lock does not stall the lane for long.
const maxYield = 100 * time.Millisecond

// yieldFactor is the yielding backfill worker's pause over the time its
// batch took. At 1 (half the time to the backfill) every step of a
// production row still waited for a core behind the backfill's work end to
// end on SQLite; at 2 the production p99 behind a migration fell by about
// a sixth; at 5 (a sixth of the time to the backfill) by about a sixth
// again, in 9 of 10 alternated runs, while the migration drained 1-4 %
// later, its pace being set by the engines' handlers, and a migration the
// relay alone paces drained up to 5 % later
// (docs/benchmarks-production-lane.md, "The yielding relay's pause").
const yieldFactor = 5

// yields reports whether w is the backfill worker and production rows are
// being relayed: it then claims no batch ahead and pauses after each one.
func (r *Relay) yields(w *worker) bool { return w.backfill && r.productionBusy() }

// pause waits d (at most maxYield); false when ctx ended first.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(min(d, maxYield))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// limit is the size of w's next claim.
func (r *Relay) limit(w *worker) int {
	switch {
	case !w.backfill:
		return r.cfg.BatchSize
	case r.productionBusy():
		return min(r.cfg.BatchSize, r.cfg.BackfillBatchSize)
	default:
		return min(r.cfg.BatchSize, r.cfg.BackfillQuietBatchSize)
	}
}

// claimed records a claim of n rows by w.
func (r *Relay) claimed(w *worker, n int) {
	if w.production && n > 0 {
		r.productionAt.Store(r.cfg.Now().UnixNano())
	}
}

// productionBusy reports whether the production worker claimed rows within
// productionActive.
func (r *Relay) productionBusy() bool {
	at := r.productionAt.Load()
	return at != 0 && r.cfg.Now().UnixNano()-at < int64(productionActive)
}
