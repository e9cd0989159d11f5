package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// TargetRuns is one target over the rounds of a --repeat run: the value of
// each round in order, their median, and in how many rounds it was met.
type TargetRuns struct {
	Scenario string `json:"scenario"`
	Config   string `json:"config,omitempty"`
	Name     string `json:"name"`
	// Limit is the first round's limit. Limits are every round's: a
	// target relative to the raw consumer (quiet's p50 within 0.1 ms of
	// the raw p50) has a limit of its own in each round.
	Limit   float64   `json:"limit"`
	Limits  []float64 `json:"limits"`
	AtLeast bool      `json:"at_least,omitempty"`
	Values  []float64 `json:"values"`
	Median  float64   `json:"median"`
	Met     int       `json:"met"`
	Runs    int       `json:"runs"`
}

// repeatSummary is the JSON line a --repeat run ends with.
type repeatSummary struct {
	Rounds  int          `json:"rounds"`
	Targets []TargetRuns `json:"repeat_summary"`
}

// summarizeTargets groups the targets of rs by scenario, configuration
// and name, in the order they were first measured. On a machine with two
// busy cores one run of a latency target says little: its spread from
// run to run is often larger than what a change moves, so the verdict
// worth quoting is "met in k of n" beside the median.
func summarizeTargets(rs []Result) []TargetRuns {
	var out []TargetRuns
	at := map[string]int{}
	for _, r := range rs {
		for _, t := range r.Targets {
			key := r.Scenario + "\x00" + r.Config + "\x00" + t.Name
			i, ok := at[key]
			if !ok {
				i = len(out)
				at[key] = i
				out = append(out, TargetRuns{Scenario: r.Scenario, Config: r.Config, Name: t.Name, Limit: t.Limit, AtLeast: t.AtLeast})
			}
			tr := &out[i]
			tr.Values = append(tr.Values, t.Value)
			tr.Limits = append(tr.Limits, t.Limit)
			tr.Runs++
			if t.Met {
				tr.Met++
			}
		}
	}
	for i := range out {
		out[i].Median = median(out[i].Values)
	}
	return out
}

// median of vs (the mean of the middle two for an even count).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// printRepeatSummary writes the targets over the rounds of a --repeat run.
func printRepeatSummary(w io.Writer, rounds int, ts []TargetRuns) {
	if len(ts) == 0 {
		return
	}
	fmt.Fprintf(w, "\ntargets over %d rounds (median, met in k of n, each round's value in order)\n", rounds)
	for _, t := range ts {
		op := "<="
		if t.AtLeast {
			op = ">="
		}
		vals := make([]string, len(t.Values))
		for i, v := range t.Values {
			vals[i] = fmt.Sprintf("%.3f", v)
			if t.Limits[i] != t.Limit {
				vals[i] += fmt.Sprintf("(%s %.3f)", op, t.Limits[i])
			}
		}
		limit := fmt.Sprintf("%s %-7.3f", op, t.Limit)
		if !t.constantLimit() {
			limit = fmt.Sprintf("%-9s", "per round")
		}
		fmt.Fprintf(w, "  %-8s %-8s %-36s median %8.3f %s met %d of %d  [%s]\n",
			t.Scenario, t.Config, t.Name, t.Median, limit, t.Met, t.Runs, strings.Join(vals, " "))
	}
}

// constantLimit reports whether every round had the same limit, so the
// median can be read against it.
func (t TargetRuns) constantLimit() bool {
	for _, l := range t.Limits {
		if l != t.Limit {
			return false
		}
	}
	return true
}
