package bench

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/lanecontrol"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
)

// contentionRun runs one configuration for the production duration on a
// fresh schema and fresh streams.
func (r *Runner) contentionRun(ctx context.Context, cr contRun) (res Result, err error) {
	dur := r.p.ContentionDuration
	r.progress("contention %s: production %.0f/s for %s, concurrency %d/%d", cr.config, r.p.Rate, dur, r.p.Concurrency, r.p.BackfillConcurrency)
	e, err := r.openEnv(ctx)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := e.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := clearControls(ctx, e.br.RedisClient()); err != nil {
		return res, err
	}
	pr := &contProbe{}
	dom, err := newContentionDomain(pr)
	if err != nil {
		return res, err
	}
	cfg := engineConfig(true, r.p.Concurrency, r.p.BackfillConcurrency)
	cfg.Server.PriorityLanes.BackfillRatePerSecond = cr.rate
	cfg.Server.PriorityLanes.Governor.PrimaryLatencyTargetMS = cr.targetMS
	// app runs the in-process engine. Production's commands go through
	// prodApp, on a connection pool of its own: sharing the engine's pool,
	// producers held back by a slow database would also starve the
	// engine's relay and handlers of connections, a stall no deployment
	// with separate writer services has.
	// The engine's pool has a connection per handler slot and two for the
	// relay and the engine's own queries, so the handlers contend in the
	// database, not for the pool (the default pool is 4).
	engURL := withPool(e.db.PostgresURL, r.p.Concurrency+2)
	engStore, err := pgstore.Open(ctx, engURL)
	if err != nil {
		return res, err
	}
	defer engStore.Close()
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: engStore})
	if err != nil {
		return res, err
	}
	defer app.Close()
	prodStore, err := pgstore.Open(ctx, withPool(e.db.PostgresURL, producers))
	if err != nil {
		return res, err
	}
	defer prodStore.Close()
	prodApp, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: prodStore})
	if err != nil {
		return res, err
	}
	defer prodApp.Close()
	if err := e.db.Store.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE TABLE bench_hot (id int PRIMARY KEY, n bigint NOT NULL, pad text NOT NULL)"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO bench_hot SELECT g, 0, md5(g::text) FROM generate_series(0, $1::int - 1) g", hotRows)
		return err
	}); err != nil {
		return res, fmt.Errorf("create the shared table: %w", err)
	}
	if cr.backfill {
		if err := loadBacklog(ctx, e.br, backfillStream(true), laneway.Low, contentionBacklog, "bf"); err != nil {
			return res, err
		}
	}
	engines, err := r.startContentionEngines(ctx, e, engURL, app, cr, pr)
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = engines.stop(ctx)
		}
	}()
	// Production and backfill run together for a warm-up that is not
	// measured (the backfill reaches its pace, the governor converges
	// from the full allowance), then for the measured window.
	var sent, sendErrs atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		produceSteady(ctx, prodApp, r.p.Rate, contentionWarmup+dur, &sent, func(error) { sendErrs.Add(1) })
	}()
	warm := time.NewTimer(contentionWarmup)
	select {
	case <-ctx.Done():
		warm.Stop()
		wg.Wait()
		return res, ctx.Err()
	case <-warm.C:
	}
	b0, t0 := engines.backfill(), time.Now()
	pr.to.Store(t0.Add(dur).UnixNano())
	pr.from.Store(t0.UnixNano())
	var allow allowanceTrace
	traceCtx, stopTrace := context.WithCancel(ctx)
	if cr.targetMS > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); allow.follow(traceCtx, lanecontrol.NewStore(e.br.RedisClient(), DomainName)) }()
	}
	deadline := time.NewTimer(dur)
	select {
	case <-ctx.Done():
	case <-deadline.C:
	}
	deadline.Stop()
	b1, t1 := engines.backfill(), time.Now()
	stopTrace()
	wg.Wait()
	if err := waitFor(ctx, 2*time.Minute, "production handled", func() bool { return pr.nPrimary.Load() >= sent.Load() }); err != nil {
		return res, err
	}
	stopped = true
	if err := engines.stop(ctx); err != nil {
		return res, err
	}
	sum := pr.primary.Summary()
	res = Result{
		Scenario: "contention", Config: cr.config, Lanes: "on", Primary: &sum, Processes: cr.procs,
		Concurrency: r.p.Concurrency, BackfillConcurrency: r.p.BackfillConcurrency,
		ProductionRate: r.p.Rate, PrimarySent: int(sent.Load()), SendErrors: int(sendErrs.Load()),
		Seconds: latency.Round3(t1.Sub(t0).Seconds()),
	}
	if cr.backfill {
		res.Backfill = &Backfill{Sent: contentionBacklog, Handled: int(b1 - b0)}
		res.DrainRatePerS = latency.Round3(float64(b1-b0) / t1.Sub(t0).Seconds())
	}
	if cr.targetMS > 0 {
		res.Allowance = allow.summary()
	}
	return res, nil
}

