package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/laneway/laneway/internal/tools/latency"
)

// Result is one JSON line: one scenario × configuration. The names of
// issue 7 are fixed: scenario, lanes, primary{count,p50_ms,p90_ms,p99_ms,
// max_ms}, backfill{sent,handled,drain_seconds} for latency scenarios;
// scenario, stage, rate_per_s, ceiling_per_s, ratio for throughput. The
// other fields are extras.
type Result struct {
	Scenario string           `json:"scenario"`
	Config   string           `json:"config,omitempty"`
	Lanes    string           `json:"lanes,omitempty"`
	Primary  *latency.Summary `json:"primary,omitempty"`
	Backfill *Backfill        `json:"backfill,omitempty"`

	Stage       string   `json:"stage,omitempty"`
	RatePerS    *float64 `json:"rate_per_s,omitempty"`
	CeilingPerS *float64 `json:"ceiling_per_s,omitempty"`
	Ratio       *float64 `json:"ratio,omitempty"`
	// Ceiling names what ceiling_per_s measured.
	Ceiling string `json:"ceiling,omitempty"`

	Count               int      `json:"count,omitempty"`
	Handled             int      `json:"handled,omitempty"`
	Processes           int      `json:"processes,omitempty"`
	Callers             int      `json:"callers,omitempty"`
	Concurrency         int      `json:"concurrency,omitempty"`
	BackfillConcurrency int      `json:"backfill_concurrency,omitempty"`
	HandlerCostMS       *float64 `json:"handler_cost_ms,omitempty"`
	HandlerKind         string   `json:"handler_kind,omitempty"` // "cpu" or "sleep"
	ProductionRate      float64  `json:"production_rate_per_s,omitempty"`
	PrimarySent         int      `json:"primary_sent,omitempty"`
	SendErrors          int      `json:"send_errors,omitempty"`
	DrainRatePerS       float64  `json:"drain_rate_per_s,omitempty"`
	Seconds             float64  `json:"seconds,omitempty"`

	Backlog       int     `json:"backlog,omitempty"`
	PeakRSSMB     float64 `json:"peak_rss_mb,omitempty"`
	VmHWMMB       float64 `json:"vm_hwm_mb,omitempty"` //nolint:revive // the kernel's VmHWM, as /proc names it
	StartRSSMB    float64 `json:"start_rss_mb,omitempty"`
	RSSSamples    int     `json:"rss_samples,omitempty"`
	WorkerHandled []int64 `json:"worker_handled,omitempty"`
	// Partitions is the bench category's partition count (scale), and
	// MasterShare the share of the entries each master held, and so
	// served, by master address (one entry on a standalone Redis).
	Partitions  int                `json:"partitions,omitempty"`
	MasterShare map[string]float64 `json:"master_share,omitempty"`
	// Allowance is the governor's allowance sampled during a contention
	// run, "min/median/max".
	Allowance string `json:"governor_allowance,omitempty"`
	// TargetMS is the contention run's governor target, and BaselineP99MS
	// the production-only p99 it was chosen from (when not given).
	TargetMS int `json:"target_ms,omitempty"`
	// RateLimitPerS is the throttle scenario's shared backfill limit.
	RateLimitPerS float64 `json:"rate_limit_per_s,omitempty"`
	BaselineP99MS float64 `json:"baseline_p99_ms,omitempty"`

	// Headline scenarios (issue 14): the raw go-redis consumer's figures
	// on the same entries in the same run, and the targets with verdicts.
	RawPrimary  *latency.Summary `json:"raw_primary,omitempty"`
	RawBackfill *Backfill        `json:"raw_backfill,omitempty"`
	RawHandled  int              `json:"raw_handled,omitempty"`
	// IdlePrimary is the baseline of the e2e backfill phase: the idle
	// phase of the same run.
	IdlePrimary    *latency.Summary `json:"idle_primary,omitempty"`
	RawPrimarySent int              `json:"raw_primary_sent,omitempty"`
	// Write is the production writes' own time in the same phase as
	// Primary (the producer's XADD round trip; end to end, the Process
	// call), and RawWrite and IdleWrite the same for the raw consumer's
	// phase and the e2e idle phase: when a latency target misses, they
	// say how much of it the broker and the machine took before the
	// engine could see the entry.
	Write       *latency.Summary `json:"write,omitempty"`
	RawWrite    *latency.Summary `json:"raw_write,omitempty"`
	IdleWrite   *latency.Summary `json:"idle_write,omitempty"`
	LoadSeconds float64          `json:"load_seconds,omitempty"`
	Targets     []Target         `json:"targets,omitempty"`

	// Compare holds ratios with other configurations of the same run,
	// named "<what>_vs_<reference>" (see docs/BENCHMARKS.md).
	Compare map[string]float64 `json:"compare,omitempty"`

	Broker   string `json:"broker"`
	Database string `json:"database"`
}

