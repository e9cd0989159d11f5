package bench

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/lanecontrol"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/lanewaystore"
)

// The contention scenario: production and backfill handlers write the same
// PostgreSQL table, so a backfill hurts production through the database,
// which the lane scheduler does not see. It compares production p99 and
// the backfill's drain rate with the backfill unlimited, held to fixed
// rates (a sweep that finds the fastest rate keeping production within the
// target) and run by the governor.

// ExtraScenarios run only when named: contention needs PostgreSQL, and the
// headline scenarios are issue 14's comparison with a raw consumer.
var ExtraScenarios = append([]string{"contention"}, HeadlineScenarios...)

func allScenarios() []string { return append(append([]string(nil), Scenarios...), ExtraScenarios...) }

const (
	// hotRows is the shared table both lanes update.
	hotRows = 64
	// backfillSpan rows are updated by each backfill message, and
	// backfillBurn rows of generate_series are hashed: a database-heavy
	// handler that holds row locks production needs.
	backfillSpan = 8
	backfillBurn = 3000
	// contentionWarmup runs before the measured window.
	contentionWarmup = 8 * time.Second
	// contentionBacklog is more than any run drains.
	contentionBacklog = 20000
)

// sweepShares are the fixed backfill rates tried, as shares of the
// unlimited drain rate measured in the same run.
var sweepShares = []float64{0.05, 0.1, 0.2, 0.35, 0.5, 0.75}

// contProbe is what the contention handlers report.
type contProbe struct {
	// from and to (UnixNano) bound the measured window: the production
	// events raised in it are measured, wherever they finish.
	from, to atomic.Int64
	primary  latency.Recorder // event raised -> handler done
	nPrimary atomic.Int64
	nBack    atomic.Int64
}

func hotID(s string) int {
	h := fnv.New32a()
	_, _ = io.WriteString(h, s)
	return int(h.Sum32() % hotRows)
}

func newContentionDomain(p *contProbe) (*laneway.Domain, error) {
	b := laneway.NewDomain(DomainName)
	laneway.RegisterAggregate[Item](b, laneway.AggregateOptions{Category: Category})
	laneway.RegisterEvent[Item, Submitted](b)
	laneway.RegisterCommand[Item](b, func(ctx context.Context, tx *laneway.Tx, cmd Submit) error {
		it := laneway.New[Item](cmd.ID)
		it.Pad = "p"
		it.Raise(Submitted{ID: cmd.ID, At: time.Now().UTC().Format(time.RFC3339Nano), Pad: pad})
		return tx.Save(ctx, it)
	})
	h := laneway.NewHandler(HandlerName)
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, ev Submitted, meta laneway.Meta) error {
		if meta.Priority >= laneway.Normal {
			// Production: a small read-modify-write of one row.
			id := hotID(ev.ID)
			var n int64
			if err := tx.QueryRow(ctx, "SELECT n FROM bench_hot WHERE id = $1 FOR UPDATE", id).Scan(&n); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "UPDATE bench_hot SET n = $2 WHERE id = $1", id, n+1); err != nil {
				return err
			}
			if at, err := time.Parse(time.RFC3339Nano, ev.At); err == nil && at.UnixNano() >= p.from.Load() && at.UnixNano() < p.to.Load() {
				p.primary.Add(time.Since(at))
			}
			p.nPrimary.Add(1)
			return nil
		}
		// Backfill: rewrite a span of rows (their locks block production)
		// and burn CPU in the database.
		first := hotID(ev.ID) / backfillSpan * backfillSpan
		if _, err := tx.Exec(ctx, `UPDATE bench_hot SET n = n + 1,
			pad = (SELECT md5(string_agg(md5(g::text), '')) FROM generate_series(1, $3::int) g)
			WHERE id >= $1 AND id < $2`, first, first+backfillSpan, backfillBurn); err != nil {
			return err
		}
		p.nBack.Add(1)
		return nil
	})
	b.AddHandler(h)
	return b.Build()
}

// contRun is one contention configuration.
type contRun struct {
	config   string
	backfill bool
	rate     float64 // fixed backfill rate; 0 unlimited
	targetMS int     // governor target; 0 off
}

