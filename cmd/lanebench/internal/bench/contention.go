package bench

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"sync/atomic"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/tools/latency"
)

// The contention scenario: production and backfill handlers write the same
// PostgreSQL table, so a backfill hurts production through the database,
// which the lane scheduler does not see. It compares production p99 and
// the backfill's drain rate with the backfill unlimited, held to fixed
// rates (a sweep that finds the fastest rate keeping production within the
// target) and run by the governor.

// ExtraScenarios run only when named: contention needs PostgreSQL,
// throttle measures a lane control rather than the lanes, busycores starts
// processes that keep every core busy, quietpair is a diagnostic of
// quiet, and the headline
// scenarios are issue 14's comparison with a raw consumer.
var ExtraScenarios = append([]string{"contention", "throttle", "busycores", "quietpair"}, HeadlineScenarios...)

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
	lastBack atomic.Int64 // UnixNano of the last backfill handler end
	// onPrimary, when set (a worker process), takes each production
	// message instead of the recorder: the parent measures.
	onPrimary func(raised, done time.Time)
}

// observe counts one production message raised at raised and handled at
// done (UnixNano), measured if raised in the window.
func (p *contProbe) observe(raised, done int64) {
	if raised >= p.from.Load() && raised < p.to.Load() {
		p.primary.Add(time.Duration(done - raised))
	}
	p.nPrimary.Add(1)
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
			at, err := time.Parse(time.RFC3339Nano, ev.At)
			if err != nil {
				return fmt.Errorf("production event time %q: %w", ev.At, err)
			}
			if p.onPrimary != nil {
				p.onPrimary(at, time.Now())
			} else {
				p.observe(at.UnixNano(), time.Now().UnixNano())
			}
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
		p.lastBack.Store(time.Now().UnixNano())
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
	// procs > 0 runs that many engine processes instead of one engine in
	// this process.
	procs int
}

// TargetFromBaseline is the governor's target when --target-ms is not
// given: this multiple of production's p99 with no backfill, measured at
// the start of the same run, so the target is one the machine can meet
// at its load of the moment.
const TargetFromBaseline = 2.5

// autoTarget is the target chosen from the baseline p99 (ms): at least 5 ms.
func autoTarget(baselineP99 float64) int {
	return max(5, int(math.Ceil(TargetFromBaseline*baselineP99)))
}

func (r *Runner) contention(ctx context.Context) error {
	if r.p.Database == "" {
		return fmt.Errorf("contention needs PostgreSQL: pass --database postgres://... (both lanes' handlers write it)")
	}
	var results []Result
	run := func(cr contRun) (Result, error) {
		res, err := r.contentionRun(ctx, cr)
		if err == nil {
			results = append(results, res)
			r.progress("  %s: production p99 %.1f ms, drain %.1f/s %s", cr.config, res.Primary.P99, res.DrainRatePerS, res.Allowance)
		}
		return res, err
	}
	base, err := run(contRun{config: "production only"})
	if err != nil {
		return err
	}
	target := r.p.TargetMS
	if target == 0 {
		target = autoTarget(base.Primary.P99)
		r.progress("contention: target %d ms = %.1f x production-only p99 %.1f ms", target, TargetFromBaseline, base.Primary.P99)
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
	judge(&results[len(results)-1], target, best)
	if k := r.p.ContentionProcs; k > 1 {
		name := func(s string) string { return fmt.Sprintf("%d procs: %s", k, s) }
		for _, cr := range []contRun{
			{config: name("production only"), procs: k},
			{config: name("unlimited"), backfill: true, procs: k},
			{config: name(fmt.Sprintf("governor %dms", target)), backfill: true, targetMS: target, procs: k},
		} {
			if _, err := run(cr); err != nil {
				return err
			}
		}
		judge(&results[len(results)-1], target, 0)
	}
	for i := range results {
		results[i].TargetMS = target
		results[i].BaselineP99MS = base.Primary.P99
		if err := r.emit(results[i]); err != nil {
			return err
		}
	}
	return nil
}

// judge sets a governor run's comparisons with the target and, when known,
// the fastest fixed rate within it.
func judge(gov *Result, target int, best float64) {
	gov.Compare = map[string]float64{"p99_vs_target": latency.Round3(gov.Primary.P99 / float64(target))}
	if best > 0 {
		gov.Compare["drain_vs_best_fixed_within_target"] = latency.Round3(gov.DrainRatePerS / best)
	}
}

// printContention writes the contention table and its targets.
func printContention(w io.Writer, rs []Result) {
	var cs []Result
	for _, r := range rs {
		if r.Scenario == "contention" {
			cs = append(cs, r)
		}
	}
	if len(cs) == 0 {
		return
	}
	target := cs[0].TargetMS
	fmt.Fprintf(w, "\ncontention: production (event raised -> handler done, ms) and backfill on one PostgreSQL table\n")
	fmt.Fprintf(w, "target %d ms (production-only p99 %.1f ms)\n", target, cs[0].BaselineP99MS)
	fmt.Fprintf(w, "%-26s %7s %6s %8s %8s %8s %8s %10s  %s\n", "config", "prod/s", "n", "p50", "p90", "p99", "max", "drain/s", "allowance min/med/max")
	for _, r := range cs {
		drain := "-"
		if r.Backfill != nil {
			drain = fmt.Sprintf("%.1f", r.DrainRatePerS)
		}
		fmt.Fprintf(w, "%-26s %7.0f %6d %8.1f %8.1f %8.1f %8.1f %10s  %s\n", r.Config, r.ProductionRate, r.Primary.Count,
			r.Primary.P50, r.Primary.P90, r.Primary.P99, r.Primary.Max, drain, r.Allowance)
	}
	for _, gov := range cs {
		v, ok := gov.Compare["p99_vs_target"]
		if !ok {
			continue
		}
		verdict := "met"
		if v > 1.5 {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "  %s: production p99 %.1f ms = %.2fx the %d ms target (<= 1.5x: %s)\n", gov.Config, gov.Primary.P99, v, target, verdict)
		if d, ok := gov.Compare["drain_vs_best_fixed_within_target"]; ok {
			verdict := "met"
			if d < 0.6 {
				verdict = "NOT met"
			}
			fmt.Fprintf(w, "  %s: drain %.1f/s = %.0f%% of the fastest fixed rate within the target (>= 60%%: %s)\n", gov.Config, gov.DrainRatePerS, 100*d, verdict)
		} else if gov.Processes == 0 {
			fmt.Fprintf(w, "  no fixed rate kept production within the target\n")
		}
	}
}