// Backfill is the backlog part of a latency result.
type Backfill struct {
	Sent         int     `json:"sent"`
	Handled      int     `json:"handled"`
	DrainSeconds float64 `json:"drain_seconds"`
}

func f64(v float64) *float64 { return &v }

func costMS(d time.Duration) *float64 { return f64(latency.Round3(latency.MS(d))) }

func writeJSONLine(w io.Writer, r any) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func (r Result) cmp(key string) string {
	v, ok := r.Compare[key]
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// printTables writes one table per scenario, then the targets of issue 7
// with the measured values.
func printTables(w io.Writer, p Params, rs []Result) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nlanebench: broker %s, database %s\n", rs[0].Broker, rs[0].Database)
	var lat, thr, scl, mem []Result
	for _, r := range rs {
		switch r.Scenario {
		case "idle", "isolation":
			lat = append(lat, r)
		case "throughput":
			thr = append(thr, r)
		case "scale":
			scl = append(scl, r)
		case "memory":
			mem = append(mem, r)
		}
	}
	if len(lat) > 0 {
		fmt.Fprintf(w, "\nproduction latency (event committed -> handler start, ms) and backfill drain\n")
		fmt.Fprintf(w, "%-9s %-10s %-5s %5s %9s %7s %6s %8s %8s %8s %8s %8s %8s %8s\n",
			"scenario", "config", "lanes", "conc", "cost ms", "prod/s", "n", "p50", "p90", "p99", "max", "backfill", "handled", "drain s")
		for _, r := range lat {
			fmt.Fprintf(w, "%-9s %-10s %-5s %2d/%-2d %3.1f %-5s %7.0f %6d %8.1f %8.1f %8.1f %8.1f %8d %8d %8.2f\n",
				r.Scenario, r.Config, r.Lanes, r.Concurrency, r.BackfillConcurrency, deref(r.HandlerCostMS), r.HandlerKind, r.ProductionRate,
				r.Primary.Count, r.Primary.P50, r.Primary.P90, r.Primary.P99, r.Primary.Max,
				r.Backfill.Sent, r.Backfill.Handled, r.Backfill.DrainSeconds)
		}
	}
	if len(thr) > 0 {
		fmt.Fprintf(w, "\nthroughput per stage, beside the raw ceiling measured in this run\n")
		fmt.Fprintf(w, "%-13s %-6s %10s %12s %6s  %s\n", "stage", "conc", "rate/s", "ceiling/s", "ratio", "ceiling")
		for _, r := range thr {
			conc := "-"
			if r.Concurrency > 0 {
				conc = fmt.Sprint(r.Concurrency)
			}
			if r.Callers > 0 {
				conc = fmt.Sprintf("%dcall", r.Callers)
			}
			fmt.Fprintf(w, "%-13s %-6s %10.0f %12.0f %5.1f%%  %s\n", r.Stage, conc, deref(r.RatePerS), deref(r.CeilingPerS), 100*deref(r.Ratio), r.Ceiling)
		}
	}
	if len(scl) > 0 {
		fmt.Fprintf(w, "\nscale: consume rate with N engine processes on one broker (share per master: a cluster's)\n")
		fmt.Fprintf(w, "%-9s %8s %5s %10s %10s %-24s %s\n", "processes", "events", "parts", "rate/s", "vs 1 proc", "handled per process", "share per master")
		for _, r := range scl {
			fmt.Fprintf(w, "%-9d %8d %5d %10.0f %10s %-24s %s\n", r.Processes, r.Count, r.Partitions, deref(r.RatePerS), r.cmp("rate_vs_1_process"),
				fmt.Sprint(r.WorkerHandled), formatShares(r.MasterShare))
		}
	}
	if len(mem) > 0 {
		fmt.Fprintf(w, "\nmemory: one engine process draining a backfill backlog\n")
		fmt.Fprintf(w, "%10s %10s %12s %12s %10s %8s\n", "backlog", "drain s", "peak RSS MB", "VmHWM MB", "start MB", "vs first")
		for _, r := range mem {
			fmt.Fprintf(w, "%10d %10.2f %12.1f %12.1f %10.1f %8s\n", r.Backlog, r.Backfill.DrainSeconds, r.PeakRSSMB, r.VmHWMMB, r.StartRSSMB, r.cmp("peak_rss_vs_smallest"))
		}
	}
	printContention(w, rs)
	printThrottle(w, rs)
	printHeadline(w, rs)
	if ts := targets(rs); len(ts) > 0 {
		fmt.Fprintf(w, "\ntargets (issue 7)\n")
		for _, t := range ts {
			fmt.Fprintf(w, "  %-62s %s\n", t.name, t.value)
		}
	}
	_ = p
}

