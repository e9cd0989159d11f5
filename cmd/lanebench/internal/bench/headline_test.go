package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/internal/tools/latency"
)

// headlineArgs are tiny sizes: the smoke tests check shapes and counts,
// never speed.
var headlineArgs = []string{"--json", "--scenario", "headline", "--events", "400", "--backfill", "300",
	"--samples", "20", "--idle-samples", "10", "--rate", "200", "--handler-cost", "50us"}

// TestHeadlineSmokeEmbedded runs the four headline scenarios embedded.
func TestHeadlineSmokeEmbedded(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	checkHeadline(t, runHeadline(t, headlineArgs), "embedded")
}

// TestHeadlineSmokeRedis runs them on a real Redis, in a database of
// their own (lanebench deletes its streams there).
// LANEBENCH_TEST_REDIS_DB moves it.
func TestHeadlineSmokeRedis(t *testing.T) {
	u, err := url.Parse(testsvc.RedisURL(t))
	require.NoError(t, err)
	db := "12"
	if v := os.Getenv("LANEBENCH_TEST_REDIS_DB"); v != "" {
		db = v
	}
	u.Path = "/" + db
	checkHeadline(t, runHeadline(t, append(append([]string(nil), headlineArgs...), "--broker", u.String())), "redis")
}

func runHeadline(t *testing.T, args []string) []Result {
	t.Helper()
	var out, errb bytes.Buffer
	require.Equal(t, 0, Main(context.Background(), args, &out, &errb), "stderr: %s", errb.String())
	var rs []Result
	for _, raw := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(raw), &m), raw)
		for _, k := range []string{"scenario", "broker", "database"} {
			require.Contains(t, m, k, raw)
		}
		if m["config"] != "idle" && m["config"] != "slice off" { // baselines
			require.Contains(t, m, "targets", raw)
		}
		var r Result
		require.NoError(t, json.Unmarshal([]byte(raw), &r), raw)
		rs = append(rs, r)
	}
	return rs
}

// checkHeadline: one row per scenario (two for e2e), every entry handled
// by the engine and by the raw consumer, the targets named with verdicts.
func checkHeadline(t *testing.T, rs []Result, broker string) {
	t.Helper()
	const events, backfill, samples, idleSamples = 400, 300, 20, 10
	seen := map[string]int{}
	for _, r := range rs {
		require.Equal(t, broker, r.Broker)
		for _, tg := range r.Targets {
			require.NotEmpty(t, tg.Name)
			want := tg.Value <= tg.Limit
			if tg.AtLeast {
				want = tg.Value >= tg.Limit
			}
			require.Equal(t, want, tg.Met, "verdict of %+v", tg)
		}
		seen[r.Scenario+"/"+r.Config]++
		switch r.Scenario {
		case "consume":
			require.Equal(t, events, r.Count)
			require.Equal(t, events, r.Handled, "the engine handled every entry")
			require.Equal(t, events, r.RawHandled, "the raw consumer handled every entry")
			require.Positive(t, deref(r.RatePerS))
			require.Positive(t, deref(r.CeilingPerS))
			require.Positive(t, deref(r.Ratio))
		case "flood":
			requireSummary(t, r.Primary, samples)
			requireSummary(t, r.RawPrimary, samples)
			requireSummary(t, r.Write, samples)
			requireSummary(t, r.RawWrite, samples)
			require.Equal(t, samples, r.PrimarySent)
			require.Equal(t, samples, r.RawPrimarySent)
			for _, b := range []*Backfill{r.Backfill, r.RawBackfill} {
				require.NotNil(t, b)
				require.Equal(t, backfill, b.Sent)
				require.Equal(t, backfill, b.Handled)
				require.Positive(t, b.DrainSeconds)
			}
			require.Len(t, r.Targets, 3)
		case "quiet":
			requireSummary(t, r.Primary, idleSamples)
			requireSummary(t, r.RawPrimary, idleSamples)
			requireSummary(t, r.Write, idleSamples)
			requireSummary(t, r.RawWrite, idleSamples)
			require.Len(t, r.Targets, 2)
		case "e2e":
			switch r.Config {
			case "idle":
				requireSummary(t, r.Primary, idleSamples)
				requireSummary(t, r.Write, idleSamples)
				require.Nil(t, r.Backfill)
			case "backfill":
				requireSummary(t, r.Primary, samples)
				requireSummary(t, r.IdlePrimary, idleSamples)
				requireSummary(t, r.Write, samples)
				requireSummary(t, r.IdleWrite, idleSamples)
				require.Nil(t, r.RawPrimary)
				require.NotNil(t, r.Backfill)
				require.Equal(t, backfill, r.Backfill.Sent)
				require.Equal(t, backfill, r.Backfill.Handled)
				require.Positive(t, r.Backfill.DrainSeconds)
				require.Positive(t, r.LoadSeconds)
			default:
				t.Fatalf("unknown e2e config %q", r.Config)
			}
		default:
			t.Fatalf("unexpected scenario %q", r.Scenario)
		}
	}
	require.Equal(t, map[string]int{"consume/": 1, "flood/": 1, "quiet/": 1, "e2e/idle": 1, "e2e/backfill": 1}, seen)
}

