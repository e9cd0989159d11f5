package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

// drain relays until a claim comes back short. It overlaps the three steps
// of consecutive batches: while batch N is published to the broker, batch
// N+1 is being claimed and batch N-1 marked published, each on its own
// database connection. Claim, publish and mark are each one round trip, so
// done one after another the relay waits on PostgreSQL twice per batch; here
// a batch costs about its slowest step. Batches are still published one at a
// time in claim order, so FIFO within a priority holds on the stream.
//
// Every batch that has been claimed is published and marked (or marked
// failed) before drain returns, also when ctx is cancelled: see cycle.
// On the production worker, the rows handed over that have committed are
// published before each claimed batch; a pass beside the hand-off
// (beside.go) instead gives a batch back, and returns errHandoffOff, when
// it finds the hand-off off after the claim.
func (r *Relay) drain(ctx context.Context, w *worker, beside bool) (int, error) {
	total := 0
	var firstErr error
	var mark *pendingMark
	waitMark := func() {
		if mark == nil {
			return
		}
		n, err := mark.wait()
		mark = nil
		total += n
		r.setHealth(err, true)
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	defer waitMark()

	limit := r.limit(w)
	began := time.Now() // when the batch in hand began to be claimed
	rows, err := r.claim(ctx, w.priorities, limit)
	for {
		if err != nil {
			r.setHealth(err, false)
			waitMark()
			return total, errors.Join(firstErr, err)
		}
		if len(rows) == 0 {
			r.setHealth(nil, false) // the database answers; says nothing of the broker
			waitMark()
			return total, firstErr
		}
		if w.handoff != nil {
			// Rows of this process refused a lease may be in this batch:
			// the rows handed over before them go first (beside.go).
			if beside && !w.handoff.isOn() {
				rerr := r.releaseClaimed(ctx, rows, errHandoffOff)
				waitMark()
				if firstErr == nil && rerr == nil {
					return total, errHandoffOff
				}
				return total, errors.Join(firstErr, rerr)
			}
			if !beside {
				n, herr := r.publishHandoffs(ctx, w)
				total += n
				if herr != nil && firstErr == nil {
					firstErr = herr
				}
			}
		}
		// Claim the next batch while this one is published, unless this
		// claim was short (the outbox is drained), a step failed (the
		// broker or the database is down: back off instead), the relay is
		// stopping, or the worker yields to production (it then claims the
		// next batch after this one is marked and a pause).
		r.claimed(w, len(rows))
		more := len(rows) >= limit && firstErr == nil && ctx.Err() == nil
		yield := r.yields(w)
		var next chan claimResult
		if more && !yield {
			limit = r.limit(w)
			began = time.Now()
			next = make(chan claimResult, 1)
			go func() {
				rows, err := r.claim(ctx, w.priorities, limit)
				next <- claimResult{rows, err}
			}()
		}
		m, perr := r.publish(ctx, rows)
		if perr != nil {
			r.setHealth(perr, true)
			if firstErr == nil {
				firstErr = perr
			}
		} else {
			waitMark() // at most one mark in flight
			mark = m
		}
		switch {
		case more && yield:
			// Production rows are being relayed: this batch is marked, and
			// the worker pauses yieldFactor times as long as the batch took,
			// before it claims the next (lanes.go).
			waitMark()
			if firstErr != nil || !pause(ctx, yieldFactor*time.Since(began)) {
				return total, firstErr
			}
			limit = r.limit(w)
			began = time.Now()
			rows, err = r.claim(ctx, w.priorities, limit)
		case next == nil:
			waitMark()
			return total, firstErr
		default:
			res := <-next
			rows, err = res.rows, res.err
		}
		if err == nil && len(rows) > 0 && r.brokerDown.Load() {
			// Claimed while the batch before it met an unreachable broker
			// (in this loop or another): hand it back unpublished, without
			// an attempt, as that batch was.
			rerr := r.releaseClaimed(ctx, rows, firstErr)
			waitMark()
			if firstErr == nil {
				firstErr = errBrokerDown // not a drain that succeeded
			}
			return total, errors.Join(firstErr, rerr)
		}
	}
}

// releaseClaimed releases a claimed batch that is not published because the
// broker is unreachable.
func (r *Relay) releaseClaimed(ctx context.Context, rows []lanewaystore.OutboxRow, cause error) error {
	if cause == nil {
		cause = errBrokerDown
	}
	rctx, cancel := finishCtx(ctx)
	defer cancel()
	return r.release(rctx, rows, cause, false)
}

var errBrokerDown = errors.New("outbox: broker unreachable")

type claimResult struct {
	rows []lanewaystore.OutboxRow
	err  error
}

// RunOnce runs one claim and publish cycle and returns the number of rows
// published.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	n, _, err := r.cycle(ctx)
	return n, err
}

