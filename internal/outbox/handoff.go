package outbox

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/laneway/laneway/lanewaystore"
)

// The production hand-off. With lanes on, a production row committed by a
// unit of work in this process need not be claimed: the unit of work
// inserts it already leased to this relay (Lease, before its insert), and
// once it commits (Ticket.Settle) the relay's production worker publishes
// it from memory and marks it published. A production row's way from
// commit to stream loses the claim, one write transaction that behind a
// migration waited for the database (on SQLite, for its one writer) and
// was the largest step of the end-to-end tail
// (docs/benchmarks-production-lane.md).
//
// What the claim path gave is kept:
//
//   - Nothing is lost. A handed-off row is leased like a claimed one: if
//     the process dies before publishing it, or the relay stops, it is
//     claimed by any relay when its lease ends (the stopping relay
//     publishes what has committed, and hands back what commits after it
//     stopped). A failed publish marks the rows failed or releases them, as
//     for claimed rows.
//   - Order. Units of work are registered in the order they insert, and a
//     ticket is published only after every earlier ticket with a row of the
//     same stream: two commits of one aggregate are published in the order
//     they were written, whichever settles first.
//   - Memory is bounded: past maxHandoffRows rows waiting, rows are inserted
//     without a lease and claimed as before.
//
// The hand-off is off while rows of this process may be waiting for the
// claim path: when the relay starts (rows committed before it), after the
// bound was reached, a publish failed or the broker is unreachable. It
// turns on again once no such unit of work is open and a production claim
// that began after the last of them committed (and after the hand-off was
// last turned off) came back short: every
// production row committed by this process before it is then published,
// so a handed-off row cannot overtake one of them.

// maxHandoffRows bounds the rows waiting in memory for the production worker.
const maxHandoffRows = 1000

// handoff is the production worker's queue of tickets.
type handoff struct {
	mu     sync.Mutex
	on     bool // leases are granted
	closed bool // the worker has stopped: leases are refused, late commits released
	queue  []*Ticket
	rows   int // rows in queue
	// open counts units of work with production rows that were refused a
	// lease and have not settled; lastRefused is the sequence number of the
	// last of them to commit, or of the last turnOff if later.
	open        int
	seq         uint64
	lastRefused uint64
	ready       chan struct{} // a ticket settled: the worker has work
	// marks marks the published rows behind the publishes (handoffmark.go).
	marks marker
}

// Ticket is one unit of work's production rows registered with the relay.
// The zero value and nil are valid and do nothing.
type Ticket struct {
	r      *Relay
	rows   []lanewaystore.OutboxRow
	leased bool
	// settled is set once the unit of work committed (under handoff.mu).
	settled bool
	until   time.Time
}

// Leased reports whether the ticket's rows were leased to the relay, which
// publishes them without a claim once the unit of work commits.
func (t *Ticket) Leased() bool { return t != nil && t.leased }

// Lease registers the rows a unit of work is about to insert, before the
// insert. When the relay hands production rows off (lanes on, relay
// running) and every row is a production row, it leases them to the relay
// by setting LockedBy and LockedUntil, which the store writes with the row.
// It returns nil when no row is a production row or the relay has no
// production worker. The caller must Settle a non-nil ticket with the unit
// of work's outcome.
func (r *Relay) Lease(rows []lanewaystore.OutboxRow) *Ticket {
	ho := r.handoff
	if ho == nil || len(rows) == 0 {
		return nil
	}
	threshold := int(r.cfg.Lanes.Threshold)
	production, all := false, true
	for i := range rows {
		if rows[i].Priority >= threshold {
			production = true
		} else {
			all = false
		}
	}
	if !production {
		return nil
	}
	t := &Ticket{r: r, rows: rows}
	ho.mu.Lock()
	defer ho.mu.Unlock()
	if !ho.on || ho.closed || !all || r.brokerDown.Load() || ho.rows+len(rows) > maxHandoffRows {
		ho.on = false
		ho.open++
		for i := range rows { // rows an earlier attempt leased are claimed now
			rows[i].LockedBy, rows[i].LockedUntil = "", nil
		}
		return t
	}
	t.leased = true
	t.until = r.cfg.Now().Add(r.cfg.Lease)
	for i := range rows {
		rows[i].LockedBy, rows[i].LockedUntil = r.cfg.WorkerID, &t.until
	}
	ho.queue = append(ho.queue, t)
	ho.rows += len(rows)
	return t
}

// Settle reports the unit of work's outcome: err nil when it committed.
// The rows of a committed leased ticket are published by the production
// worker; a rolled-back ticket is dropped.
func (t *Ticket) Settle(err error) {
	if t == nil || t.r == nil {
		return
	}
	ho := t.r.handoff
	ho.mu.Lock()
	if !t.leased {
		ho.open--
		if err == nil {
			ho.seq++
			ho.lastRefused = ho.seq
		}
		ho.mu.Unlock()
		return
	}
	if err != nil || ho.closed {
		ho.remove(t)
	} else {
		t.settled = true
	}
	closed := ho.closed
	ho.mu.Unlock()
	switch {
	case err != nil:
	case closed:
		// The worker has stopped: hand the rows back at once rather than
		// leave them leased until the lease ends.
		ctx, cancel := context.WithTimeout(context.Background(), batchFinishTimeout)
		defer cancel()
		if rerr := t.r.release(ctx, t.rows, errRelayStopped, false); rerr != nil {
			t.r.log.Warn("outbox relay stopped: rows committed after it stay leased until the lease ends",
				"rows", len(t.rows), "error", rerr)
		}
	default:
		signal(ho.ready)
	}
}

