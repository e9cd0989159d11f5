package bench

import (
	"fmt"
	"io"
	"slices"

	"github.com/laneway/laneway/internal/tools/latency"
)

// Target is one of issue 14's targets with this run's value: Value is
// compared with Limit (Value <= Limit, or >= when AtLeast).
type Target struct {
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Limit   float64 `json:"limit"`
	AtLeast bool    `json:"at_least,omitempty"`
	Met     bool    `json:"met"`
}

func atMost(name string, v, limit float64) Target {
	return Target{Name: name, Value: v, Limit: limit, Met: v <= limit}
}

func atLeast(name string, v, limit float64) Target {
	return Target{Name: name, Value: v, Limit: limit, AtLeast: true, Met: v >= limit}
}

func (t Target) verdict() string {
	if t.Met {
		return "met"
	}
	return "NOT met"
}

// printHeadline writes the headline scenarios: one line per measure,
// Laneway beside the raw consumer of the same run, then the targets.
func printHeadline(w io.Writer, rs []Result) {
	var hs []Result
	for _, r := range rs {
		if contains(HeadlineScenarios, r.Scenario) || r.Scenario == "busycores" || r.Scenario == "quietpair" {
			hs = append(hs, r)
		}
	}
	if len(hs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nproduction lane headline (issue 14): Laneway beside a raw go-redis consumer, same entries, same run\n")
	fmt.Fprintf(w, "(e2e backfill: the raw column is the e2e idle phase of this run; write: in the same phase,\n")
	fmt.Fprintf(w, " the producer's own XADD round trip, end to end the Process call)\n")
	fmt.Fprintf(w, "%-9s %-9s %-26s %12s %12s\n", "scenario", "config", "measure", "laneway", "raw")
	row := func(r Result, measure string, lw, raw float64, hasRaw bool) {
		rawS := "-"
		if hasRaw {
			rawS = fmt.Sprintf("%12.3f", raw)
		}
		fmt.Fprintf(w, "%-9s %-9s %-26s %12.3f %12s\n", r.Scenario, r.Config, measure, lw, rawS)
	}
	for _, r := range hs {
		switch {
		case r.Scenario == "consume":
			row(r, "msg/s", deref(r.RatePerS), deref(r.CeilingPerS), true)
			row(r, "handled", float64(r.Handled), float64(r.RawHandled), true)
		case r.Primary != nil:
			base := r.RawPrimary
			if r.IdlePrimary != nil {
				base = r.IdlePrimary
			}
			hasRaw := base != nil
			var rp50, rp99, rmax float64
			if hasRaw {
				rp50, rp99, rmax = base.P50, base.P99, base.Max
			}
			row(r, "production p50 ms", r.Primary.P50, rp50, hasRaw)
			row(r, "production p99 ms", r.Primary.P99, rp99, hasRaw)
			row(r, "production max ms", r.Primary.Max, rmax, hasRaw)
			row(r, "production handled", float64(r.Primary.Count), float64(countOf(base)), hasRaw)
			if r.Write != nil {
				bw := r.RawWrite
				if r.IdlePrimary != nil {
					bw = r.IdleWrite
				}
				var wp50, wp99 float64
				if bw != nil {
					wp50, wp99 = bw.P50, bw.P99
				}
				row(r, "write p50 ms", r.Write.P50, wp50, bw != nil)
				row(r, "write p99 ms", r.Write.P99, wp99, bw != nil)
			}
			if r.Backfill != nil {
				rb := r.RawBackfill
				row(r, "backfill drain s", r.Backfill.DrainSeconds, drainOf(rb), rb != nil)
				row(r, "backfill handled", float64(r.Backfill.Handled), float64(handledOf(rb)), rb != nil)
			}
			if r.LoadSeconds > 0 {
				row(r, "backfill commit s", r.LoadSeconds, 0, false)
			}
			if r.Scenario == "quietpair" {
				fmt.Fprintf(w, "%-9s in one window: p50 %+.3f ms and p99 %+.3f ms over raw, p99 %.3f x raw (a diagnostic; the targets are quiet's)\n",
					r.Scenario, r.Compare["p50_over_raw_ms"], r.Compare["p99_over_raw_ms"], r.Compare["p99_vs_raw"])
			}
		}
	}
	if !slices.ContainsFunc(hs, func(r Result) bool { return len(r.Targets) > 0 }) {
		return
	}
	fmt.Fprintf(w, "\ntargets (issue 14)\n")
	for _, r := range hs {
		for _, t := range r.Targets {
			op := "<="
			if t.AtLeast {
				op = ">="
			}
			fmt.Fprintf(w, "  %-9s %-36s %10.3f %s %-8.3f %s\n", r.Scenario, t.Name, t.Value, op, t.Limit, t.verdict())
		}
	}
}

func countOf(s *latency.Summary) int {
	if s == nil {
		return 0
	}
	return s.Count
}

func drainOf(b *Backfill) float64 {
	if b == nil {
		return 0
	}
	return b.DrainSeconds
}

func handledOf(b *Backfill) int {
	if b == nil {
		return 0
	}
	return b.Handled
}
