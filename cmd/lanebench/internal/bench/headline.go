package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/lanewayconfig"
)

// HeadlineScenarios are issue 14's workloads, each run beside a raw
// go-redis consumer on the same entries in the same run. They run only when
// named, alone or as the group "headline".
var HeadlineScenarios = []string{"consume", "flood", "quiet", "e2e"}

// headlineGroup names all of HeadlineScenarios on the command line.
const headlineGroup = "headline"

// quietRate is the production rate of the quiet scenario and of the idle
// phase of e2e; quietPause how long the consumers sit idle first.
const (
	quietRate  = 50
	quietPause = time.Second
)

// headEngine opens an App on e with the headline domain and an engine as
// `laneway server` runs it.
func (r *Runner) headEngine(ctx context.Context, e *env, pr *headProbe, cfg *lanewayconfig.Config) (*laneway.App, error) {
	dom, err := newHeadDomain(pr)
	if err != nil {
		return nil, err
	}
	return laneway.Open(ctx, dom, cfg, laneway.Options{Store: e.db.Store})
}

func (r *Runner) newEngine(app *laneway.App, e *env) *laneway.Engine {
	return laneway.NewEngine(app, laneway.EngineOptions{Broker: e.br, Logger: r.log, DisableHTTP: true})
}

// handleTimeout bounds a wait for n entries of cost each (generous: a
// loaded machine is slow); it is no threshold.
func handleTimeout(n int, cost time.Duration) time.Duration {
	return 2*time.Minute + time.Duration(n)*max(cost, 50*time.Microsecond)*4
}

// runRaw consumes the raw stream with pr's handler until want entries are
// handled, while during() runs (producing, for the latency scenarios). It
// returns the consumer's start time.
func (r *Runner) runRaw(ctx context.Context, e *env, want int, handle func(string), during func(ctx context.Context) error) (time.Time, error) {
	c, err := newRedisClient(e.brokerURL)
	if err != nil {
		return time.Time{}, err
	}
	defer c.Close()
	// handled is only touched by the consumer's goroutine (handle and done).
	var handled int
	rc := rawConsumer{c: c, stream: rawFIFOStream, handle: func(data string) { handled++; handle(data) }}
	if err := rc.ensureGroup(ctx); err != nil {
		return time.Time{}, err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	wait := startRaw(cctx, rc, func() bool { return handled >= want })
	var derr error
	if during != nil {
		if derr = during(cctx); derr != nil {
			cancel()
		}
	}
	return start, errors.Join(derr, wait(), e.br.DeleteKey(context.WithoutCancel(ctx), rawFIFOStream))
}

// consumeScenario is workload A: N entries pre-loaded, a no-op handler.
func (r *Runner) consumeScenario(ctx context.Context) (err error) {
	n := r.p.Events
	e, err := r.openEnv(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.close()) }()
	cfg := r.headConfig()

	r.progress("consume: raw go-redis consumer, %d entries", n)
	if err := loadStamped(ctx, e.br, cfg, rawFIFOStream, laneway.Normal, n, "c"); err != nil {
		return err
	}
	var rawLast time.Time
	rawN := 0
	rawStart, err := r.runRaw(ctx, e, n, func(string) { rawN++; rawLast = time.Now() }, nil)
	if err != nil {
		return fmt.Errorf("raw: %w", err)
	}
	rawRate := rate(rawN, rawLast.Sub(rawStart))

	r.progress("consume: Laneway engine, the same %d entries", n)
	if err := loadStamped(ctx, e.br, cfg, "", laneway.Normal, n, "c"); err != nil {
		return err
	}
	pr := newHeadProbe(0, 0)
	app, err := r.headEngine(ctx, e, pr, cfg)
	if err != nil {
		return err
	}
	defer app.Close()
	eng := r.newEngine(app, e)
	start := time.Now()
	if err := eng.Start(ctx); err != nil {
		return err
	}
	werr := waitFor(ctx, handleTimeout(n, 0), "the engine to drain the stream", func() bool { return pr.handled() >= int64(n) })
	if err := errors.Join(werr, stopEngine(ctx, eng)); err != nil {
		return fmt.Errorf("engine: %w (%d of %d handled)", err, pr.handled(), n)
	}
	engRate := rate(n, time.Unix(0, pr.lastAny.Load()).Sub(start))
	res := stageResult("throughput", engRate, rawRate, "raw go-redis XREADGROUP COUNT 100 + XACK per batch, same entries", n, int(pr.handled()), nil)
	res.Scenario, res.Stage, res.RawHandled, res.Concurrency = "consume", "", rawN, 1
	res.Targets = []Target{atLeast("rate >= 50% of raw", deref(res.Ratio), 0.5)}
	return r.emit(res)
}

