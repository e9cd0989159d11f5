// Package outbox is the outbox relay: it claims committed outbox rows,
// routes each to its lane's stream, publishes them to the broker in one
// pipelined round trip per batch and marks them published, recording the
// physical stream.
//
// The relay is woken at once when rows commit (DESIGN.md section 5,
// guarantee 0): by Notify from the unit of work in the same process, and by
// the store's Notifier (PostgreSQL LISTEN/NOTIFY) across processes. Polling
// with an idle back-off is only the fallback; on a store without a Notifier
// (SQLite) the back-off is capped at 25ms so writers in other processes are
// still seen quickly.
//
// Failures never lose rows: a failed publish marks the batch failed with an
// exponential, capped, optionally jittered next_retry_at, and rows are
// abandoned (kept, with last_error) once they have used MaxAttempts publish
// attempts. Every retry key is honoured (unlike the reference, defects G7
// and G8). Delivery is at-least-once: a publish whose reply is lost, or a
// MarkPublished that fails, republishes after the lease expires.
package outbox

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

// Defaults of Config's fields.
const (
	BatchSizeDefault          = 500
	LeaseDefault              = 30 * time.Second
	TickIntervalDefault       = 10 * time.Millisecond
	MaxTickIntervalDefault    = time.Second
	MaxAttemptsDefault        = 5
	BaseDelayDefault          = time.Second
	MaxBackoffDefault         = 60 * time.Second
	CleanupIntervalDefault    = time.Minute
	PublishedRetentionDefault = 168 * time.Hour
	AbandonedRetentionDefault = 720 * time.Hour
	CleanupLimitDefault       = 5000
	BackfillSuffixDefault     = "backfill"

	// NoNotifierMaxTick caps the idle poll interval on stores that cannot
	// wake the relay across processes (SQLite).
	NoNotifierMaxTick = 25 * time.Millisecond

	// errorBackoffCap bounds the loop's back-off while the broker or the
	// database is down.
	errorBackoffCap = 5 * time.Second
	// maxErrorText bounds last_error.
	maxErrorText = 1024
)

// Lanes is the routing part of [server.priority_lanes].
type Lanes struct {
	// Enabled routes priorities below Threshold to the backfill lane.
	// Defaults to false.
	Enabled bool
	// Threshold: priority < Threshold goes to backfill. Defaults to 0.
	Threshold int
	// BackfillSuffix names the backfill lane. Defaults to "backfill".
	BackfillSuffix string
}

// Retry configures publish retries.
type Retry struct {
	// MaxAttempts is the number of publish attempts before a row is
	// abandoned. Defaults to 5.
	MaxAttempts int
	// BaseDelay is the delay after the first failure, doubled per failure.
	// Defaults to 1s.
	BaseDelay time.Duration
	// MaxBackoff caps the delay. Defaults to 60s.
	MaxBackoff time.Duration
	// Jitter spreads each delay by up to ±25% so failing rows do not retry
	// in step. Zero value false; the engine passes the configured value
	// (true by default in domain.toml).
	Jitter bool
}

// Observer receives metrics events. Methods are called from the relay's
// goroutines and must not block.
type Observer interface {
	// Published reports n rows appended to stream; latency is the age of
	// the oldest of them (commit to publish).
	Published(stream string, n int, latency time.Duration)
	// Failed reports n rows whose publish failed and will be retried.
	Failed(n int)
	// Abandoned reports n rows that used all their attempts.
	Abandoned(n int)
}

// Config configures a Relay. The zero value of every field means its
// default.
type Config struct {
	// WorkerID names this relay in locked_by. Defaults to
	// "relay-<hostname>-<pid>-<6 hex>".
	WorkerID string
	// BatchSize is the number of rows per claim. Defaults to 500.
	BatchSize int
	// Lease is how long claimed rows stay leased to this relay. Defaults
	// to 30s.
	Lease time.Duration
	// TickInterval is the first idle poll interval. Defaults to 10ms.
	TickInterval time.Duration
	// MaxTickInterval caps the doubling idle poll interval. Defaults to 1s;
	// at most 25ms on a store without a Notifier.
	MaxTickInterval time.Duration
	// Retry configures publish retries.
	Retry Retry
	// CleanupInterval is the time between cleanup runs. Defaults to 1m.
	CleanupInterval time.Duration
	// PublishedRetention is how long published rows are kept. Defaults to
	// 168h.
	PublishedRetention time.Duration
	// AbandonedRetention is how long abandoned rows are kept. Defaults to
	// 720h.
	AbandonedRetention time.Duration
	// CleanupLimit bounds the rows one cleanup statement deletes. Defaults
	// to 5000.
	CleanupLimit int
	// Lanes configures routing.
	Lanes Lanes
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock, for tests. Defaults to time.Now.
	Now func() time.Time
	// Observer receives metrics events. Optional.
	Observer Observer
}