func requireSummary(t *testing.T, s *latency.Summary, n int) {
	t.Helper()
	require.NotNil(t, s)
	require.Equal(t, n, s.Count, "every production sample measured")
	require.Positive(t, s.P50)
	require.LessOrEqual(t, s.P50, s.P99)
	require.LessOrEqual(t, s.P99, s.Max)
}

func TestParseSeq(t *testing.T) {
	pubs, err := stampedEntries(headConfig(), rawFIFOStream, laneway.Normal, 0, 2, 7, "x")
	require.NoError(t, err)
	require.Equal(t, 7, parseSeq(pubs[0].Data))
	require.Equal(t, 8, parseSeq(pubs[1].Data))
	require.Equal(t, rawFIFOStream, pubs[0].Stream)
	back, err := stampedEntries(headConfig(), "", laneway.Low, 0, 1, 0, "b")
	require.NoError(t, err)
	require.Equal(t, 0, parseSeq(back[0].Data))
	require.NotEqual(t, Category, back[0].Stream, "a low entry is routed to the backfill lane")
	require.Equal(t, 0, parseSeq(`{"data":{}}`))
}

func TestExpandScenarios(t *testing.T) {
	require.Equal(t, []string{"idle", "consume", "flood", "quiet", "e2e"}, expandScenarios([]string{"idle", "headline"}))
	p := ShortParams()
	p.Scenarios = []string{"headline"}
	require.NoError(t, p.Validate())
	require.Equal(t, HeadlineScenarios, p.Scenarios)
	for _, mut := range []func(*Params){func(p *Params) { p.Samples = 0 }, func(p *Params) { p.IdleSamples = -1 }} {
		p := ShortParams()
		mut(&p)
		require.Error(t, p.Validate())
	}
}