// floodScenario is workload B: a backfill backlog pre-loaded, production
// entries at --rate while it drains, a CPU-bound handler.
func (r *Runner) floodScenario(ctx context.Context) (err error) {
	p := r.p
	e, c, err := r.openRaw(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close(), e.close()) }()
	cfg := r.headConfig()

	r.progress("flood: raw FIFO consumer, %d backfill entries then %d production at %.0f/s on one stream, handler %s CPU",
		p.Backfill, p.Samples, p.Rate, p.HandlerCost)
	if err := loadStamped(ctx, e.br, cfg, rawFIFOStream, laneway.Low, p.Backfill, "bf"); err != nil {
		return err
	}
	prodRaw, err := stampedEntries(cfg, rawFIFOStream, laneway.Normal, 0, p.Samples, 1, "p")
	if err != nil {
		return err
	}
	raw := newHeadProbe(p.HandlerCost, p.Samples)
	sentRaw := 0
	rawStart, err := r.runRaw(ctx, e, p.Backfill+p.Samples, func(d string) { raw.handle(parseSeq(d)) }, func(ctx context.Context) error {
		var perr error
		sentRaw, perr = produce(ctx, c, raw, prodRaw, p.Rate)
		return perr
	})
	if err != nil {
		return fmt.Errorf("raw: %w", err)
	}

	r.progress("flood: Laneway engine, the same entries on its lanes")
	if err := loadStamped(ctx, e.br, cfg, "", laneway.Low, p.Backfill, "bf"); err != nil {
		return err
	}
	prod, err := stampedEntries(cfg, "", laneway.Normal, 0, p.Samples, 1, "p")
	if err != nil {
		return err
	}
	pr := newHeadProbe(p.HandlerCost, p.Samples)
	app, err := r.headEngine(ctx, e, pr, cfg)
	if err != nil {
		return err
	}
	defer app.Close()
	eng := r.newEngine(app, e)
	start := time.Now()
	if err := eng.Start(ctx); err != nil {
		return err
	}
	sent, perr := produce(ctx, c, pr, prod, p.Rate)
	var werr error
	if perr == nil {
		werr = waitFor(ctx, handleTimeout(p.Backfill+p.Samples, p.HandlerCost), "every entry handled", func() bool {
			return pr.handled() >= int64(p.Backfill+p.Samples)
		})
	}
	if err := errors.Join(perr, werr, stopEngine(ctx, eng)); err != nil {
		return fmt.Errorf("engine: %w (production %d/%d, backfill %d/%d)", err, pr.nPrimary.Load(), p.Samples, pr.nBack.Load(), p.Backfill)
	}

	sum, rawSum := pr.rec.Summary(), raw.rec.Summary()
	res := Result{Scenario: "flood", Lanes: "on", Primary: &sum, RawPrimary: &rawSum, Write: pr.writeSummary(), RawWrite: raw.writeSummary(),
		Backfill:    &Backfill{Sent: p.Backfill, Handled: int(pr.nBack.Load()), DrainSeconds: pr.drainSeconds(start)},
		RawBackfill: &Backfill{Sent: p.Backfill, Handled: int(raw.nBack.Load()), DrainSeconds: raw.drainSeconds(rawStart)},
		Concurrency: 1, HandlerCostMS: costMS(p.HandlerCost), HandlerKind: "cpu", ProductionRate: p.Rate,
		PrimarySent: sent, RawPrimarySent: sentRaw, Seconds: latency.Round3(time.Since(start).Seconds()),
	}
	drainRatio := latency.Ratio(res.Backfill.DrainSeconds, res.RawBackfill.DrainSeconds)
	res.Compare = map[string]float64{"drain_vs_raw": drainRatio}
	res.Targets = []Target{
		atMost("production p99 ms <= 1.0", sum.P99, 1.0),
		atMost("production p50 ms <= 0.4", sum.P50, 0.4),
		atMost("drain <= 1.25x raw", drainRatio, 1.25),
	}
	return r.emit(res)
}