// batchFinishTimeout bounds publishing and marking one claimed batch after
// the relay has been asked to stop.
const batchFinishTimeout = 10 * time.Second

func (r *Relay) cycle(ctx context.Context) (published int, full bool, err error) {
	brokerTried := false
	defer func() { r.setHealth(err, brokerTried) }()
	rows, err := r.claim(ctx, nil, r.cfg.BatchSize)
	if err != nil || len(rows) == 0 {
		return 0, false, err
	}
	brokerTried = true
	m, err := r.publish(ctx, rows)
	if err != nil {
		return 0, false, err
	}
	n, err := m.wait()
	return n, len(rows) >= r.cfg.BatchSize, err
}

// claim leases the next batch of at most limit rows with a priority in
// prios (nil: any). Once a claim is under way it finishes even
// if Stop cancels ctx: cutting the claim's commit, or the gap between
// publish and mark, would leave rows leased and have the next engine publish
// them again. The claimed batch is then published and marked under the same
// rule; the work stays bounded by batchFinishTimeout per step.
func (r *Relay) claim(ctx context.Context, prios *lanewaystore.PriorityRange, limit int) ([]lanewaystore.OutboxRow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cctx, cancel := finishCtx(ctx)
	defer cancel()
	rows, err := r.store.ClaimOutbox(cctx, lanewaystore.ClaimParams{
		WorkerID:   r.cfg.WorkerID,
		Limit:      limit,
		Lease:      r.cfg.Lease,
		Now:        r.cfg.Now(),
		Priorities: prios,
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", err)
	}
	return rows, nil
}

func finishCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), batchFinishTimeout)
}

// publish appends the claimed rows to their streams in one pipelined call
// and starts marking them published. A failed publish marks the rows failed
// before it returns.
func (r *Relay) publish(ctx context.Context, rows []lanewaystore.OutboxRow) (*pendingMark, error) {
	marks, err := r.publishRows(ctx, rows)
	if err != nil {
		return nil, err
	}
	m := &pendingMark{done: make(chan struct{})}
	go func() {
		defer close(m.done)
		m.n, m.err = r.markPublished(ctx, rows, marks)
	}()
	return m, nil
}

// publishRows appends rows to their streams in one pipelined call and
// returns what marks them published. A failed publish marks the rows failed
// (or releases them when the broker is unreachable) before it returns.
func (r *Relay) publishRows(ctx context.Context, rows []lanewaystore.OutboxRow) ([]lanewaystore.PublishedRow, error) {
	pctx, cancel := finishCtx(ctx)
	defer cancel()
	marks, perr := r.appendRows(pctx, rows)
	if perr != nil {
		return nil, r.publishFailed(pctx, rows, perr)
	}
	return marks, nil
}