func TestHeadlineTable(t *testing.T) {
	sum := func(p50, p99 float64) *latency.Summary {
		return &latency.Summary{Count: 5, P50: p50, P90: p99, P99: p99, Max: p99}
	}
	rs := []Result{
		{Scenario: "consume", RatePerS: f64(60), CeilingPerS: f64(100), Ratio: f64(0.6), Handled: 9, RawHandled: 9,
			Targets: []Target{atLeast("rate >= 50% of raw", 0.6, 0.5)}},
		{Scenario: "quiet", Primary: sum(0.5, 2), RawPrimary: sum(0.3, 1), Write: sum(0.2, 1.5), RawWrite: sum(0.1, 0.7),
			Targets: []Target{atMost("p99 <= 1.2x raw p99", 2, 1.2)}},
		{Scenario: "isolation", Primary: sum(1, 1), Backfill: &Backfill{}},
	}
	var b bytes.Buffer
	printHeadline(&b, rs)
	out := b.String()
	require.Regexp(t, `consume +msg/s +60\.000 +100\.000`, out)
	require.Regexp(t, `quiet +production p99 ms +2\.000 +1\.000`, out)
	require.Regexp(t, `quiet +write p50 ms +0\.200 +0\.100`, out)
	require.Regexp(t, `quiet +write p99 ms +1\.500 +0\.700`, out)
	require.NotRegexp(t, `consume +write`, out)
	require.Regexp(t, `consume +rate >= 50% of raw +0\.600 >= 0\.500 +met`, out)
	require.Regexp(t, `quiet +p99 <= 1\.2x raw p99 +2\.000 <= 1\.200 +NOT met`, out)
	require.NotContains(t, out, "isolation")
	b.Reset()
	printHeadline(&b, rs[2:])
	require.Empty(t, b.String(), "no headline rows, no headline table")
}

// TestBusyCoresSmoke runs the busycores scenario at tiny sizes: both
// settings drain every backfill entry and handle production, with the
// spinning processes stopped afterwards.
func TestBusyCoresSmoke(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rs := runHeadline(t, []string{"--json", "--scenario", "busycores", "--backfill", "300", "--rate", "200", "--handler-cost", "50us"})
	require.Len(t, rs, 2)
	require.Equal(t, "slice off", rs[0].Config)
	require.Equal(t, "slice on", rs[1].Config)
	for _, r := range rs {
		require.Equal(t, "busycores", r.Scenario)
		require.NotNil(t, r.Backfill)
		require.Equal(t, 2000, r.Backfill.Handled, "two runs of at least 1,000 entries")
		require.Positive(t, r.Backfill.DrainSeconds)
		require.NotNil(t, r.Primary)
		require.Positive(t, r.Primary.Count)
		require.Equal(t, runtime.NumCPU(), r.Processes)
	}
	require.Contains(t, rs[1].Compare, "drain_vs_off")
	require.Len(t, rs[1].Targets, 1)
}

// TestQuietPairSmoke: the raw consumer and the engine in one window, every
// entry of each handled and measured, the gap reported without a verdict.
func TestQuietPairSmoke(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const n = 10
	args := []string{"--scenario", "quietpair", "--idle-samples", "10", "--handler-cost", "50us"}
	var out, errb bytes.Buffer
	require.Equal(t, 0, Main(context.Background(), append([]string{"--json"}, args...), &out, &errb), "stderr: %s", errb.String())
	var r Result
	require.NoError(t, json.Unmarshal(bytes.TrimSpace(out.Bytes()), &r), out.String())
	require.Equal(t, "quietpair", r.Scenario)
	requireSummary(t, r.Primary, n)
	requireSummary(t, r.RawPrimary, n)
	requireSummary(t, r.Write, n)
	requireSummary(t, r.RawWrite, n)
	require.Equal(t, n, r.PrimarySent)
	require.Equal(t, n, r.RawPrimarySent)
	require.Empty(t, r.Targets, "a diagnostic, not a target")
	require.InDelta(t, r.Primary.P50-r.RawPrimary.P50, r.Compare["p50_over_raw_ms"], 0.0011)
	require.InDelta(t, latency.Ratio(r.Primary.P99, r.RawPrimary.P99), r.Compare["p99_vs_raw"], 1e-9)

	out.Reset()
	require.Equal(t, 0, Main(context.Background(), args, &out, &errb), "stderr: %s", errb.String())
	require.Regexp(t, `quietpair +production handled +10\.000 +10\.000`, out.String())
	require.Regexp(t, `quietpair in one window: p50 [+-]\d+\.\d{3} ms and p99 [+-]\d+\.\d{3} ms over raw`, out.String())
	require.NotContains(t, out.String(), "targets (issue 14)")
}
