package laneway_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/lanecontrol"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/internal/tools/syncio"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore/pgstore"
)

// ctlRun is one handler execution seen by a ctlFleet.
type ctlRun struct {
	engine int
	lane   consumer.Lane
	id     string // stream + entry id
	done   time.Time
	err    error
}

// ctlFleet is engines of one domain (a unique name, so its lane controls
// are its own) on real Redis and PostgreSQL, with a projector whose
// duration the test sets per lane.
type ctlFleet struct {
	t       *testing.T
	name    string
	cat     string
	apps    []*laneway.App
	engines []*laneway.Engine
	brokers []lanewaybroker.Broker
	store   *lanecontrol.Store
	rdb     *redis.Client
	logs    *syncio.Buffer

	primarySleep, backfillSleep atomic.Int64 // nanoseconds

	mu     sync.Mutex
	runs   []ctlRun
	starts []time.Time // backfill handler starts
}

func newCtlFleet(t *testing.T, n int, tune func(*lanewayconfig.Config)) *ctlFleet {
	t.Helper()
	ctx := context.Background()
	f := &ctlFleet{t: t, name: "Ctl" + testsvc.RandomSuffix(4), cat: testsvc.Prefix() + "acct", logs: &syncio.Buffer{}}
	dbURL := testsvc.PostgresURL(t)
	redisURL := testsvc.RedisURL(t)
	opt, err := redis.ParseURL(redisURL)
	require.NoError(t, err)
	f.rdb = redis.NewClient(opt)
	t.Cleanup(func() { f.rdb.Close() })
	f.store = lanecontrol.NewStore(f.rdb, f.name)
	t.Cleanup(func() {
		_ = f.rdb.Del(context.Background(), "laneway:lanes:"+f.name+":control", "laneway:lanes:"+f.name+":governor").Err()
	})

	b := laneway.NewDomain(f.name)
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{Category: f.cat})
	laneway.RegisterEvent[Account, Opened](b)
	laneway.RegisterEvent[Account, Deposited](b)
	laneway.RegisterCommand[Account, OpenAccount](b, func(ctx context.Context, tx *laneway.Tx, c OpenAccount) error {
		a := laneway.New[Account](c.ID)
		a.Raise(Opened{Owner: c.Owner})
		return tx.Save(ctx, a)
	})
	h := laneway.NewHandler("AccountProjector")
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, e Opened, m laneway.Meta) error {
		d := f.backfillSleep.Load()
		if m.Priority >= laneway.Normal {
			d = f.primarySleep.Load()
		} else {
			f.mu.Lock()
			f.starts = append(f.starts, time.Now())
			f.mu.Unlock()
		}
		time.Sleep(time.Duration(d))
		return nil
	})
	b.AddHandler(h)
	dom, err := b.Build()
	require.NoError(t, err)

	for i := range n {
		cfg := lanewayconfig.Default()
		cfg.Server.PriorityLanes.Enabled = true
		cfg.Server.HTTP.Listen = "127.0.0.1:0"
		if tune != nil {
			tune(cfg)
		}
		st, err := pgstore.Open(ctx, dbURL)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
		require.NoError(t, err)
		br, err := redisbroker.Open(ctx, redisURL, redisbroker.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { br.Close() })
		eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br,
			Logger: slog.New(slog.NewTextHandler(f.logs, nil)),
			OnHandled: func(h laneway.Handled) {
				if h.Group != "AccountProjector" {
					return
				}
				lane := consumer.Primary
				if h.Lane == string(lanes.Backfill) {
					lane = consumer.Backfill
				}
				f.mu.Lock()
				f.runs = append(f.runs, ctlRun{engine: i, lane: lane, id: h.Stream + "/" + h.EntryID, done: time.Now(), err: h.Err})
				f.mu.Unlock()
			}})
		require.NoError(t, eng.Start(ctx))
		t.Cleanup(func() { require.NoError(t, eng.Stop(context.Background())) })
		f.apps, f.engines, f.brokers = append(f.apps, app), append(f.engines, eng), append(f.brokers, br)
	}
	return f
}

