package bench

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/lanewaybroker"
)

// quietPairScenario is workload C with both consumers in one window: the
// raw consumer and the Laneway engine wait side by side, and the production
// entries go to them in turn (each consumer gets one every 20 ms, as in
// quiet). Quiet measures the two in separate 10-second phases, so its p99
// ratio also carries how the machine changed between them (on a shared
// 2-vCPU machine the raw consumer's own p99 moves by a third from one phase
// to the next); here both see the same moments, and the gap between them
// is the engine's own cost. A diagnostic beside quiet, not one of issue
// 14's targets.
func (r *Runner) quietPairScenario(ctx context.Context) (err error) {
	p := r.p
	n := p.IdleSamples
	e, c, err := r.openRaw(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close(), e.close()) }()
	cfg := r.headConfig()
	prodRaw, err := stampedEntries(cfg, rawFIFOStream, laneway.Normal, 0, n, 1, "q")
	if err != nil {
		return err
	}
	prod, err := stampedEntries(cfg, "", laneway.Normal, 0, n, 1, "q")
	if err != nil {
		return err
	}
	raw, pr := newHeadProbe(p.HandlerCost, n), newHeadProbe(p.HandlerCost, n)
	app, err := r.headEngine(ctx, e, pr, cfg)
	if err != nil {
		return err
	}
	defer app.Close()
	eng := r.newEngine(app, e)
	r.progress("quietpair: raw consumer and Laneway engine idle side by side, then %d production entries each, alternated, %d/s each", n, quietRate)
	start := time.Now()
	if err := eng.Start(ctx); err != nil {
		return err
	}
	sent := [2]int{}
	_, rerr := r.runRaw(ctx, e, n, func(d string) { raw.handle(parseSeq(d)) }, func(ctx context.Context) error {
		if err := sleepCtx(ctx, quietPause); err != nil {
			return err
		}
		var perr error
		sent, perr = produceAlternating(ctx, c, [2]*headProbe{raw, pr}, [2][]lanewaybroker.Publication{prodRaw, prod}, quietRate)
		return perr
	})
	if err := r.finishIdleEngine(ctx, eng, pr, n, rerr); err != nil {
		return err
	}
	res := r.idleResult("quietpair", pr, raw, sent, start)
	res.Compare["p50_over_raw_ms"] = latency.Round3(res.Primary.P50 - res.RawPrimary.P50)
	res.Compare["p99_over_raw_ms"] = latency.Round3(res.Primary.P99 - res.RawPrimary.P99)
	return r.emit(res)
}

// produceAlternating writes the entries of pubs[0] and pubs[1] in turn,
// each side at rate per second (2*rate in all), each stamped in its probe
// just before its XADD. It returns how many of each were written.
func produceAlternating(ctx context.Context, c *redis.Client, probes [2]*headProbe, pubs [2][]lanewaybroker.Publication, rate float64) ([2]int, error) {
	var sent [2]int
	n := min(len(pubs[0]), len(pubs[1]))
	_, err := paced(ctx, 2*n, 2*rate, func(ctx context.Context, i int) error {
		side, k := i%2, i/2
		probes[side].stamp(k + 1)
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: pubs[side][k].Stream, Values: []string{"data", pubs[side][k].Data}}).Err(); err != nil {
			return err
		}
		probes[side].wrote(k + 1)
		sent[side]++
		return nil
	})
	return sent, err
}
