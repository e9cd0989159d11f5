package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestSummarizeTargets(t *testing.T) {
	round := func(p99, ratio float64) []Result {
		return []Result{
			{Scenario: "flood", Targets: []Target{atMost("production p99 ms <= 1.0", p99, 1.0)}},
			{Scenario: "e2e", Config: "idle"},
			{Scenario: "e2e", Config: "backfill", Targets: []Target{atMost("p99 <= 2x idle p99", ratio, 2)}},
		}
	}
	var rs []Result
	rs = append(rs, round(0.9, 2.5)...)
	rs = append(rs, round(1.4, 1.5)...)
	rs = append(rs, round(0.7, 1.9)...)
	got := summarizeTargets(rs)
	require.Len(t, got, 2)

	require.Equal(t, "flood", got[0].Scenario)
	require.Equal(t, []float64{0.9, 1.4, 0.7}, got[0].Values, "values in round order")
	require.InDelta(t, 0.9, got[0].Median, 1e-9)
	require.Equal(t, 2, got[0].Met)
	require.Equal(t, 3, got[0].Runs)

	require.Equal(t, "backfill", got[1].Config)
	require.InDelta(t, 1.9, got[1].Median, 1e-9)
	require.Equal(t, 2, got[1].Met)

	var out bytes.Buffer
	printRepeatSummary(&out, 3, got)
	require.Contains(t, out.String(), "met 2 of 3")
	require.Contains(t, out.String(), "[0.900 1.400 0.700]")
	require.NotContains(t, out.String(), "per round")
}

// A target whose limit comes from the raw consumer of its own round
// shows each round's limit, not one the median would be misread against.
func TestSummarizeTargetsPerRoundLimits(t *testing.T) {
	rs := []Result{
		{Scenario: "quiet", Targets: []Target{atMost("p50 ms <= raw p50 + 0.1", 0.40, 0.45)}},
		{Scenario: "quiet", Targets: []Target{atMost("p50 ms <= raw p50 + 0.1", 0.40, 0.35)}},
	}
	got := summarizeTargets(rs)
	require.Len(t, got, 1)
	require.Equal(t, []float64{0.45, 0.35}, got[0].Limits)
	require.Equal(t, 1, got[0].Met)
	var out bytes.Buffer
	printRepeatSummary(&out, 2, got)
	require.Contains(t, out.String(), "per round")
	require.Contains(t, out.String(), "0.400(<= 0.350)")
}

func TestMedian(t *testing.T) {
	require.Zero(t, median(nil))
	require.InDelta(t, 2.0, median([]float64{3, 1, 2}), 1e-9)
	require.InDelta(t, 2.5, median([]float64{4, 1, 3, 2}), 1e-9)
	vs := []float64{3, 1, 2}
	median(vs)
	require.Equal(t, []float64{3, 1, 2}, vs, "the caller's values keep their order")
}

// TestRepeatEmbedded runs the consume scenario twice at a tiny size and
// checks that both rounds are reported and the summary line counts them.
func TestRepeatEmbedded(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out, errb bytes.Buffer
	args := []string{"--json", "--scenario", "consume", "--events", "300", "--repeat", "2"}
	require.Equal(t, 0, Main(context.Background(), args, &out, &errb), "stderr: %s", errb.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, "two results and the summary")
	for _, l := range lines[:2] {
		var r Result
		require.NoError(t, json.Unmarshal([]byte(l), &r))
		require.Equal(t, "consume", r.Scenario)
	}
	var sum repeatSummary
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &sum))
	require.Equal(t, 2, sum.Rounds)
	require.Len(t, sum.Targets, 1)
	require.Equal(t, 2, sum.Targets[0].Runs)
	require.Len(t, sum.Targets[0].Values, 2)
	require.Contains(t, errb.String(), "round 2 of 2")
}