func (f *ctlFleet) backfill() string { return lanes.Naming{}.Backfill(f.cat) }

// send processes n OpenAccount commands at priority p, ids prefixed tag.
func (f *ctlFleet) send(p laneway.Priority, tag string, n int) {
	ctx := laneway.WithPriority(context.Background(), p)
	for i := range n {
		require.NoError(f.t, f.apps[i%len(f.apps)].Process(ctx, OpenAccount{ID: fmt.Sprintf("%s-%d", tag, i), Owner: tag}))
	}
}

func (f *ctlFleet) snapshot() []ctlRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ctlRun(nil), f.runs...)
}

// handled counts the runs of lane that succeeded, and the distinct entries.
func (f *ctlFleet) handled(lane consumer.Lane) (runs int, distinct map[string]int) {
	distinct = map[string]int{}
	for _, r := range f.snapshot() {
		if r.lane == lane && r.err == nil {
			runs++
			distinct[r.id]++
		}
	}
	return runs, distinct
}

// unhandled is pending + lag of the projector's group on stream.
func (f *ctlFleet) unhandled(stream string) (pending, lag int64) {
	gs, err := f.brokers[0].Groups(context.Background(), stream)
	require.NoError(f.t, err)
	for _, g := range gs {
		if g.Name == "AccountProjector" {
			return g.Pending, g.Lag
		}
	}
	return 0, 0
}

// metric scrapes engine i's metric.
func (f *ctlFleet) metric(i int, name string, labels map[string]string) (float64, bool) {
	return testsvc.Scrape(f.t, f.engines[i].HTTPAddr()).Get(f.t, name, labels)
}

// Pause stops new work on a lane across two engines within a second, even
// while both are blocked reading both lanes (blocking_timeout_ms = 5000);
// in-flight handlers finish; nothing is acked or lost while paused; resume
// drains every entry exactly once.
func TestLanePauseAcrossEngines(t *testing.T) {
	ctx := context.Background()
	f := newCtlFleet(t, 2, func(c *lanewayconfig.Config) {
		c.Server.StreamSubscription.BlockingTimeoutMS = 5000
	})
	bf := f.backfill()
	labels := map[string]string{"stream": bf, "handler": "AccountProjector"}

	// Idle engines block on both lanes (for up to 5 s). The pause must cut
	// that read within a second: entries added to the lane after that
	// second must stay unread (a blocked read of both lanes would take
	// them, leaving them pending on its consumer).
	already, err := f.store.Pause(ctx, lanecontrol.Pause{Stream: bf, By: "test"})
	require.NoError(t, err)
	require.False(t, already)
	time.Sleep(time.Second)
	for i := range f.engines {
		v, ok := f.metric(i, "laneway_lane_paused", labels)
		require.True(t, ok)
		assert.Equal(t, 1.0, v, "engine %d: laneway_lane_paused", i)
	}

	const nb = 20
	f.send(laneway.Low, "bf", nb)
	require.Eventually(t, func() bool {
		n, err := f.brokers[0].Len(ctx, bf)
		return err == nil && n == nb
	}, opsWait, 10*time.Millisecond)
	f.send(laneway.Normal, "p", 3)
	require.Eventually(t, func() bool { n, _ := f.handled(consumer.Primary); return n == 3 }, opsWait, 10*time.Millisecond)
	n, _ := f.handled(consumer.Backfill)
	assert.Zero(t, n, "no backfill handler started on the paused lane")
	pending, lag := f.unhandled(bf)
	assert.Equal(t, [2]int64{0, nb}, [2]int64{pending, lag}, "the paused lane's entries stay unread (pending, lag)")

	// Resume, let a few run, pause again while handlers are in flight.
	f.backfillSleep.Store(int64(30 * time.Millisecond))
	gone, err := f.store.Resume(ctx, bf, "")
	require.NoError(t, err)
	require.Len(t, gone, 1)
	require.Eventually(t, func() bool { n, _ := f.handled(consumer.Backfill); return n >= 3 }, opsWait, 5*time.Millisecond)
	_, err = f.store.Pause(ctx, lanecontrol.Pause{Stream: bf})
	require.NoError(t, err)
	pausedAt := time.Now()
	// Wait out the second the engines have to obey, then the in-flight
	// handlers (30 ms each); after that nothing may start.
	time.Sleep(time.Second + 200*time.Millisecond)
	settled, _ := f.handled(consumer.Backfill)
	require.Less(t, settled, nb, "the pause held back part of the lane")
	time.Sleep(500 * time.Millisecond)
	for _, r := range f.snapshot() {
		if r.lane == consumer.Backfill {
			assert.False(t, r.done.After(pausedAt.Add(time.Second+30*time.Millisecond+100*time.Millisecond)),
				"backfill handler finished %s after the pause", r.done.Sub(pausedAt))
		}
	}
	n, _ = f.handled(consumer.Backfill)
	assert.Equal(t, settled, n, "no backfill handler ran while paused")
	require.Eventually(t, func() bool {
		pending, lag := f.unhandled(bf)
		return pending+lag == int64(nb-settled)
	}, opsWait, 10*time.Millisecond, "unhandled entries stay pending or unread, none acked")

	_, err = f.store.Resume(ctx, bf, "")
	require.NoError(t, err)
	require.Eventually(t, func() bool { n, _ := f.handled(consumer.Backfill); return n >= nb }, opsWait, 10*time.Millisecond)
	n, distinct := f.handled(consumer.Backfill)
	assert.Equal(t, nb, n, "every entry handled once")
	assert.Len(t, distinct, nb)
	for _, r := range f.snapshot() {
		assert.NoError(t, r.err)
	}
	for i := range f.engines {
		v, _ := f.metric(i, "laneway_lane_paused", labels)
		assert.Equal(t, 0.0, v, "engine %d: laneway_lane_paused after resume", i)
	}
}

