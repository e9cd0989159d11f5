package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/lanewayconfig"
)

// The busycores scenario asks what backfill_short_slice costs a migration
// when other processes keep every core busy. A backfill whose handler
// mostly waits (one Redis round trip and busyCoresBackfillCPU of CPU, like
// a handler writing a row) drains while production arrives at --rate
// throughout and one spinning process per core competes for the CPU. The
// engine runs with the short slice off and on, alternated (off, on, on,
// off), on fresh backlogs of the same size: the drain with it on against
// off is the answer, production's latency with it on against off the
// benefit.

// busyCoresBackfillCPU is the CPU a backfill handler uses beside its round
// trip.
const busyCoresBackfillCPU = 50 * time.Microsecond

// busyCoresSamples bounds the production entries one phase can stamp (at
// --rate, far more than any phase lasts).
const busyCoresSamples = 200_000

func (r *Runner) busyCoresScenario(ctx context.Context) (err error) {
	p := r.p
	n := max(p.Backfill/5, 1000)
	e, c, err := r.openRaw(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close(), e.close()) }()

	spinners := runtime.NumCPU()
	r.progress("busycores: %d spinning processes; %d backfill entries (a Redis round trip + %s CPU each) with production at %.0f/s throughout, backfill_short_slice off and on",
		spinners, n, busyCoresBackfillCPU, p.Rate)
	stop, err := r.startSpinners(spinners)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stop()) }()

	type phase struct {
		sum   latency.Summary
		drain float64
		sent  int
	}
	var off, on []phase
	for i, short := range []bool{false, true, true, false} {
		cfg := r.headConfig()
		cfg.Server.PriorityLanes.BackfillShortSlice = short
		sum, drain, sent, err := r.busyCoresPhase(ctx, e, c, cfg, n, fmt.Sprintf("bc%d", i))
		if err != nil {
			return fmt.Errorf("backfill_short_slice = %v: %w", short, err)
		}
		r.progress("busycores: backfill_short_slice = %v: drain %.3f s, production p50 %.3f / p99 %.3f ms", short, drain, sum.P50, sum.P99)
		if short {
			on = append(on, phase{sum, drain, sent})
		} else {
			off = append(off, phase{sum, drain, sent})
		}
	}
	result := func(config string, ps []phase) Result {
		// The drain is the two runs' total; the latency the worse run's,
		// so that a fluke does not flatter it.
		w := ps[0]
		w.drain = latency.Round3(ps[0].drain + ps[1].drain)
		if ps[1].sum.P99 > w.sum.P99 {
			w.sum = ps[1].sum
		}
		return Result{Scenario: "busycores", Config: config, Lanes: "on", Primary: &w.sum,
			Backfill:    &Backfill{Sent: 2 * n, Handled: 2 * n, DrainSeconds: w.drain},
			Concurrency: 1, HandlerCostMS: costMS(p.HandlerCost), HandlerKind: "cpu", ProductionRate: p.Rate,
			PrimarySent: ps[0].sent + ps[1].sent, Processes: spinners,
		}
	}
	resOff, resOn := result("slice off", off), result("slice on", on)
	drainRatio := latency.Ratio(resOn.Backfill.DrainSeconds, resOff.Backfill.DrainSeconds)
	resOn.Compare = map[string]float64{
		"drain_vs_off": drainRatio,
		"p99_vs_off":   latency.Ratio(resOn.Primary.P99, resOff.Primary.P99),
	}
	resOn.Targets = []Target{atMost("drain <= 1.1x slice off", drainRatio, 1.1)}
	return errors.Join(r.emit(resOff), r.emit(resOn))
}

