package lanecontrol

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/internal/consumer"
)

// PollDefault is how often an engine reads the controls: a pause reaches
// every engine within this, plus the time to cut its blocking read short.
const PollDefault = 250 * time.Millisecond

// Params configure a Controller.
type Params struct {
	Client redis.UniversalClient
	Domain string
	// Engine names this engine in the shared latency stats.
	Engine string
	// RatePerSecond is the configured backfill rate of every backfill lane
	// (backfill_rate_per_second); 0 is unlimited. An operator's throttle of
	// a lane overrides it.
	RatePerSecond float64
	// Governor is off when its Target is 0.
	Governor Governor
	// Poll defaults to PollDefault.
	Poll   time.Duration
	Logger *slog.Logger
}

// Controller is one engine's side of the lane controls: it polls the
// domain's controls, hands each consumer its view (consumer.Control),
// shares this engine's primary latencies and takes governor decisions.
type Controller struct {
	p       Params
	store   *Store
	limiter *redis_rate.Limiter

	mu    sync.Mutex
	lanes []*laneCtl
	snap  Snapshot
	secs  map[int64]*secondStats
	down  bool

	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Controller; nothing runs until Start.
func New(p Params) *Controller {
	if p.Poll <= 0 {
		p.Poll = PollDefault
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	p.Governor = p.Governor.withDefaults()
	return &Controller{
		p: p, store: NewStore(p.Client, p.Domain), limiter: redis_rate.NewLimiter(p.Client),
		secs: map[int64]*secondStats{}, done: make(chan struct{}),
	}
}

// Store is the Controller's store of controls.
func (c *Controller) Store() *Store { return c.store }

// governed reports whether the governor is on.
func (c *Controller) governed() bool { return c.p.Governor.Target > 0 }

// Governed reports whether the governor is on, so callers skip gathering
// what ObservePrimary and ObserveBackfill would ignore.
func (c *Controller) Governed() bool { return c.governed() }

// Consumer returns the Control of one consumer: group on primary and
// backfill ("" with lanes off), whose backfill slot limit is
// backfillConcurrency. Call before Start.
func (c *Controller) Consumer(group, primary, backfill string, backfillConcurrency int) consumer.Control {
	l := &laneCtl{c: c, group: group, primary: primary, backfill: backfill, bfConc: backfillConcurrency,
		changed: make(chan struct{}, 1)}
	l.state.Store(&consumer.ControlState{})
	c.mu.Lock()
	c.lanes = append(c.lanes, l)
	c.mu.Unlock()
	return l
}

// Start reads the controls once, so consumers start obeying them, and then
// polls them until Stop. It fails when Redis does not answer.
func (c *Controller) Start(ctx context.Context) error {
	snap, err := c.store.Load(ctx)
	if err != nil {
		return err
	}
	c.apply(snap)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	go c.loop(runCtx)
	return nil
}

// Stop ends the polling and waits for it. Stop before Start is a no-op.
func (c *Controller) Stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	<-c.done
}

func (c *Controller) loop(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.p.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.tick(ctx)
	}
}

// tick is one poll: share finished seconds, take a governor step when due,
// read the controls and pass them on.
func (c *Controller) tick(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := c.publish(ctx)
	var gov *GovernorState
	if err == nil && c.governed() {
		var st GovernorState
		var changed bool
		st, changed, err = c.store.stepGovernor(ctx, c.p.Governor, time.Now())
		if err == nil && changed {
			c.p.Logger.Info("backfill governor changed the allowance",
				"allowance", formatAllowance(st.Allowance), "primary_p99_ms", round1(st.PrimaryP99MS),
				"target_ms", st.TargetMS, "samples", st.Samples, "reason", st.Reason)
		}
		if err == nil {
			gov = &st
		}
	}
	var snap Snapshot
	if err == nil {
		snap, err = c.store.Load(ctx)
	}
	if err != nil {
		if ctx.Err() == nil && !c.down {
			c.p.Logger.Warn("lane controls unreadable; keeping the last ones", "error", err)
		}
		c.down = true
		return
	}
	if c.down {
		c.p.Logger.Info("lane controls readable again")
		c.down = false
	}
	if gov != nil && snap.Governor == nil {
		snap.Governor = gov
	}
	c.apply(snap)
}

// publish writes the finished seconds this engine measured.
func (c *Controller) publish(ctx context.Context) error {
	if !c.governed() {
		return nil
	}
	now := time.Now().Unix()
	c.mu.Lock()
	out := map[int64]*secondStats{}
	for sec, st := range c.secs {
		if sec < now {
			out[sec] = st
			delete(c.secs, sec)
		}
	}
	c.mu.Unlock()
	return c.store.publishSeconds(ctx, c.p.Engine, out)
}

// apply hands every consumer its view of snap.
func (c *Controller) apply(snap Snapshot) {
	c.mu.Lock()
	c.snap = snap
	lanes := append([]*laneCtl(nil), c.lanes...)
	c.mu.Unlock()
	for _, l := range lanes {
		l.update(c.view(l, snap))
	}
}