// The backfill rate is shared by two engines: in no window of W do their
// backfill handlers start more than rate*(W+hold)+burst messages, where
// hold is how long a consumer may keep a grant unused; primary is not
// limited; every entry is handled once.
func TestBackfillRateAcrossEngines(t *testing.T) {
	ctx := context.Background()
	const rate, nb = 40.0, 120
	f := newCtlFleet(t, 2, func(c *lanewayconfig.Config) {
		c.Server.PriorityLanes.BackfillRatePerSecond = rate
		c.Server.MessagesPerTick = 10 // both engines take part
	})
	bf := f.backfill()
	// Hold the lane while the backlog is written, so the drain starts
	// with all of it there.
	_, err := f.store.Pause(ctx, lanecontrol.Pause{Stream: bf})
	require.NoError(t, err)
	f.send(laneway.Low, "bf", nb)
	require.Eventually(t, func() bool { n, err := f.brokers[0].Len(ctx, bf); return err == nil && n == nb }, opsWait, 10*time.Millisecond)
	_, err = f.store.Resume(ctx, bf, "")
	require.NoError(t, err)
	f.send(laneway.Normal, "p", 20)
	require.Eventually(t, func() bool { n, _ := f.handled(consumer.Backfill); return n >= nb }, opsWait, 20*time.Millisecond)
	require.Eventually(t, func() bool { n, _ := f.handled(consumer.Primary); return n >= 20 }, opsWait, 20*time.Millisecond)

	n, distinct := f.handled(consumer.Backfill)
	assert.Equal(t, nb, n)
	assert.Len(t, distinct, nb)
	perEngine := map[int]int{}
	for _, r := range f.snapshot() {
		if r.lane == consumer.Backfill {
			perEngine[r.engine]++
		}
	}
	assert.Len(t, perEngine, 2, "both engines drained the lane: %v", perEngine)

	f.mu.Lock()
	starts := append([]time.Time(nil), f.starts...)
	f.mu.Unlock()
	require.Len(t, starts, nb)
	const burst = int(rate / 10)
	hold := consumerTokenTTL
	for _, w := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second} {
		bound := int(rate*(w+hold).Seconds()) + burst
		for _, a := range starts {
			in := 0
			for _, s := range starts {
				if !s.Before(a) && s.Sub(a) < w {
					in++
				}
			}
			require.LessOrEqual(t, in, bound, "backfill starts within %s from %s", w, a.Format("15:04:05.000"))
		}
	}
	first, last := starts[0], starts[0]
	for _, s := range starts {
		if s.Before(first) {
			first = s
		}
		if s.After(last) {
			last = s
		}
	}
	t.Logf("drained %d backfill messages in %s (limit %.0f/s): %.1f/s over two engines %v",
		nb, last.Sub(first).Round(time.Millisecond), rate, float64(nb-1)/last.Sub(first).Seconds(), perEngine)
}