// appendRows appends rows to their streams in one pipelined call and
// returns what marks them published; on an error the rows are left as
// they are, for publishFailed. Rows an unsettled attempt already appended
// are not appended again (lapsed.go). pctx is the publish's (finishCtx),
// which its failure's bookkeeping shares: a publish that used up the time
// left to a stopping relay leaves its rows to their lease.
func (r *Relay) appendRows(pctx context.Context, rows []lanewaystore.OutboxRow) ([]lanewaystore.PublishedRow, error) {
	pubs := make([]lanewaybroker.Publication, len(rows))
	marks := make([]lanewaystore.PublishedRow, len(rows))
	for i, row := range rows {
		// The row holds the logical category ("customer",
		// "customer:command") and the aggregate's stream ("customer-42");
		// the naming gives the primary stream of the aggregate's partition.
		stream := r.cfg.Lanes.Route(r.cfg.Lanes.Naming.PrimaryFor(row.StreamCategory, row.StreamName), lanes.Priority(row.Priority))
		pubs[i] = lanewaybroker.Publication{Stream: stream, Data: entryData(row)}
		marks[i] = lanewaystore.PublishedRow{ID: row.ID, Stream: stream}
	}
	found, err := r.findAppended(pctx, rows, pubs)
	if err != nil {
		return marks, err
	}
	if found != nil {
		rest, restPubs := withoutFound(rows, pubs, found)
		if len(restPubs) == 0 {
			if err := r.waitFound(pctx); err != nil {
				return marks, err
			}
			r.countFound(len(rows), 0)
			return marks, nil
		}
		r.countFound(len(rows)-len(rest), len(rest))
		rows, pubs = rest, restPubs
	}
	var traced func(error)
	if r.cfg.Trace != nil {
		traced = r.cfg.Trace(pctx, rows, pubs)
	}
	_, perr := r.publishEntries(pctx, pubs)
	if traced != nil {
		traced(perr)
	}
	return marks, perr
}

// publishFailed records rows whose publish failed with perr: released when
// the broker is unreachable (no attempt counted), marked failed otherwise.
// It returns the publish error, with the bookkeeping's if that failed too.
func (r *Relay) publishFailed(pctx context.Context, rows []lanewaystore.OutboxRow, perr error) error {
	err := fmt.Errorf("outbox: publish %d rows: %w", len(rows), perr)
	var ferr error
	if r.brokerUnreachable(pctx, perr) {
		r.setBrokerDown(perr)
		ferr = r.release(pctx, rows, perr, true)
	} else {
		ferr = r.markFailed(pctx, rows, perr)
	}
	if ferr != nil {
		return errors.Join(err, ferr)
	}
	return err
}

// markPublished marks published rows whose entries are in the broker, and
// returns how many it marked.
func (r *Relay) markPublished(ctx context.Context, rows []lanewaystore.OutboxRow, marks []lanewaystore.PublishedRow) (int, error) {
	mctx, cancel := finishCtx(ctx)
	defer cancel()
	at := r.cfg.Now()
	if err := r.store.MarkPublished(mctx, lanewaystore.MarkPublishedParams{
		WorkerID: r.cfg.WorkerID,
		Rows:     marks,
		At:       at,
	}); err != nil {
		// The entries are in the broker; the rows are republished when
		// their lease expires (at-least-once).
		return 0, fmt.Errorf("outbox: mark %d rows published: %w", len(rows), err)
	}
	r.published.Add(int64(len(rows)))
	r.observePublished(rows, marks, at)
	return len(rows), nil
}

// pendingMark is a MarkPublished in flight; its owner waits for it.
type pendingMark struct {
	done chan struct{}
	n    int
	err  error
}

func (m *pendingMark) wait() (int, error) {
	<-m.done
	return m.n, m.err
}

// entryData splices the stored JSON into the envelope. The stored bytes are
// not re-encoded: the metadata already holds the payload's checksum, and
// re-encoding could change the payload's bytes.
func entryData(row lanewaystore.OutboxRow) string {
	return envelope.EntryData(row.Data, row.Metadata)
}

func (r *Relay) observePublished(rows []lanewaystore.OutboxRow, marks []lanewaystore.PublishedRow, at time.Time) {
	type agg struct {
		n      int
		oldest time.Time
	}
	by := map[string]*agg{}
	var order []string
	for i, m := range marks {
		a := by[m.Stream]
		if a == nil {
			a = &agg{oldest: rows[i].CreatedAt}
			by[m.Stream] = a
			order = append(order, m.Stream)
		}
		a.n++
		if rows[i].CreatedAt.Before(a.oldest) {
			a.oldest = rows[i].CreatedAt
		}
	}
	for _, s := range order {
		a := by[s]
		r.cfg.Observer.Published(s, a.n, max(at.Sub(a.oldest), 0))
	}
}

