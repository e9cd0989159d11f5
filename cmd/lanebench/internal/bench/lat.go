package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/tools/lanesexp"
	"github.com/laneway/laneway/internal/tools/latency"
)

// latRun is one configuration of a latency scenario: a backlog of backfill
// events in the broker before the engine starts, then production traffic
// through Process (and so through the relay) at rate for duration.
type latRun struct {
	scenario, config string
	lanes            bool
	conc, bconc      int
	cost             time.Duration
	sleep            bool // cost is a sleep (I/O) rather than CPU work
	backfill         int
	rate             float64 // 0: no production traffic
	duration         time.Duration
}

// idleRate is the production rate of the idle scenario (issue 7).
const idleRate = 50

func (r *Runner) idle(ctx context.Context) error {
	var off Result
	_, _, err := lanesexp.OffOn(ctx, func(ctx context.Context, lanes bool) (Result, error) {
		res, err := r.latencyRun(ctx, latRun{scenario: "idle", config: "default", lanes: lanes, conc: 1, bconc: 1,
			cost: r.p.HandlerCost, rate: idleRate, duration: r.p.Duration})
		if err != nil {
			return res, err
		}
		if lanes {
			res.Compare = map[string]float64{
				"p99_vs_lanes_off": latency.Ratio(res.Primary.P99, off.Primary.P99),
				"p50_vs_lanes_off": latency.Ratio(res.Primary.P50, off.Primary.P50),
			}
		} else {
			off = res
		}
		return res, r.emit(res)
	})
	return err
}

// idleP99 is the lanes-on idle p99 of this run, 0 when idle did not run.
func (r *Runner) idleP99() float64 {
	for _, res := range r.results {
		if res.Scenario == "idle" && res.Lanes == "on" {
			return res.Primary.P99
		}
	}
	return 0
}

func (r *Runner) withIdle(res *Result) {
	if idle := r.idleP99(); idle > 0 {
		res.Compare["p99_vs_idle_p99"] = latency.Ratio(res.Primary.P99, idle)
	}
}

func (r *Runner) isolation(ctx context.Context) error {
	p := r.p
	// The promise: production latency while a backfill drains, lanes off
	// for contrast.
	var off Result
	_, _, err := lanesexp.OffOn(ctx, func(ctx context.Context, lanes bool) (Result, error) {
		res, err := r.latencyRun(ctx, latRun{scenario: "isolation", config: "default", lanes: lanes, conc: 1, bconc: 1,
			cost: p.HandlerCost, backfill: p.Backfill, rate: p.Rate, duration: p.Duration})
		if err != nil {
			return res, err
		}
		if lanes {
			res.Compare = map[string]float64{"drain_vs_lanes_off": latency.Ratio(res.Backfill.DrainSeconds, off.Backfill.DrainSeconds)}
			r.withIdle(&res)
		} else {
			off = res
		}
		return res, r.emit(res)
	})
	if err != nil {
		return err
	}
	// Lanes cost nothing without contention: the backlog alone, a no-op
	// handler (the most sensitive to per-message scheduler overhead).
	_, _, err = lanesexp.OffOn(ctx, func(ctx context.Context, lanes bool) (Result, error) {
		res, err := r.latencyRun(ctx, latRun{scenario: "isolation", config: "drain_idle", lanes: lanes, conc: 1, bconc: 1,
			backfill: p.Backfill})
		if err != nil {
			return res, err
		}
		if lanes {
			res.Compare = map[string]float64{"drain_rate_vs_lanes_off": latency.Ratio(res.DrainRatePerS, off.DrainRatePerS)}
		} else {
			off = res
		}
		return res, r.emit(res)
	})
	if err != nil {
		return err
	}
	// I/O-bound handlers: slots decide the drain rate.
	var c1 Result
	for _, c := range [][2]int{{1, 1}, {p.Concurrency, p.BackfillConcurrency}} {
		res, err := r.latencyRun(ctx, latRun{scenario: "isolation", config: fmt.Sprintf("io_c%d_b%d", c[0], c[1]), lanes: true,
			conc: c[0], bconc: c[1], cost: p.IOCost, sleep: true, backfill: p.Backfill, rate: p.Rate, duration: p.Duration})
		if err != nil {
			return err
		}
		res.Compare = map[string]float64{}
		r.withIdle(&res)
		if c[0] == 1 {
			c1 = res
		} else {
			res.Compare["drain_speedup_vs_c1"] = latency.Ratio(c1.Backfill.DrainSeconds, res.Backfill.DrainSeconds)
		}
		if err := r.emit(res); err != nil {
			return err
		}
	}
	return nil
}

