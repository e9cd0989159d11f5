package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laneway/laneway/internal/startstop"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

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
	// HandedOff counts production rows published without a claim, handed
	// over in memory by the unit of work that wrote them (handoff.go).
	HandedOff int64
	// FoundAppended counts rows an unsettled earlier attempt had already
	// appended to their streams, marked published without appending them
	// again (lapsed.go).
	FoundAppended int64
	// LeasesEnded counts rows whose lease this relay ended because the
	// relay holding it had stopped (stopped.go).
	LeasesEnded int64
}

// Relay publishes outbox rows. Create it with New.
type Relay struct {
	store  lanewaystore.Store
	broker lanewaybroker.Broker
	cfg    Config
	log    *slog.Logger

	// workers are the claim loops: one over every row, or with priority
	// lanes one for the production rows and one for the backfill rows
	// (lanes.go).
	workers []*worker
	// productionAt is the UnixNano of the production worker's last
	// non-empty claim: while it is recent the backfill worker claims
	// smaller batches.
	productionAt atomic.Int64

	// healthMu orders the health and outage transitions of the relay's
	// claim loops, so each state change is logged once.
	healthMu   sync.Mutex
	failing    atomic.Int32 // a health* state
	brokerDown atomic.Bool  // paused on an unreachable broker (unreachable.go)
	downLogged atomic.Bool  // the outage's WARN is out, its INFO not yet

	// handoff is the production worker's queue of rows handed over in
	// memory (handoff.go); nil with lanes off.
	handoff *handoff

	wakeNotify, wakeListen, wakePoll        atomic.Int64
	published, failed, abandoned, handedOff atomic.Int64
	foundAppended, endedLeases              atomic.Int64

	// ender ends the leases of stopped relays (stopped.go); nil unless
	// cfg.StoppedRelays is set and the store is a LeaseEnder.
	ender lanewaystore.LeaseEnder
	// leasesEnded holds the stopped relays whose leases were ended; only
	// the goroutine of endStoppedLeases uses it.
	leasesEnded map[string]bool

	life startstop.Runner
}

// New returns a relay over store and broker. It does nothing until Start
// (or RunOnce).
func New(store lanewaystore.Store, broker lanewaybroker.Broker, cfg Config) *Relay {
	_, hasNotifier := store.(lanewaystore.Notifier)
	cfg = cfg.withDefaults(hasNotifier)
	if li, ok := store.(lanewaystore.LeasingInserter); !ok || !li.LeasesOnInsert() {
		cfg.NoHandOff = true // the store would drop the lease or not give the ids
	}
	r := &Relay{
		store:  store,
		broker: broker,
		cfg:    cfg,
		log:    cfg.Logger.With("component", "outbox_relay", "worker_id", cfg.WorkerID),
	}
	r.workers = r.newWorkers()
	if le, ok := store.(lanewaystore.LeaseEnder); ok && cfg.StoppedRelays != nil {
		r.ender, r.leasesEnded = le, map[string]bool{}
	}
	return r
}

// WorkerID is the relay's locked_by value.
func (r *Relay) WorkerID() string { return r.cfg.WorkerID }

// LeaseTime is how long the relay's claims, and the hand-off's inserts,
// lease rows to it.
func (r *Relay) LeaseTime() time.Duration { return r.cfg.Lease }

// Notify wakes every claim loop: rows have just committed in this process. It
// never blocks; wake-ups that arrive while one is pending coalesce.
func (r *Relay) Notify() { r.NotifyPriorities(math.MinInt, math.MaxInt) }

// NotifyPriorities wakes the claim loops that claim rows with a priority
// in [lo, hi]: rows of those priorities have just committed in this
// process. A production command's commit then does not also send the
// backfill loop to claim nothing, which on SQLite took the one writer from
// the production loop's claim, and a migration's commits do not wake the
// production loop.
func (r *Relay) NotifyPriorities(lo, hi int) {
	for _, w := range r.workers {
		if w.priorities == nil || (lo <= w.priorities.Max && hi >= w.priorities.Min) {
			signal(w.notifyCh)
		}
	}
}

func (r *Relay) listenNotify() {
	for _, w := range r.workers {
		signal(w.listenCh)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
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
		Published:     r.published.Load(),
		Failed:        r.failed.Load(),
		Abandoned:     r.abandoned.Load(),
		HandedOff:     r.handedOff.Load(),
		FoundAppended: r.foundAppended.Load(),
		LeasesEnded:   r.endedLeases.Load(),
	}
}

// Start starts the relay loop and the cleanup loop, and listens for the
// store's cross-process notifications when it has a Notifier (failing
// when listening cannot start). It does not block. The loops run until
// Stop or until ctx is done.
func (r *Relay) Start(ctx context.Context) error {
	if err := r.checkReplicated(); err != nil {
		return err
	}
	rctx, err := r.life.Start(ctx)
	if err != nil {
		return fmt.Errorf("outbox: relay: %w", err)
	}
	across := "poll" // how rows of other processes are found
	if st, ok := r.store.(lanewaystore.Notifier); ok {
		across = "notify"
		stop, err := st.ListenOutbox(rctx, r.listenNotify)
		if err != nil {
			_ = r.life.Stop(ctx)
			return fmt.Errorf("outbox: start relay: %w", err)
		}
		r.life.OnStop(stop)
	}
	for _, w := range r.workers {
		r.life.Go(func() { r.loop(rctx, w) })
	}
	r.life.GoEvery(rctx, r.cfg.CleanupInterval, r.cleanup)
	if r.ender != nil {
		r.life.GoEvery(rctx, r.cfg.StoppedCheckInterval, r.endStoppedLeases)
	}
	r.log.Debug("outbox relay started", "batch_size", r.cfg.BatchSize, "max_tick_interval", r.cfg.MaxTickInterval,
		"other_processes", across, "workers", len(r.workers))
	return nil
}