// view is one consumer's state under snap.
func (c *Controller) view(l *laneCtl, snap Snapshot) laneView {
	var v laneView
	_, v.st.PrimaryPaused = snap.PauseOf(l.primary, l.group)
	if l.backfill == "" {
		return v
	}
	_, v.st.BackfillPaused = snap.PauseOf(l.backfill, l.group)
	rate := c.p.RatePerSecond
	if t, ok := snap.ThrottleOf(l.backfill); ok {
		rate = t.PerSecond
	}
	if c.governed() && snap.Governor != nil {
		a := snap.Governor.Allowance
		v.st.BackfillConcurrency = BackfillConcurrency(l.bfConc, a)
		rate = BackfillRate(rate, snap.Governor.References[l.backfill+"|"+l.group], a)
	}
	if rate > 0 {
		v.st.Throttled = true
		v.limit = limitOf(rate)
	}
	v.rate = rate
	return v
}

// limitOf is the limiter's form of a rate: per second with a burst of a
// tenth of a second, or per minute below 20/s so fractions are kept. The
// burst is at least 2: with a burst of 1 the limiter's floating-point
// arithmetic can find an idle key one rounding error short of a whole grant,
// every time, and never grant again.
func limitOf(rate float64) redis_rate.Limit {
	if rate >= 20 {
		r := int(math.Round(rate))
		return redis_rate.Limit{Rate: r, Period: time.Second, Burst: max(2, r/10)}
	}
	return redis_rate.Limit{Rate: max(1, int(math.Round(rate*60))), Period: time.Minute, Burst: max(2, int(rate/10))}
}

// ObservePrimary records one primary message: written is when its entry
// was added to the stream, started and done when its handler ran.
func (c *Controller) ObservePrimary(written, done time.Time) {
	if !c.governed() {
		return
	}
	sec := done.Unix()
	c.mu.Lock()
	st := c.second(sec)
	st.Primary.Add(max(done.Sub(written), 0))
	c.mu.Unlock()
}

// ObserveBackfill counts one backfill message handled by handler on stream.
func (c *Controller) ObserveBackfill(stream, handler string, done time.Time) {
	if !c.governed() {
		return
	}
	c.mu.Lock()
	st := c.second(done.Unix())
	if st.Backfill == nil {
		st.Backfill = map[string]int64{}
	}
	st.Backfill[stream+"|"+handler]++
	c.mu.Unlock()
}

func (c *Controller) second(sec int64) *secondStats {
	st := c.secs[sec]
	if st == nil {
		st = &secondStats{Primary: Histogram{}}
		c.secs[sec] = st
	}
	return st
}

// Snapshot is the last controls read.
func (c *Controller) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}

// laneView is what one consumer is told.
type laneView struct {
	st    consumer.ControlState
	limit redis_rate.Limit
	rate  float64
}

// laneCtl is one consumer's Control.
type laneCtl struct {
	c                        *Controller
	group, primary, backfill string
	bfConc                   int
	changed                  chan struct{}
	state                    atomic.Pointer[consumer.ControlState]
	view                     atomic.Pointer[laneView]
	warned                   atomic.Bool
}

func (l *laneCtl) update(v laneView) {
	old := l.view.Load()
	l.view.Store(&v)
	if old != nil && old.st == v.st {
		return
	}
	st := v.st
	l.state.Store(&st)
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *laneCtl) Changed() <-chan struct{}     { return l.changed }
func (l *laneCtl) State() consumer.ControlState { return *l.state.Load() }

// TakeBackfill asks the lane's shared limiter for a start (one per call,
// whatever n: the limiter's "at most n" form can charge a fraction of a
// grant it does not give). A limiter error grants nothing for a short
// while (the backfill waits; primary is never limited), logged once until
// the limiter answers again.
func (l *laneCtl) TakeBackfill(ctx context.Context, n int) (int, time.Duration) {
	v := l.view.Load()
	if v == nil || !v.st.Throttled {
		return n, 0
	}
	res, err := l.c.limiter.AllowN(ctx, l.c.store.limitKey(l.backfill, l.group), v.limit, 1)
	if err != nil {
		if !l.warned.Swap(true) && !errors.Is(err, context.Canceled) {
			l.c.p.Logger.Warn("backfill rate limiter unavailable; backfill waits", "stream", l.backfill, "group", l.group, "error", err)
		}
		return 0, 500 * time.Millisecond
	}
	if l.warned.Swap(false) {
		l.c.p.Logger.Info("backfill rate limiter available again", "stream", l.backfill, "group", l.group)
	}
	if res.Allowed > 0 {
		return res.Allowed, 0
	}
	if res.RetryAfter <= 0 {
		return 0, 10 * time.Millisecond
	}
	return 0, res.RetryAfter
}

// LaneState is one consumer's controls as applied, for metrics.
type LaneState struct {
	Group, Primary, Backfill string
	PrimaryPaused            bool
	BackfillPaused           bool
	// RatePerSecond is the backfill rate in force (0 unlimited);
	// BackfillConcurrency the slot limit (0: the configured one).
	RatePerSecond       float64
	BackfillConcurrency int
}

// Lanes returns every consumer's controls as applied.
func (c *Controller) Lanes() []LaneState {
	c.mu.Lock()
	lanes := append([]*laneCtl(nil), c.lanes...)
	c.mu.Unlock()
	out := make([]LaneState, 0, len(lanes))
	for _, l := range lanes {
		ls := LaneState{Group: l.group, Primary: l.primary, Backfill: l.backfill}
		if v := l.view.Load(); v != nil {
			ls.PrimaryPaused, ls.BackfillPaused = v.st.PrimaryPaused, v.st.BackfillPaused
			ls.RatePerSecond, ls.BackfillConcurrency = v.rate, v.st.BackfillConcurrency
		}
		out = append(out, ls)
	}
	return out
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
