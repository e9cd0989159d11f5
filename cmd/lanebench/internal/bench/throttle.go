package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/tools/latency"
)

// throttleWarmup runs before the throttle scenario's measured window: the
// engines' first reads and the limiter's burst are not measured.
const throttleWarmup = 3 * time.Second

// throttle: ThrottleProcs engine processes drain one backfill lane, whose
// rate limit (backfill_rate_per_second) they share through Redis; the
// drain rate over ContentionDuration is compared with the limit. The
// handler does nothing, so the limit and not the handler sets the pace.
func (r *Runner) throttle(ctx context.Context) (err error) {
	k, rate, dur := r.p.ThrottleProcs, r.p.ThrottleRate, r.p.ContentionDuration
	r.progress("throttle: %d engine processes, backfill limit %.0f/s, %s measured", k, rate, dur)
	e, err := r.openEnv(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := e.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := clearControls(ctx, e.br.RedisClient()); err != nil {
		return err
	}
	if e.db.PostgresURL != "" { // migrate once, so workers never race on CREATE TABLE
		app, err := laneway.Open(ctx, mustDomain(), engineConfig(true, 1, 1), laneway.Options{Store: e.db.Store})
		if err != nil {
			return err
		}
		_ = app.Close()
	}
	// More than the limit could drain in the whole run, so the lane never
	// runs dry.
	n := int(rate*(throttleWarmup+dur+10*time.Second).Seconds()) + 1000
	if err := loadBacklog(ctx, e.br, backfillStream(true), laneway.Low, n, "t"); err != nil {
		return err
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()
	for i := range k {
		p, err := r.startProc(ctx, workerSpec{brokerURL: e.brokerURL, database: workerDatabase(e, i), lanes: true,
			conc: r.p.Concurrency, bconc: r.p.BackfillConcurrency, backfillRate: rate})
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		select {
		case <-p.ready:
		case <-time.After(time.Minute):
			return fmt.Errorf("engine process %d not ready after a minute", p.pid())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, p := range procs {
		if err := p.start(); err != nil {
			return err
		}
	}
	counts := func() (sum int64, each []int64) {
		for _, p := range procs {
			v := p.handled.Load()
			sum += v
			each = append(each, v)
		}
		return sum, each
	}
	if err := sleepCtx(ctx, throttleWarmup); err != nil {
		return err
	}
	b0, e0 := counts()
	t0 := time.Now()
	if err := sleepCtx(ctx, dur); err != nil {
		return err
	}
	b1, e1 := counts()
	secs := time.Since(t0).Seconds()
	for _, p := range procs {
		if err := p.stop(); err != nil {
			return err
		}
	}
	each := make([]int64, len(e1))
	for i := range e1 {
		each[i] = e1[i] - e0[i]
	}
	drain := float64(b1-b0) / secs
	return r.emit(Result{Scenario: "throttle", Lanes: "on", Processes: k, Concurrency: r.p.Concurrency,
		BackfillConcurrency: r.p.BackfillConcurrency, RateLimitPerS: rate, Seconds: latency.Round3(secs),
		Backfill: &Backfill{Sent: n, Handled: int(b1 - b0)}, DrainRatePerS: latency.Round3(drain), WorkerHandled: each,
		Compare: map[string]float64{"drain_vs_limit": latency.Round3(drain / rate)}})
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// printThrottle writes the throttle result and its target (the limit
// ± 5 %).
func printThrottle(w io.Writer, rs []Result) {
	for _, r := range rs {
		if r.Scenario != "throttle" {
			continue
		}
		v := r.Compare["drain_vs_limit"]
		verdict := "met"
		if v < 0.95 || v > 1.05 {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "\nthrottle: %d engine processes share a backfill limit of %.0f/s\n", r.Processes, r.RateLimitPerS)
		fmt.Fprintf(w, "  drained %d in %.1f s = %.1f/s = %.3f x the limit (within 5%%: %s); per process %v\n",
			r.Backfill.Handled, r.Seconds, r.DrainRatePerS, v, verdict, r.WorkerHandled)
	}
}
