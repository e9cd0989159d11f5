package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/tools/latency"
)

// e2eBatch is the ProcessBatch size of the end-to-end backfill, as a
// migration would commit it.
const e2eBatch = 1000

// e2eScenario runs App.Process on the store, the relay and the engine end
// to end, twice: (i) idle, production at 50/s; (ii) a LOW backlog committed
// to the outbox with ProcessBatch before the engine starts, then production
// at --rate. Latency is Process call start -> handler start.
func (r *Runner) e2eScenario(ctx context.Context) (err error) {
	p := r.p
	e, err := r.openEnv(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.close()) }()
	r.progress("e2e idle: Process -> relay -> engine, %d commands at %d/s", p.IdleSamples, quietRate)
	idle, err := r.e2ePhase(ctx, e, 0, p.IdleSamples, quietRate)
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	idle.Config = "idle"
	if err := r.emit(idle); err != nil {
		return err
	}

	r.progress("e2e backfill: %d LOW commands committed with ProcessBatch, then %d production commands at %.0f/s", p.Backfill, p.Samples, p.Rate)
	res, err := r.e2ePhase(ctx, e, p.Backfill, p.Samples, p.Rate)
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	res.Config = "backfill"
	res.IdlePrimary, res.IdleWrite = idle.Primary, idle.Write
	res.Compare = map[string]float64{"p99_vs_idle_p99": latency.Ratio(res.Primary.P99, idle.Primary.P99)}
	res.Targets = []Target{atMost("p99 <= 2x idle p99", res.Compare["p99_vs_idle_p99"], 2)}
	return r.emit(res)
}

// e2ePhase commits backfill LOW commands (engine stopped), starts an engine
// and sends n production commands at rate through Process.
func (r *Runner) e2ePhase(ctx context.Context, e *env, backfill, n int, prodRate float64) (res Result, err error) {
	pr := newHeadProbe(r.p.HandlerCost, n)
	app, err := r.headEngine(ctx, e, pr, r.headConfig())
	if err != nil {
		return res, err
	}
	defer app.Close()
	loadStart := time.Now()
	for i := 0; i < backfill; i += e2eBatch {
		cmds := make([]laneway.Command, min(e2eBatch, backfill-i))
		for j := range cmds {
			cmds[j] = Stamp{ID: fmt.Sprintf("ebf-%d", i+j)}
		}
		if err := app.ProcessBatch(ctx, cmds, laneway.AtPriority(laneway.Low)); err != nil {
			return res, fmt.Errorf("commit the backfill: %w", err)
		}
	}
	loadSeconds := time.Since(loadStart).Seconds()

	eng := r.newEngine(app, e)
	start := time.Now()
	if err := eng.Start(ctx); err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			err = errors.Join(err, stopEngine(ctx, eng))
		}
	}()
	if backfill == 0 {
		if err := sleepCtx(ctx, quietPause); err != nil {
			return res, err
		}
	}
	tag := "ep"
	if backfill > 0 {
		tag = "ebp"
	}
	sent, perr := paced(ctx, n, prodRate, func(ctx context.Context, i int) error {
		pr.stamp(i + 1)
		if err := app.Process(ctx, Stamp{ID: fmt.Sprintf("%s-%d", tag, i), Seq: i + 1}); err != nil {
			return err
		}
		pr.wrote(i + 1)
		return nil
	})
	if perr != nil {
		return res, fmt.Errorf("production: %w", perr)
	}
	werr := waitFor(ctx, handleTimeout(backfill+n, r.p.HandlerCost), "every event handled", func() bool {
		return pr.handled() >= int64(backfill+n)
	})
	stopped = true
	if err := errors.Join(werr, stopEngine(ctx, eng)); err != nil {
		return res, fmt.Errorf("%w (production %d/%d, backfill %d/%d)", err, pr.nPrimary.Load(), n, pr.nBack.Load(), backfill)
	}
	sum := pr.rec.Summary()
	res = Result{Scenario: "e2e", Lanes: "on", Primary: &sum, Write: pr.writeSummary(),
		Concurrency: 1, HandlerCostMS: costMS(r.p.HandlerCost), HandlerKind: "cpu", ProductionRate: prodRate,
		PrimarySent: sent, Seconds: latency.Round3(time.Since(start).Seconds()),
	}
	if backfill > 0 {
		res.Backfill = &Backfill{Sent: backfill, Handled: int(pr.nBack.Load()), DrainSeconds: pr.drainSeconds(start)}
		res.LoadSeconds = latency.Round3(loadSeconds)
	}
	return res, nil
}