// Stop stops the loops and waits for them, at most until ctx is done. Rows
// claimed by an interrupted cycle are released by their lease.
func (r *Relay) Stop(ctx context.Context) error {
	if err := r.life.Stop(ctx); err != nil {
		return fmt.Errorf("outbox: relay: %w", err)
	}
	return nil
}

// loop waits for a wake-up, then drains w's rows from the outbox.
func (r *Relay) loop(ctx context.Context, w *worker) {
	if w.backfill {
		// On a store with one writer, the production worker's claims and
		// marks, and the producers' commits, go before this worker's.
		ctx = lanewaystore.AsBackfill(ctx)
	}
	interval := r.cfg.TickInterval
	errStreak := 0
	var bg besideClaim
	if w.handoff != nil {
		defer r.stopHandoff(w)
		defer bg.wait() // before stopHandoff: deferred calls run last first
	}

	// Rows may have committed before the relay started: drain once at once.
	// now skips the wait for a claim due at once (the start, a pass that
	// must be claimed again), so it is not counted as a wake-up.
	var wait time.Duration
	now := true
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wake := wakeClaim
		var pass claimPass
		if !now {
			// While a claim pass runs beside the hand-off the poll waits for
			// it: its end sets the next wait.
			var tick <-chan time.Time
			if !bg.running() {
				timer.Reset(wait)
				tick = timer.C
			}
			notifyC, listenC, readyC := w.notifyCh, w.listenCh, w.handoffReady()
			if errStreak > 0 {
				// Broker or database down: wait out the back-off, ignoring
				// wake-ups so a busy writer cannot drive a hot loop.
				notifyC, listenC, readyC = nil, nil, nil
			}
			select {
			case <-ctx.Done():
				return
			case <-notifyC:
				r.wakeNotify.Add(1)
			case <-listenC:
				r.wakeListen.Add(1)
			case <-tick:
				r.wakePoll.Add(1)
			case <-readyC:
				wake = wakeHandOff
			case pass = <-bg.done:
				wake = wakeClaimed
			}
			if tick != nil && !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		now = false

		if r.brokerDown.Load() && !r.waitForBroker(ctx) {
			return
		}
		var n int
		var err error
		switch wake {
		case wakeHandOff:
			n, err = r.publishHandoffs(ctx, w)
		case wakeClaimed:
			n, err = pass.n, pass.err
			if again := bg.ended(); again && err == nil {
				// Woken while it ran: claim again now.
				r.brokerBack()
				errStreak, now = 0, true
				continue
			}
		default:
			if bg.running() {
				bg.again = true
				continue
			}
			var started bool
			n, started, err = r.work(ctx, w, &bg)
			if started && err == nil {
				continue
			}
		}
		if err == nil {
			r.brokerBack()
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errHandoffOff):
			// A claim pass beside the hand-off gave its rows back: claim
			// them again at once, after the hand-off's (work).
			errStreak = 0
			now = true
		case err != nil:
			errStreak++
			wait = errorBackoff(r.cfg.TickInterval, errStreak)
			interval = r.cfg.TickInterval
		case wake == wakeHandOff:
			// Nothing was claimed: the poll keeps its pace, so production
			// handed over in memory does not bring the claims back to the
			// shortest interval (each an empty write transaction).
			errStreak = 0
			wait = interval
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

// What woke the relay loop.
const (
	wakeClaim   = iota // a notification, the poll, or the start: claim rows
	wakeHandOff        // rows handed over in memory have committed
	wakeClaimed        // the claim pass beside the hand-off ended
)

// work publishes w's rows: first those handed over in memory, then those
// it claims. While the hand-off is on, the claim pass runs beside it
// (beside.go): started reports that it was started in bg, and n then
// counts only the rows handed over.
func (r *Relay) work(ctx context.Context, w *worker, bg *besideClaim) (n int, started bool, err error) {
	if w.handoff == nil {
		n, err = r.drain(ctx, w, false)
		return n, false, err
	}
	n, err = r.publishHandoffs(ctx, w)
	if err != nil {
		return n, false, err
	}
	since := w.handoff.seqNow()
	if w.handoff.isOn() {
		bg.start(func() (int, error) { return r.claimBeside(ctx, w, since) })
		return n, true, nil
	}
	m, err := r.drain(ctx, w, false)
	if err == nil {
		w.handoff.resume(since, r.brokerDown.Load())
	}
	return n + m, false, err
}

// stopHandoff refuses further hand-offs when w's loop ends, and publishes
// the rows that have committed (rows that commit later are handed back).
func (r *Relay) stopHandoff(w *worker) {
	w.handoff.stop()
	ctx, cancel := context.WithTimeout(context.Background(), batchFinishTimeout)
	defer cancel()
	_, err := r.publishHandoffs(ctx, w)
	_, merr := w.handoff.finishMark()
	err = errors.Join(err, merr)
	if rows := w.handoff.takeSettled(); len(rows) > 0 {
		// Committed, but behind a unit of work of the same stream still
		// open: hand them back rather than leave them leased.
		err = errors.Join(err, r.release(ctx, rows, errRelayStopped, false))
	}
	if err != nil {
		r.log.Warn("outbox relay stopping: rows handed over in memory were not all published; they are claimed when their lease ends",
			"error", err)
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