// consumerTokenTTL mirrors the consumer's bound on unused grants.
const consumerTokenTTL = 250 * time.Millisecond

// The governor lowers the backfill allowance of every engine while the
// fleet's primary p99 is over its target (a handler made slow on purpose),
// never below its floor, and raises it back to full once production is
// fast again; each change is one log line.
func TestGovernorLowersAndRestores(t *testing.T) {
	ctx := context.Background()
	f := newCtlFleet(t, 2, func(c *lanewayconfig.Config) {
		c.Server.StreamSubscription.Concurrency = 8
		c.Server.PriorityLanes.BackfillConcurrency = 3
		// Far above what a loaded machine needs for this handler (the
		// allowance grows only below 80% of it: 480 ms), below the slow
		// handler's second.
		c.Server.PriorityLanes.Governor.PrimaryLatencyTargetMS = 600
	})
	labels := map[string]string{"stream": f.backfill(), "handler": "AccountProjector"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // steady production: one command every 50 ms
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := f.apps[i%2].Process(ctx, OpenAccount{ID: fmt.Sprintf("p-%d", i), Owner: "p"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	f.backfillSleep.Store(int64(5 * time.Millisecond))
	f.send(laneway.Low, "bf", 50)

	governor := func() lanecontrol.GovernorState {
		snap, err := f.store.Load(ctx)
		require.NoError(t, err)
		if snap.Governor == nil {
			return lanecontrol.GovernorState{}
		}
		return *snap.Governor
	}
	require.Eventually(t, func() bool { g := governor(); return g.Allowance == 1 && g.Samples > 0 }, opsWait, 50*time.Millisecond,
		"the governor measures primary and keeps the full allowance")

	f.primarySleep.Store(int64(time.Second)) // the switch: primary over its 600 ms target
	var low lanecontrol.GovernorState
	require.Eventually(t, func() bool { low = governor(); return low.Allowance < 1 }, opsWait, 50*time.Millisecond)
	assert.Greater(t, low.PrimaryP99MS, 600.0)
	assert.GreaterOrEqual(t, low.Allowance, lanecontrol.FloorDefault)
	assert.EqualValues(t, 600, low.TargetMS)
	for i := range f.engines {
		require.Eventually(t, func() bool {
			v, ok := f.metric(i, "laneway_backfill_concurrency_allowed", labels)
			return ok && v < 3
		}, opsWait, 50*time.Millisecond, "engine %d applies the lower allowance", i)
	}

	f.primarySleep.Store(0)
	require.Eventually(t, func() bool { return governor().Allowance == 1 }, 3*time.Minute, 100*time.Millisecond,
		"the allowance comes back to full once primary is within target")
	for i := range f.engines {
		require.Eventually(t, func() bool {
			v, ok := f.metric(i, "laneway_backfill_concurrency_allowed", labels)
			return ok && v == 3
		}, opsWait, 50*time.Millisecond, "engine %d back to backfill_concurrency", i)
	}
	logs := f.logs.String()
	changes := strings.Count(logs, "backfill governor changed the allowance")
	assert.GreaterOrEqual(t, changes, 2, "one log line per change, down and up")
	assert.Contains(t, logs, "allowance=100%")
}