// quietScenario is workload C: idle consumers, then production entries at
// 50/s.
func (r *Runner) quietScenario(ctx context.Context) (err error) {
	p := r.p
	n := p.IdleSamples
	e, c, err := r.openRaw(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close(), e.close()) }()
	cfg := r.headConfig()
	idle := func(ctx context.Context) error { return sleepCtx(ctx, quietPause) }

	r.progress("quiet: raw consumer blocked on XREADGROUP, then %d production entries at %d/s", n, quietRate)
	prodRaw, err := stampedEntries(cfg, rawFIFOStream, laneway.Normal, 0, n, 1, "q")
	if err != nil {
		return err
	}
	raw := newHeadProbe(p.HandlerCost, n)
	sentRaw := 0
	_, err = r.runRaw(ctx, e, n, func(d string) { raw.handle(parseSeq(d)) }, func(ctx context.Context) error {
		if err := idle(ctx); err != nil {
			return err
		}
		var perr error
		sentRaw, perr = produce(ctx, c, raw, prodRaw, quietRate)
		return perr
	})
	if err != nil {
		return fmt.Errorf("raw: %w", err)
	}

	r.progress("quiet: Laneway engine idle, then the same")
	prod, err := stampedEntries(cfg, "", laneway.Normal, 0, n, 1, "q")
	if err != nil {
		return err
	}
	pr := newHeadProbe(p.HandlerCost, n)
	app, err := r.headEngine(ctx, e, pr, cfg)
	if err != nil {
		return err
	}
	defer app.Close()
	eng := r.newEngine(app, e)
	start := time.Now()
	if err := eng.Start(ctx); err != nil {
		return err
	}
	sent, perr := 0, idle(ctx)
	if perr == nil {
		sent, perr = produce(ctx, c, pr, prod, quietRate)
	}
	if err := r.finishIdleEngine(ctx, eng, pr, n, perr); err != nil {
		return err
	}
	res := r.idleResult("quiet", pr, raw, [2]int{sentRaw, sent}, start)
	res.Targets = []Target{
		atMost("p99 <= 1.2x raw p99", res.Compare["p99_vs_raw"], 1.2),
		atMost("p50 ms <= raw p50 + 0.1", res.Primary.P50, latency.Round3(res.RawPrimary.P50+0.1)),
	}
	return r.emit(res)
}

// finishIdleEngine waits, unless perr, until the engine has handled the n
// production entries pr counts, then stops eng.
func (r *Runner) finishIdleEngine(ctx context.Context, eng *laneway.Engine, pr *headProbe, n int, perr error) error {
	var werr error
	if perr == nil {
		werr = waitFor(ctx, handleTimeout(n, r.p.HandlerCost), "every entry handled", func() bool { return pr.handled() >= int64(n) })
	}
	if err := errors.Join(perr, werr, stopEngine(ctx, eng)); err != nil {
		return fmt.Errorf("engine: %w (%d of %d handled)", err, pr.handled(), n)
	}
	return nil
}

// idleResult is the row of an idle-lane run (quiet, quietpair): the
// engine's latencies (pr) beside the raw consumer's (raw), sent[0] entries
// written for raw and sent[1] for the engine.
func (r *Runner) idleResult(scenario string, pr, raw *headProbe, sent [2]int, start time.Time) Result {
	sum, rawSum := pr.rec.Summary(), raw.rec.Summary()
	return Result{Scenario: scenario, Lanes: "on", Primary: &sum, RawPrimary: &rawSum, Write: pr.writeSummary(), RawWrite: raw.writeSummary(),
		Concurrency: 1, HandlerCostMS: costMS(r.p.HandlerCost), HandlerKind: "cpu", ProductionRate: quietRate,
		PrimarySent: sent[1], RawPrimarySent: sent[0], Seconds: latency.Round3(time.Since(start).Seconds()),
		Compare: map[string]float64{"p99_vs_raw": latency.Ratio(sum.P99, rawSum.P99)},
	}
}