func (r *Runner) contention(ctx context.Context) error {
	if r.p.Database == "" {
		return fmt.Errorf("contention needs PostgreSQL: pass --database postgres://... (both lanes' handlers write it)")
	}
	target := r.p.TargetMS
	var results []Result
	run := func(cr contRun) (Result, error) {
		res, err := r.contentionRun(ctx, cr)
		if err == nil {
			results = append(results, res)
		}
		return res, err
	}
	base, err := run(contRun{config: "production only"})
	if err != nil {
		return err
	}
	unl, err := run(contRun{config: "unlimited", backfill: true})
	if err != nil {
		return err
	}
	for _, share := range sweepShares {
		rate := max(1, float64(int(unl.DrainRatePerS*share)))
		if _, err := run(contRun{config: fmt.Sprintf("fixed %.0f/s", rate), backfill: true, rate: rate}); err != nil {
			return err
		}
	}
	if _, err := run(contRun{config: fmt.Sprintf("governor %dms", target), backfill: true, targetMS: target}); err != nil {
		return err
	}
	// The fastest fixed (or unlimited) configuration within the target.
	best := 0.0
	for _, res := range results[1 : len(results)-1] {
		if res.Primary.P99 <= float64(target) && res.DrainRatePerS > best {
			best = res.DrainRatePerS
		}
	}
	gov := &results[len(results)-1]
	gov.Compare = map[string]float64{
		"p99_vs_target": latency.Round3(gov.Primary.P99 / float64(target)),
	}
	if best > 0 {
		gov.Compare["drain_vs_best_fixed_within_target"] = latency.Round3(gov.DrainRatePerS / best)
	}
	_ = base
	for _, res := range results {
		if err := r.emit(res); err != nil {
			return err
		}
	}
	return nil
}

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
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: e.db.Store})
	if err != nil {
		return res, err
	}
	defer app.Close()
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
	var allow allowanceTrace
	eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: e.br, Logger: r.log, DisableHTTP: true})
	if err := eng.Start(ctx); err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = stopEngine(ctx, eng)
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
		produceSteady(ctx, app, r.p.Rate, contentionWarmup+dur, &sent, func(error) { sendErrs.Add(1) })
	}()
	warm := time.NewTimer(contentionWarmup)
	select {
	case <-ctx.Done():
		warm.Stop()
		wg.Wait()
		return res, ctx.Err()
	case <-warm.C:
	}
	b0, t0 := pr.nBack.Load(), time.Now()
	pr.to.Store(t0.Add(dur).UnixNano())
	pr.from.Store(t0.UnixNano())
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
	b1, t1 := pr.nBack.Load(), time.Now()
	stopTrace()
	wg.Wait()
	if err := waitFor(ctx, 2*time.Minute, "production handled", func() bool { return pr.nPrimary.Load() >= sent.Load() }); err != nil {
		return res, err
	}
	stopped = true
	if err := stopEngine(ctx, eng); err != nil {
		return res, err
	}
	sum := pr.primary.Summary()
	res = Result{
		Scenario: "contention", Config: cr.config, Lanes: "on", Primary: &sum,
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

// allowanceTrace samples the governor's allowance during a run.
type allowanceTrace struct{ v []float64 }

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
	return fmt.Sprintf("%.2f/%.2f/%.2f", v[0], v[len(v)/2], v[len(v)-1])
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

// printContention writes the contention table and its targets.
func printContention(w io.Writer, rs []Result, targetMS int) {
	var cs []Result
	for _, r := range rs {
		if r.Scenario == "contention" {
			cs = append(cs, r)
		}
	}
	if len(cs) == 0 {
		return
	}
	fmt.Fprintf(w, "\ncontention: production (event raised -> handler done, ms) and backfill on one PostgreSQL table\n")
	fmt.Fprintf(w, "%-16s %7s %6s %8s %8s %8s %8s %10s  %s\n", "config", "prod/s", "n", "p50", "p90", "p99", "max", "drain/s", "allowance min/med/max")
	for _, r := range cs {
		drain := "-"
		if r.Backfill != nil {
			drain = fmt.Sprintf("%.0f", r.DrainRatePerS)
		}
		fmt.Fprintf(w, "%-16s %7.0f %6d %8.1f %8.1f %8.1f %8.1f %10s  %s\n", r.Config, r.ProductionRate, r.Primary.Count,
			r.Primary.P50, r.Primary.P90, r.Primary.P99, r.Primary.Max, drain, r.Allowance)
	}
	gov := cs[len(cs)-1]
	if v, ok := gov.Compare["p99_vs_target"]; ok {
		verdict := "met"
		if v > 1.5 {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "  governor: production p99 %.1f ms = %.2fx the %d ms target (<= 1.5x: %s)\n", gov.Primary.P99, v, targetMS, verdict)
	}
	if v, ok := gov.Compare["drain_vs_best_fixed_within_target"]; ok {
		verdict := "met"
		if v < 0.6 {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "  governor: drain %.0f/s = %.0f%% of the fastest fixed rate within the target (>= 60%%: %s)\n", gov.DrainRatePerS, 100*v, verdict)
	} else {
		fmt.Fprintf(w, "  no fixed rate kept production within the target\n")
	}
}

// produceSteady calls Process at rate per second for duration; a slow
// Process is caught up on the next tick, so the offered load is the rate
// asked for.
func produceSteady(ctx context.Context, app *laneway.App, rate float64, duration time.Duration, sent *atomic.Int64, fail func(error)) {
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
			for due := int(now.Sub(begin).Seconds()*rate) + 1; n < due && ctx.Err() == nil; n++ {
				if err := app.Process(ctx, Submit{ID: fmt.Sprintf("p-%d", n)}); err != nil {
					fail(err)
					continue
				}
				sent.Add(1)
			}
		}
	}
}