// markFailed records a failed publish. Rows of one batch may have different
// retry counts, so they are grouped by their new count, each group with its
// own next_retry_at; a row whose new count reaches MaxAttempts is abandoned.
func (r *Relay) markFailed(ctx context.Context, rows []lanewaystore.OutboxRow, cause error) error {
	msg := cause.Error()
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText]
	}
	groups := map[int][]int64{}
	var counts []int
	for _, row := range rows {
		n := row.RetryCount + 1
		if _, ok := groups[n]; !ok {
			counts = append(counts, n)
		}
		groups[n] = append(groups[n], row.ID)
	}
	now := r.cfg.Now()
	var errs []error
	for _, n := range counts {
		ids := groups[n]
		abandon := n >= r.cfg.Retry.MaxAttempts
		err := r.store.MarkFailed(ctx, lanewaystore.MarkFailedParams{
			WorkerID:    r.cfg.WorkerID,
			IDs:         ids,
			Error:       msg,
			NextRetryAt: now.Add(RetryDelay(r.cfg.Retry, n)),
			Abandon:     abandon,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("outbox: mark %d rows failed: %w", len(ids), err))
			continue
		}
		if abandon {
			r.abandoned.Add(int64(len(ids)))
			r.cfg.Observer.Abandoned(len(ids))
			r.log.Error("outbox rows abandoned after all publish attempts",
				"rows", len(ids), "attempts", n, "error", msg)
		} else {
			r.failed.Add(int64(len(ids)))
			r.cfg.Observer.Failed(len(ids))
		}
	}
	return errors.Join(errs...)
}

// release hands rows back without counting an attempt: rows whose publish
// failed on an unreachable broker (sent: the append may have landed, so
// the next claim looks for them in their streams), or rows given back before
// they were sent. If the database does not answer either, the rows stay
// leased and are claimed again when their lease expires.
func (r *Relay) release(ctx context.Context, rows []lanewaystore.OutboxRow, cause error, sent bool) error {
	msg := cause.Error()
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText]
	}
	ids := make([]int64, len(rows))
	for i, row := range rows {
		ids[i] = row.ID
	}
	if err := r.store.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: r.cfg.WorkerID, IDs: ids, Error: msg, Outage: true, NotSent: !sent}); err != nil {
		return fmt.Errorf("outbox: release %d rows: %w", len(ids), err)
	}
	return nil
}

// RetryDelay is the delay before publish attempt n+1 after the n-th failure
// (n >= 1): BaseDelay * 2^(n-1), spread by ±25% when Jitter is set, capped
// at MaxBackoff. Zero fields take their defaults.
func RetryDelay(p Retry, n int) time.Duration {
	base, maxB := p.BaseDelay, p.MaxBackoff
	if base <= 0 {
		base = BaseDelayDefault
	}
	if maxB <= 0 {
		maxB = MaxBackoffDefault
	}
	d := base
	for i := 1; i < n && d < maxB; i++ {
		d *= 2
	}
	if p.Jitter {
		d = jitter(d)
	}
	return min(d, maxB)
}

// Health states of the relay, for logging once per change.
const (
	healthy int32 = iota
	claimFailing
	publishFailing
)

// setHealth logs once per state change, not per batch. An empty claim
// proves the database is back but says nothing of the broker: while
// failing rows wait for their next_retry_at the claims come back empty,
// and calling that a recovery would log recovered/failing on every retry.
func (r *Relay) setHealth(err error, brokerTried bool) {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	if err != nil && !errors.Is(err, context.Canceled) {
		state := claimFailing
		if brokerTried {
			state = publishFailing
		}
		if r.failing.Swap(state) == healthy && !r.downLogged.Load() {
			r.log.Warn("outbox relay failing; backing off and retrying", "error", err)
		}
		return
	}
	if err != nil || (!brokerTried && r.failing.Load() == publishFailing) {
		return
	}
	if r.downLogged.Load() {
		return // the end of a broker outage is logged by brokerBack
	}
	if r.failing.Swap(healthy) != healthy {
		r.log.Info("outbox relay recovered")
	}
}