func (c Config) withDefaults(hasNotifier bool) Config {
	if c.WorkerID == "" {
		c.WorkerID = DefaultWorkerID()
	}
	if c.BatchSize <= 0 {
		c.BatchSize = BatchSizeDefault
	}
	if c.Lease <= 0 {
		c.Lease = LeaseDefault
	}
	if c.TickInterval <= 0 {
		c.TickInterval = TickIntervalDefault
	}
	if c.MaxTickInterval <= 0 {
		c.MaxTickInterval = MaxTickIntervalDefault
	}
	if !hasNotifier && c.MaxTickInterval > NoNotifierMaxTick {
		c.MaxTickInterval = NoNotifierMaxTick
	}
	if c.TickInterval > c.MaxTickInterval {
		c.TickInterval = c.MaxTickInterval
	}
	if c.Retry.MaxAttempts <= 0 {
		c.Retry.MaxAttempts = MaxAttemptsDefault
	}
	if c.Retry.BaseDelay <= 0 {
		c.Retry.BaseDelay = BaseDelayDefault
	}
	if c.Retry.MaxBackoff <= 0 {
		c.Retry.MaxBackoff = MaxBackoffDefault
	}
	if c.Retry.MaxBackoff < c.Retry.BaseDelay {
		c.Retry.MaxBackoff = c.Retry.BaseDelay
	}
	if c.CleanupInterval <= 0 {
		c.CleanupInterval = CleanupIntervalDefault
	}
	if c.PublishedRetention <= 0 {
		c.PublishedRetention = PublishedRetentionDefault
	}
	if c.AbandonedRetention <= 0 {
		c.AbandonedRetention = AbandonedRetentionDefault
	}
	if c.CleanupLimit <= 0 {
		c.CleanupLimit = CleanupLimitDefault
	}
	if c.Lanes.BackfillSuffix == "" {
		c.Lanes.BackfillSuffix = BackfillSuffixDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c
}

// DefaultWorkerID returns "relay-<hostname>-<pid>-<6 hex>".
func DefaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	b := make([]byte, 3)
	_, _ = crand.Read(b)
	return fmt.Sprintf("relay-%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Route returns the physical stream of a row of category ("customer" or
// "customer:command") at priority: the backfill lane
// "<category>:<suffix>" when lanes are enabled and priority is strictly
// below the threshold, the category itself otherwise. An empty suffix means
// the default "backfill".
func Route(category string, priority int, lanes Lanes) string {
	if !lanes.Enabled || priority >= lanes.Threshold {
		return category
	}
	suffix := lanes.BackfillSuffix
	if suffix == "" {
		suffix = BackfillSuffixDefault
	}
	return category + ":" + suffix
}

// Wakeups counts what woke the relay loop.
type Wakeups struct {
	Notify int64 // in-process Notify
	Listen int64 // the store's cross-process notification
	Poll   int64 // the fallback poll timer
}

// Stats are the relay's counters since New.
type Stats struct {
	Wakeups   Wakeups
	Published int64
	Failed    int64
	Abandoned int64
}

// Relay publishes outbox rows. Create it with New.
type Relay struct {
	store  lanewaystore.Store
	broker lanewaybroker.Broker
	cfg    Config
	log    *slog.Logger

	notifyCh chan struct{}
	listenCh chan struct{}

	failing    atomic.Int32 // a health* state
	brokerDown atomic.Bool  // paused on an unreachable broker (unreachable.go)

	wakeNotify, wakeListen, wakePoll atomic.Int64
	published, failed, abandoned     atomic.Int64

	mu      sync.Mutex
	running bool
	cancel  context.CancelFunc
	stopL   func()
	wg      sync.WaitGroup
}

// New returns a relay over store and broker. It does nothing until Start
// (or RunOnce).
func New(store lanewaystore.Store, broker lanewaybroker.Broker, cfg Config) *Relay {
	_, hasNotifier := store.(lanewaystore.Notifier)
	cfg = cfg.withDefaults(hasNotifier)
	return &Relay{
		store:    store,
		broker:   broker,
		cfg:      cfg,
		log:      cfg.Logger.With("component", "outbox_relay", "worker_id", cfg.WorkerID),
		notifyCh: make(chan struct{}, 1),
		listenCh: make(chan struct{}, 1),
	}
}

// WorkerID is the relay's locked_by value.
func (r *Relay) WorkerID() string { return r.cfg.WorkerID }

// Notify wakes the relay: rows have just committed in this process. It
// never blocks; wake-ups that arrive while one is pending coalesce.
func (r *Relay) Notify() {
	select {
	case r.notifyCh <- struct{}{}:
	default:
	}
}

func (r *Relay) listenNotify() {
	select {
	case r.listenCh <- struct{}{}:
	default:
	}
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	return Stats{
		Wakeups: Wakeups{
			Notify: r.wakeNotify.Load(),
			Listen: r.wakeListen.Load(),
			Poll:   r.wakePoll.Load(),
		},
		Published: r.published.Load(),
		Failed:    r.failed.Load(),
		Abandoned: r.abandoned.Load(),
	}
}

// Start starts the relay loop and the cleanup loop, and listens for the
// store's cross-process notifications when it has a Notifier (failing
// when listening cannot start). It does not block. The loops run until
// Stop or until ctx is done.
func (r *Relay) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return errors.New("outbox: relay already started")
	}
	rctx, cancel := context.WithCancel(ctx)
	var stopL func()
	if n, ok := r.store.(lanewaystore.Notifier); ok {
		stop, err := n.ListenOutbox(rctx, r.listenNotify)
		if err != nil {
			cancel()
			return fmt.Errorf("outbox: start relay: %w", err)
		}
		stopL = stop
	}
	r.running, r.cancel, r.stopL = true, cancel, stopL
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		r.loop(rctx)
	}()
	go func() {
		defer r.wg.Done()
		r.cleanupLoop(rctx)
	}()
	r.log.Debug("outbox relay started", "batch_size", r.cfg.BatchSize, "max_tick_interval", r.cfg.MaxTickInterval)
	return nil
}