// withPool sets pool_max_conns on a PostgreSQL URL.
func withPool(raw string, n int) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw // scratch built it: it parses
	}
	q := u.Query()
	q.Set("pool_max_conns", strconv.Itoa(n))
	u.RawQuery = q.Encode()
	return u.String()
}

// contEngines are the engines of one contention configuration.
type contEngines struct {
	backfill func() int64 // backfill messages handled so far
	stop     func(context.Context) error
}

// startContentionEngines starts one engine in this process on app, or
// cr.procs engine processes whose production latencies reach pr.
func (r *Runner) startContentionEngines(ctx context.Context, e *env, dbURL string, app *laneway.App, cr contRun, pr *contProbe) (contEngines, error) {
	if cr.procs == 0 {
		eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: e.br, Logger: r.log, DisableHTTP: true})
		if err := eng.Start(ctx); err != nil {
			return contEngines{}, err
		}
		return contEngines{backfill: pr.nBack.Load, stop: func(ctx context.Context) error { return stopEngine(ctx, eng) }}, nil
	}
	var procs []*proc
	kill := func() {
		for _, p := range procs {
			p.kill()
		}
	}
	for range cr.procs {
		p, err := r.startProc(ctx, workerSpec{
			brokerURL: e.brokerURL, database: dbURL, lanes: true,
			conc: r.p.Concurrency, bconc: r.p.BackfillConcurrency,
			contention: true, backfillRate: cr.rate, targetMS: cr.targetMS, onPrimary: pr.observe,
		})
		if err != nil {
			kill()
			return contEngines{}, err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		select {
		case <-p.ready:
		case <-time.After(time.Minute):
			kill()
			return contEngines{}, fmt.Errorf("engine process %d not ready after a minute", p.pid())
		case <-ctx.Done():
			kill()
			return contEngines{}, ctx.Err()
		}
	}
	for _, p := range procs {
		if err := p.start(); err != nil {
			kill()
			return contEngines{}, err
		}
	}
	return contEngines{
		backfill: func() int64 {
			var n int64
			for _, p := range procs {
				n += p.handled.Load()
			}
			return n
		},
		stop: func(context.Context) error {
			var err error
			for _, p := range procs {
				if serr := p.stop(); serr != nil && err == nil {
					err = serr
				}
			}
			return err
		},
	}, nil
}

// allowanceTrace samples the governor's allowance during a run.
type allowanceTrace struct {
	v   []float64
	ref float64 // the largest reference rate seen (unlimited lanes)
}

func (a *allowanceTrace) follow(ctx context.Context, s *lanecontrol.Store) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if snap, err := s.Load(ctx); err == nil && snap.Governor != nil {
			a.v = append(a.v, snap.Governor.Allowance)
			for _, r := range snap.Governor.References {
				a.ref = max(a.ref, r)
			}
		}
	}
}

// summary is "min/median/max" of the sampled allowance.
func (a *allowanceTrace) summary() string {
	if len(a.v) == 0 {
		return ""
	}
	v := append([]float64(nil), a.v...)
	sort.Float64s(v)
	s := fmt.Sprintf("%.2f/%.2f/%.2f", v[0], v[len(v)/2], v[len(v)-1])
	if a.ref > 0 {
		s += fmt.Sprintf(" ref %.0f/s", a.ref)
	}
	return s
}

// clearControls removes the bench domain's lane controls and governor
// state, so each configuration starts from none.
func clearControls(ctx context.Context, rdb redis.UniversalClient) error {
	keys, err := rdb.Keys(ctx, "laneway:lanes:"+DomainName+":*").Result()
	if err != nil || len(keys) == 0 {
		return err
	}
	return rdb.Del(ctx, keys...).Err()
}

// producers is how many Process calls produceSteady may have in flight:
// a database slowed by the backfill slows each call, and production's
// offered rate must not drop with it (it would hide the latency it
// measures).
const producers = 32

// produceSteady calls Process at rate per second for duration, from a pool
// of producers goroutines, so the offered load is the rate asked for even
// while single calls are slow.
func produceSteady(ctx context.Context, app *laneway.App, rate float64, duration time.Duration, sent *atomic.Int64, fail func(error)) {
	work := make(chan int, producers)
	var wg sync.WaitGroup
	for range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				if err := app.Process(ctx, Submit{ID: fmt.Sprintf("p-%d", n)}); err != nil {
					fail(err)
					continue
				}
				sent.Add(1)
			}
		}()
	}
	defer func() { close(work); wg.Wait() }()
	tick := time.NewTicker(min(time.Duration(float64(time.Second)/rate), 5*time.Millisecond))
	defer tick.Stop()
	begin := time.Now()
	end := begin.Add(duration)
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if now.After(end) {
				return
			}
			for due := int(now.Sub(begin).Seconds()*rate) + 1; n < due; n++ {
				select {
				case work <- n:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}
