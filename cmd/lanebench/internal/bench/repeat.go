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
	Scenario string    `json:"scenario"`
	Config   string    `json:"config,omitempty"`
	Name     string    `json:"name"`
	Limit    float64   `json:"limit"`
	AtLeast  bool      `json:"at_least,omitempty"`
	Values   []float64 `json:"values"`
	Median   float64   `json:"median"`
	Met      int       `json:"met"`
	Runs     int       `json:"runs"`
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
		}
		fmt.Fprintf(w, "  %-8s %-8s %-36s median %8.3f %s %-7.3f met %d of %d  [%s]\n",
			t.Scenario, t.Config, t.Name, t.Median, op, t.Limit, t.Met, t.Runs, strings.Join(vals, " "))
	}
}