// Stop stops the loops and waits for them, at most until ctx is done. Rows
// claimed by an interrupted cycle are released by their lease.
func (r *Relay) Stop(ctx context.Context) error {
	r.mu.Lock()
	if !r.running {
		r.mu.Unlock()
		return nil
	}
	r.running = false
	cancel, stopL := r.cancel, r.stopL
	r.mu.Unlock()

	cancel()
	if stopL != nil {
		stopL()
	}
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("outbox: stop relay: %w", ctx.Err())
	}
}

// loop waits for a wake-up, then drains the outbox.
func (r *Relay) loop(ctx context.Context) {
	interval := r.cfg.TickInterval
	errStreak := 0

	// Rows may have committed before the relay started: drain once at once.
	wait := time.Duration(0)
	first := true
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if !first {
			timer.Reset(wait)
			if errStreak > 0 {
				// Broker or database down: wait out the back-off, ignoring
				// wake-ups so a busy writer cannot drive a hot loop.
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			} else {
				select {
				case <-ctx.Done():
					return
				case <-r.notifyCh:
					r.wakeNotify.Add(1)
				case <-r.listenCh:
					r.wakeListen.Add(1)
				case <-timer.C:
					r.wakePoll.Add(1)
				}
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		first = false

		if r.brokerDown.Load() && !r.waitForBroker(ctx) {
			return
		}
		n, err := r.drain(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			errStreak++
			wait = errorBackoff(r.cfg.TickInterval, errStreak)
			interval = r.cfg.TickInterval
		case n > 0:
			errStreak = 0
			interval = r.cfg.TickInterval
			wait = interval
		default:
			errStreak = 0
			wait = interval
			interval = min(interval*2, r.cfg.MaxTickInterval)
		}
	}
}

// errorBackoff doubles from base (at least 50ms) per consecutive error up to
// errorBackoffCap, with ±25% jitter.
func errorBackoff(base time.Duration, streak int) time.Duration {
	d := max(base, 50*time.Millisecond)
	for i := 1; i < streak && d < errorBackoffCap; i++ {
		d *= 2
	}
	d = min(d, errorBackoffCap)
	return jitter(d)
}

func jitter(d time.Duration) time.Duration {
	f := 1 + (rand.Float64()*2-1)*0.25
	return time.Duration(float64(d) * f)
}

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
func (r *Relay) drain(ctx context.Context) (int, error) {
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

	rows, err := r.claim(ctx)
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
		// Claim the next batch while this one is published, unless this
		// claim was short (the outbox is drained), a step failed (the
		// broker or the database is down: back off instead), or the relay
		// is stopping.
		var next chan claimResult
		if len(rows) >= r.cfg.BatchSize && firstErr == nil && ctx.Err() == nil {
			next = make(chan claimResult, 1)
			go func() {
				rows, err := r.claim(ctx)
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
		if next == nil {
			waitMark()
			return total, firstErr
		}
		res := <-next
		rows, err = res.rows, res.err
	}
}

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
	rows, err := r.claim(ctx)
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

// claim leases the next batch. Once a claim is under way it finishes even
// if Stop cancels ctx: cutting the claim's commit, or the gap between
// publish and mark, would leave rows leased and have the next engine publish
// them again. The claimed batch is then published and marked under the same
// rule; the work stays bounded by batchFinishTimeout per step.
func (r *Relay) claim(ctx context.Context) ([]lanewaystore.OutboxRow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cctx, cancel := finishCtx(ctx)
	defer cancel()
	rows, err := r.store.ClaimOutbox(cctx, lanewaystore.ClaimParams{
		WorkerID: r.cfg.WorkerID,
		Limit:    r.cfg.BatchSize,
		Lease:    r.cfg.Lease,
		Now:      r.cfg.Now(),
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
	pctx, cancel := finishCtx(ctx)
	defer cancel()
	pubs := make([]lanewaybroker.Publication, len(rows))
	marks := make([]lanewaystore.PublishedRow, len(rows))
	for i, row := range rows {
		stream := Route(row.StreamCategory, row.Priority, r.cfg.Lanes)
		pubs[i] = lanewaybroker.Publication{Stream: stream, Data: entryData(row)}
		marks[i] = lanewaystore.PublishedRow{ID: row.ID, Stream: stream}
	}
	if _, perr := r.broker.Publish(pctx, pubs); perr != nil {
		if r.brokerUnreachable(pctx, perr) {
			r.setBrokerDown(true, perr)
			if ferr := r.release(pctx, rows, perr); ferr != nil {
				return nil, errors.Join(fmt.Errorf("outbox: publish %d rows: %w", len(rows), perr), ferr)
			}
			return nil, fmt.Errorf("outbox: publish %d rows: %w", len(rows), perr)
		}
		if ferr := r.markFailed(pctx, rows, perr); ferr != nil {
			return nil, errors.Join(fmt.Errorf("outbox: publish %d rows: %w", len(rows), perr), ferr)
		}
		return nil, fmt.Errorf("outbox: publish %d rows: %w", len(rows), perr)
	}
	m := &pendingMark{done: make(chan struct{})}
	go func() {
		defer close(m.done)
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
			m.err = fmt.Errorf("outbox: mark %d rows published: %w", len(rows), err)
			return
		}
		m.n = len(rows)
		r.published.Add(int64(len(rows)))
		r.observePublished(rows, marks, at)
	}()
	return m, nil
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
	b := make([]byte, 0, len(row.Data)+len(row.Metadata)+24)
	b = append(b, `{"data":`...)
	b = append(b, row.Data...)
	b = append(b, `,"metadata":`...)
	b = append(b, row.Metadata...)
	b = append(b, '}')
	return string(b)
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

// release hands rows whose publish failed on an unreachable broker back
// without counting an attempt. If the database does not answer either, the
// rows stay leased and are claimed again when their lease expires.
func (r *Relay) release(ctx context.Context, rows []lanewaystore.OutboxRow, cause error) error {
	msg := cause.Error()
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText]
	}
	ids := make([]int64, len(rows))
	for i, row := range rows {
		ids[i] = row.ID
	}
	if err := r.store.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: r.cfg.WorkerID, IDs: ids, Error: msg, Outage: true}); err != nil {
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
	if err != nil && !errors.Is(err, context.Canceled) {
		state := claimFailing
		if brokerTried {
			state = publishFailing
		}
		if r.failing.Swap(state) == healthy && !r.brokerDown.Load() {
			r.log.Warn("outbox relay failing; backing off and retrying", "error", err)
		}
		return
	}
	if err != nil || (!brokerTried && r.failing.Load() == publishFailing) {
		return
	}
	if r.failing.Swap(healthy) != healthy {
		r.log.Info("outbox relay recovered")
	}
}

// Cleanup deletes old published and abandoned rows in batches of
// CleanupLimit until a batch deletes fewer, and returns the total.
func (r *Relay) Cleanup(ctx context.Context) (int64, error) {
	var total int64
	for {
		now := r.cfg.Now()
		n, err := r.store.CleanupOutbox(ctx, lanewaystore.CleanupParams{
			PublishedBefore: now.Add(-r.cfg.PublishedRetention),
			AbandonedBefore: now.Add(-r.cfg.AbandonedRetention),
			Limit:           r.cfg.CleanupLimit,
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("outbox: cleanup: %w", err)
		}
		if n < int64(r.cfg.CleanupLimit) || ctx.Err() != nil {
			return total, nil
		}
	}
}

func (r *Relay) cleanupLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.CleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.Cleanup(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("outbox cleanup failed", "error", err)
		case n > 0:
			r.log.Info("outbox cleanup completed", "deleted", n)
		}
	}
}

type nopObserver struct{}

func (nopObserver) Published(string, int, time.Duration) {}
func (nopObserver) Failed(int)                           {}
func (nopObserver) Abandoned(int)                        {}