type target struct{ name, value string }

// targets restates each target of issue 7 with the value of this run.
func targets(rs []Result) []target {
	find := func(scenario, config, lanes, stage string, conc int) *Result { //nolint:unparam // stage selects rows of stage-split scenarios
		for i := range rs {
			r := &rs[i]
			if r.Scenario == scenario && r.Config == config && r.Lanes == lanes && r.Stage == stage && (conc == 0 || r.Concurrency == conc) {
				return r
			}
		}
		return nil
	}
	var out []target
	verdict := func(v, limit float64, atMost bool) string {
		ok := v >= limit
		if atMost {
			ok = v <= limit
		}
		if ok {
			return "met"
		}
		return "NOT met"
	}
	add := func(name string, r *Result, key string, limit float64, atMost bool) {
		if r == nil {
			return
		}
		v, ok := r.Compare[key]
		if !ok {
			return
		}
		out = append(out, target{name, fmt.Sprintf("%.2f (%s)", v, verdict(v, limit, atMost))})
	}
	add("isolation lanes on: p99 <= 2x idle p99", find("isolation", "default", "on", "", 0), "p99_vs_idle_p99", 2, true)
	if off := find("isolation", "default", "off", "", 0); off != nil {
		out = append(out, target{"isolation lanes off (contrast): production p99", fmt.Sprintf("%.1f ms", off.Primary.P99)})
	}
	add("idle: lanes-on p99 <= 1.2x lanes-off p99", find("idle", "default", "on", "", 0), "p99_vs_lanes_off", 1.2, true)
	for _, r := range rs {
		if r.Scenario != "throughput" || r.Ratio == nil {
			continue
		}
		limit := map[string]float64{"consume": 0.5, "relay": 0.25, "process": 0.7}[r.Stage]
		if limit == 0 {
			continue
		}
		name := fmt.Sprintf("%s >= %.0f%% of %s", r.Stage, 100*limit, r.Ceiling)
		if r.Stage == "consume" {
			name += fmt.Sprintf(" (concurrency %d)", r.Concurrency)
		}
		out = append(out, target{name, fmt.Sprintf("%.1f%% (%s)", 100**r.Ratio, verdict(*r.Ratio, limit, false))})
	}
	add("backfill drain rate, production idle >= 90% of lanes off", find("isolation", "drain_idle", "on", "", 0), "drain_rate_vs_lanes_off", 0.9, false)
	add("isolation lanes on: drain time <= 1.25x lanes off", find("isolation", "default", "on", "", 0), "drain_vs_lanes_off", 1.25, true)
	for _, r := range rs {
		if r.Scenario == "isolation" && strings.HasPrefix(r.Config, "io_c") && r.Concurrency > 1 {
			r := r
			add("I/O-bound: drain speed-up vs concurrency 1 (about 10x)", &r, "drain_speedup_vs_c1", 8, false)
			add("I/O-bound: production p99 <= 2x idle p99", &r, "p99_vs_idle_p99", 2, true)
		}
	}
	for _, r := range rs {
		if r.Scenario == "memory" {
			if _, ok := r.Compare["peak_rss_vs_smallest"]; ok {
				r := r
				add(fmt.Sprintf("memory flat: peak RSS at %d vs smallest backlog", r.Backlog), &r, "peak_rss_vs_smallest", 1.25, true)
			}
		}
	}
	return out
}