// latencyRun runs one configuration on a fresh database and broker.
func (r *Runner) latencyRun(ctx context.Context, lr latRun) (res Result, err error) {
	kind := "CPU"
	if lr.sleep {
		kind = "sleep"
	}
	r.progress("%s %s lanes %s: backfill %d, production %.0f/s for %s, handler %s %s, concurrency %d/%d",
		lr.scenario, lr.config, lanesName(lr.lanes), lr.backfill, lr.rate, lr.duration, lr.cost, kind, lr.conc, lr.bconc)
	e, err := r.openEnv(ctx)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := e.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	pr := &probe{cost: lr.cost, sleep: lr.sleep}
	app, eng, err := r.engine(ctx, e, pr, engineConfig(lr.lanes, lr.conc, lr.bconc))
	if err != nil {
		return res, err
	}
	defer app.Close()
	if lr.backfill > 0 {
		if err := loadBacklog(ctx, e.br, backfillStream(lr.lanes), laneway.Low, lr.backfill, "bf"); err != nil {
			return res, err
		}
	}

	start := time.Now()
	if err := eng.Start(ctx); err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = stopEngine(ctx, eng)
		}
	}()

	var sendErrs int
	var firstErr error
	sent := 0
	if lr.rate > 0 {
		sent = lanesexp.Producer{Rate: lr.rate, End: time.Now().Add(lr.duration),
			Send: func(ctx context.Context, n int) error { return app.Process(ctx, Submit{ID: fmt.Sprintf("p-%d", n)}) },
			Failed: func(err error) {
				sendErrs++
				if firstErr == nil {
					firstErr = err
				}
			},
		}.Run(ctx)
	}
	// Generous: a lanes-off run must drain the whole backlog first, and
	// a loaded machine is slow. This bounds a hung run, it is no threshold.
	perEvent := max(lr.cost, 200*time.Microsecond) * 4 / time.Duration(max(1, min(lr.conc, lr.bconc)))
	timeout := 2*time.Minute + time.Duration(lr.backfill)*perEvent
	err = waitFor(ctx, timeout, "every event handled", func() bool {
		return pr.nPrimary.Load() >= int64(sent) && pr.nBack.Load() >= int64(lr.backfill)
	})
	if err != nil {
		return res, fmt.Errorf("%s %s lanes %s: %w (primary %d/%d, backfill %d/%d)", lr.scenario, lr.config, lanesName(lr.lanes),
			err, pr.nPrimary.Load(), sent, pr.nBack.Load(), lr.backfill)
	}
	stopped = true
	if err := stopEngine(ctx, eng); err != nil {
		return res, err
	}
	if firstErr != nil {
		r.progress("%d production commands failed, first: %v", sendErrs, firstErr)
	}

	sum := pr.primary.Summary()
	res = Result{
		Scenario: lr.scenario, Config: lr.config, Lanes: lanesName(lr.lanes), Primary: &sum,
		Backfill:    &Backfill{Sent: lr.backfill, Handled: int(pr.nBack.Load())},
		Concurrency: lr.conc, BackfillConcurrency: lr.bconc, HandlerCostMS: costMS(lr.cost), HandlerKind: strings.ToLower(kind),
		ProductionRate: lr.rate, PrimarySent: sent, SendErrors: sendErrs,
		Seconds: latency.Round3(time.Since(start).Seconds()),
	}
	if lr.backfill > 0 {
		drain := time.Unix(0, pr.lastBack.Load()).Sub(start).Seconds()
		res.Backfill.DrainSeconds = latency.Round3(drain)
		if drain > 0 {
			res.DrainRatePerS = latency.Round3(float64(lr.backfill) / drain)
		}
	}
	return res, nil
}