var (
	errRelayStopped = errors.New("outbox: relay stopped before publishing the rows")
	errHandoffStale = errors.New("outbox: rows waited in memory for half their lease")
)

// remove drops t from the queue (ho.mu held).
func (ho *handoff) remove(t *Ticket) {
	for i, q := range ho.queue {
		if q == t {
			ho.queue = append(ho.queue[:i], ho.queue[i+1:]...)
			ho.rows -= len(t.rows)
			return
		}
	}
}

// take removes and returns the rows of settled tickets, at most about limit
// rows, in registration order, skipping a settled ticket only when an
// earlier ticket left in the queue has a row of the same stream. stale reports a
// taken ticket whose lease is about to end: its rows may be claimed by now,
// so the caller hands everything back instead of publishing.
func (ho *handoff) take(limit int, now time.Time, lease time.Duration) (rows []lanewaystore.OutboxRow, stale bool) {
	ho.mu.Lock()
	defer ho.mu.Unlock()
	var waiting map[string]bool // streams of the tickets left behind
	kept := ho.queue[:0]
	for i, t := range ho.queue {
		if len(rows) > 0 && len(rows)+len(t.rows) > limit {
			kept = append(kept, ho.queue[i:]...) // the next batch's
			break
		}
		blocked := !t.settled
		if !blocked && waiting != nil {
			for j := range t.rows {
				if waiting[t.rows[j].StreamName] {
					blocked = true
					break
				}
			}
		}
		if blocked {
			// Every stream of a ticket left behind waits for it, also the
			// streams it was not blocked on: a unit of work may write to
			// two aggregates.
			if waiting == nil {
				waiting = map[string]bool{}
			}
			for j := range t.rows {
				waiting[t.rows[j].StreamName] = true
			}
			kept = append(kept, ho.queue[i])
			continue
		}
		if t.until.Sub(now) < lease/2 {
			stale = true
		}
		rows = append(rows, t.rows...)
		ho.rows -= len(t.rows)
	}
	clear(ho.queue[len(kept):])
	ho.queue = kept
	return rows, stale
}

// takeSettled removes and returns the rows of every settled ticket.
func (ho *handoff) takeSettled() []lanewaystore.OutboxRow {
	ho.mu.Lock()
	defer ho.mu.Unlock()
	var rows []lanewaystore.OutboxRow
	kept := ho.queue[:0]
	for _, t := range ho.queue {
		if t.settled {
			rows = append(rows, t.rows...)
			ho.rows -= len(t.rows)
			continue
		}
		kept = append(kept, t)
	}
	clear(ho.queue[len(kept):])
	ho.queue = kept
	return rows
}

// stop refuses further leases; the worker then publishes what has settled.
func (ho *handoff) stop() {
	ho.mu.Lock()
	ho.closed, ho.on = true, false
	ho.mu.Unlock()
}

// turnOff sends further production rows through the claim path. Rows of
// this process now wait for it (a failed publish, rows handed back), so
// only a claim pass that begins after this may turn the hand-off on again:
// one that began before may have come back short without them.
func (ho *handoff) turnOff() {
	ho.mu.Lock()
	ho.on = false
	ho.seq++
	ho.lastRefused = ho.seq
	ho.mu.Unlock()
}

// seqNow returns the sequence number a claim pass beginning now is compared
// with by resume.
func (ho *handoff) seqNow() uint64 {
	ho.mu.Lock()
	defer ho.mu.Unlock()
	return ho.seq
}

// resume turns the hand-off on after a production claim pass that began at
// sequence number since and came back short without an error.
func (ho *handoff) resume(since uint64, brokerDown bool) {
	ho.mu.Lock()
	defer ho.mu.Unlock()
	if !ho.closed && !brokerDown && ho.open == 0 && ho.lastRefused <= since {
		ho.on = true
	}
}

// publishHandoffs publishes the settled tickets' rows, in batches of at most
// BatchSize rows, and queues them for marking without waiting for the marks
// (handoffmark.go). It returns the rows whose marks ended since its last
// call; a mark's error stops it, as a failed publish does. finishMark waits
// for the marks.
func (r *Relay) publishHandoffs(ctx context.Context, w *worker) (int, error) {
	ho := r.handoff
	total := 0
	for {
		wait := ho.marks.collect
		if ho.marks.full() {
			wait = ho.marks.wait
		}
		n, err := wait()
		total += n
		if err != nil {
			return total, err
		}
		rows, stale := ho.take(r.cfg.BatchSize, r.cfg.Now(), r.cfg.Lease)
		if len(rows) == 0 {
			return total, nil
		}
		if stale || r.brokerDown.Load() {
			// Held in memory for half their lease (an outage): hand them
			// back to the claim path, which publishes them in order.
			ho.turnOff()
			n, merr := ho.marks.wait()
			cause := errHandoffStale
			if r.brokerDown.Load() {
				cause = errBrokerDown
			}
			rctx, cancel := finishCtx(ctx)
			err := r.release(rctx, rows, cause, false)
			cancel()
			return total + n, errors.Join(merr, err)
		}
		r.claimed(w, len(rows))
		r.handedOff.Add(int64(len(rows)))
		pctx, cancel := finishCtx(ctx)
		marks, err := r.appendRows(pctx, rows)
		if err != nil {
			// Off before the rows are marked failed or released: a unit of
			// work that could see them waiting for the claim path is refused
			// a lease, so its rows cannot overtake them.
			ho.turnOff()
			err = r.publishFailed(pctx, rows, err)
			cancel()
			return total, err
		}
		cancel()
		ho.marks.add(ctx, rows, marks)
	}
}

// finishMark waits for the hand-off's marks still running or queued.
func (ho *handoff) finishMark() (int, error) {
	return ho.marks.wait()
}