// busyCoresPhase drains n fresh backfill entries with an engine on cfg
// while production entries arrive at --rate until the backlog is drained.
func (r *Runner) busyCoresPhase(ctx context.Context, e *env, c *redis.Client, cfg *lanewayconfig.Config, n int, tag string) (latency.Summary, float64, int, error) {
	p := r.p
	if err := loadStamped(ctx, e.br, cfg, "", laneway.Low, n, tag); err != nil {
		return latency.Summary{}, 0, 0, err
	}
	pr := newHeadProbe(p.HandlerCost, busyCoresSamples)
	pr.backfillIO = func() error { return c.Ping(ctx).Err() }
	pr.backfillCost = busyCoresBackfillCPU
	app, err := r.headEngine(ctx, e, pr, cfg)
	if err != nil {
		return latency.Summary{}, 0, 0, err
	}
	defer app.Close()
	eng := r.newEngine(app, e)
	start := time.Now()
	if err := eng.Start(ctx); err != nil {
		return latency.Summary{}, 0, 0, err
	}
	drained := func() bool { return pr.nBack.Load() >= int64(n) }
	sent, perr := produceUntil(ctx, c, cfg, pr, p.Rate, tag, drained, handleTimeout(n, time.Millisecond))
	var werr error
	if perr == nil {
		werr = waitFor(ctx, time.Minute, "the last production entries handled", func() bool { return pr.nPrimary.Load() >= int64(sent) })
	}
	if err := errors.Join(perr, werr, pr.ioErr(), stopEngine(ctx, eng)); err != nil {
		return latency.Summary{}, 0, 0, fmt.Errorf("engine: %w (production %d/%d, backfill %d/%d)", err, pr.nPrimary.Load(), sent, pr.nBack.Load(), n)
	}
	return pr.rec.Summary(), pr.drainSeconds(start), sent, nil
}

// produceUntil writes production entries at rate, each stamped just before
// its XADD, until done reports true; it fails if that takes over timeout.
func produceUntil(ctx context.Context, c *redis.Client, cfg *lanewayconfig.Config, pr *headProbe, rate float64, tag string, done func() bool, timeout time.Duration) (int, error) {
	const chunk = 100
	deadline := time.Now().Add(timeout)
	sent := 0
	for !done() {
		if time.Now().After(deadline) {
			return sent, fmt.Errorf("the backfill was not drained within %s", timeout)
		}
		if sent+chunk > len(pr.sentAt) {
			return sent, errors.New("more production entries than the probe can stamp")
		}
		pubs, err := stampedEntries(cfg, "", laneway.Normal, sent, chunk, sent+1, tag+"p")
		if err != nil {
			return sent, err
		}
		// One chunk at a time, so that production stops soon after the
		// drain: pacing restarts per chunk, which at --rate is no drift
		// worth counting.
		k, err := paced(ctx, chunk, rate, func(ctx context.Context, i int) error {
			if done() {
				return errDrained
			}
			pr.stamp(sent + i + 1)
			return c.XAdd(ctx, &redis.XAddArgs{Stream: pubs[i].Stream, Values: []string{"data", pubs[i].Data}}).Err()
		})
		sent += k
		if errors.Is(err, errDrained) {
			break
		}
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

var errDrained = errors.New("drained")

// startSpinners starts k processes that each keep a core busy until stop.
// They are this binary's hidden "spin" command, which also exits when its
// stdin closes, so none outlives lanebench.
func (r *Runner) startSpinners(k int) (stop func() error, err error) {
	if len(r.worker) == 0 {
		return nil, errors.New("no worker command: cannot start spinning processes")
	}
	var cmds []*exec.Cmd
	var stdins []io.Closer
	stop = func() error {
		for _, in := range stdins {
			_ = in.Close()
		}
		var errs []error
		for _, cmd := range cmds {
			_ = cmd.Process.Kill()
			if werr := cmd.Wait(); werr != nil && !isKilled(werr) {
				errs = append(errs, werr)
			}
		}
		return errors.Join(errs...)
	}
	for range k {
		cmd := exec.Command(r.worker[0], "spin") //nolint:noctx // stopped by stop
		cmd.Env = append(os.Environ(), WorkerEnv+"=1")
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, errors.Join(err, stop())
		}
		if err := cmd.Start(); err != nil {
			return nil, errors.Join(fmt.Errorf("start a spinning process: %w", err), stop())
		}
		cmds, stdins = append(cmds, cmd), append(stdins, in)
	}
	return stop, nil
}

// isKilled says whether err is the exit of a process stop killed.
func isKilled(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && !ee.Exited()
}

// spin keeps one core busy until stdin closes.
func spin(stdin io.Reader) {
	var closed atomic.Bool
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		closed.Store(true)
	}()
	runtime.GOMAXPROCS(1)
	for !closed.Load() { //nolint:revive // the busy loop is the point
	}
}
