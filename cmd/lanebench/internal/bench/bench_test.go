package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway/internal/tools/latency"
)

func TestParseProcStatus(t *testing.T) {
	st, err := parseProcStatus("Name:\tlanebench\nVmPeak:\t  900000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n")
	require.NoError(t, err)
	require.Equal(t, procStatus{rssMB: 20, hwmMB: 40}, st)
	_, err = parseProcStatus("Name:\tx\nVmRSS:\t 1 kB\n")
	require.Error(t, err, "VmHWM missing")
	_, err = parseProcStatus("VmRSS:\t 1 MB\nVmHWM:\t 1 kB\n")
	require.Error(t, err, "unit other than kB")
}

func TestValidate(t *testing.T) {
	ok := ShortParams()
	require.NoError(t, ok.Validate())
	for name, mut := range map[string]func(*Params){
		"backfill":      func(p *Params) { p.Backfill = 0 },
		"rate":          func(p *Params) { p.Rate = -1 },
		"duration":      func(p *Params) { p.Duration = 0 },
		"handler-cost":  func(p *Params) { p.HandlerCost = -time.Millisecond },
		"concurrency":   func(p *Params) { p.Concurrency = 1 },
		"backfill-conc": func(p *Params) { p.BackfillConcurrency = p.Concurrency },
		"events":        func(p *Params) { p.Events = 0 },
		"callers":       func(p *Params) { p.Callers = 0 },
		"scenario":      func(p *Params) { p.Scenarios = []string{"isolation", "speed"} },
		"no scenario":   func(p *Params) { p.Scenarios = nil },
		"memory":        func(p *Params) { p.MemoryBacklogs = []int{10, 0} },
		"broker scheme": func(p *Params) { p.Broker = "http://127.0.0.1:6379/9" },
		"broker db":     func(p *Params) { p.Broker = "redis://127.0.0.1:6379" },
		"database":      func(p *Params) { p.Database = "mysql://x" },
		"target":        func(p *Params) { p.TargetMS = -1 },
		"procs":         func(p *Params) { p.ContentionProcs = -1 },
		"throttle rate": func(p *Params) { p.ThrottleRate = 0 },
		"throttle proc": func(p *Params) { p.ThrottleProcs = 0 },
		"repeat":        func(p *Params) { p.Repeat = 0 },
	} {
		p := ShortParams()
		mut(&p)
		err := p.Validate()
		require.Error(t, err, name)
		require.NotContains(t, err.Error(), "\n", name)
	}
	p := ShortParams()
	p.Broker = "redis://127.0.0.1:6379/9"
	require.NoError(t, p.Validate())
}

// Without --target-ms the contention target is 2.5 x the production-only
// p99, rounded up, at least 5 ms.
func TestAutoTarget(t *testing.T) {
	require.Equal(t, 177, autoTarget(70.6))
	require.Equal(t, 25, autoTarget(10))
	require.Equal(t, 5, autoTarget(0.4))
	require.Zero(t, DefaultParams().TargetMS, "chosen from the baseline by default")
}

// A contention worker's "p" lines reach the parent's probe; those raised
// outside the window are counted, not measured; "handled" counts backfill.
func TestProcReadsPrimaryLines(t *testing.T) {
	pr := &contProbe{}
	pr.from.Store(1000)
	pr.to.Store(2000)
	p := &proc{ready: make(chan struct{}), onPrimary: pr.observe}
	p.readerW.Add(1)
	p.read(strings.NewReader("ready\np 1000 1005000000\np 1500 9000\np 2000 3000\nhandled 7 42\nbogus\n"))
	select {
	case <-p.ready:
	default:
		t.Fatal("ready not seen")
	}
	require.EqualValues(t, 3, pr.nPrimary.Load())
	sum := pr.primary.Summary()
	require.Equal(t, 2, sum.Count)
	require.InDelta(t, 1005.0, sum.Max, 0.01)
	require.EqualValues(t, 7, p.handled.Load())
}

// The contention table names each governor run's verdicts.
func TestPrintContentionVerdicts(t *testing.T) {
	sum := func(p99 float64) *latency.Summary { return &latency.Summary{Count: 100, P99: p99} }
	rs := []Result{
		{Scenario: "contention", Config: "production only", Primary: sum(20), TargetMS: 50, BaselineP99MS: 20},
		{Scenario: "contention", Config: "governor 50ms", Primary: sum(70), Backfill: &Backfill{}, DrainRatePerS: 30, TargetMS: 50,
			Compare: map[string]float64{"p99_vs_target": 1.4, "drain_vs_best_fixed_within_target": 0.5}},
		{Scenario: "contention", Config: "2 procs: governor 50ms", Processes: 2, Primary: sum(90), TargetMS: 50,
			Compare: map[string]float64{"p99_vs_target": 1.8}},
	}
	var b bytes.Buffer
	printContention(&b, rs)
	out := b.String()
	require.Contains(t, out, "target 50 ms (production-only p99 20.0 ms)")
	require.Contains(t, out, "governor 50ms: production p99 70.0 ms = 1.40x the 50 ms target (<= 1.5x: met)")
	require.Contains(t, out, "of the fastest fixed rate within the target (>= 60%: NOT met)")
	require.Contains(t, out, "2 procs: governor 50ms: production p99 90.0 ms = 1.80x the 50 ms target (<= 1.5x: NOT met)")
}

func TestApplyShortKeepsExplicitFlags(t *testing.T) {
	p := DefaultParams()
	p.Backfill = 777
	applyShort(&p, func(name string) bool { return name == "backfill" })
	s := ShortParams()
	require.Equal(t, 777, p.Backfill)
	require.Equal(t, s.Events, p.Events)
	require.Equal(t, s.Duration, p.Duration)
	require.Equal(t, s.MemoryBacklogs, p.MemoryBacklogs)
}

func TestParseSizes(t *testing.T) {
	n, err := parseSizes("100_000, 1000000")
	require.NoError(t, err)
	require.Equal(t, []int{100000, 1000000}, n)
	_, err = parseSizes("10,x")
	require.Error(t, err)
	require.Equal(t, "1,2", joinSizes([]int{1, 2}))
}

func TestBadFlagsOneLineExit1(t *testing.T) {
	for _, args := range [][]string{
		{"--bogus"}, {"--backfill", "0"}, {"--scenario", "nope"}, {"--broker", "redis://127.0.0.1:6379"},
		{"--duration", "soon"}, {"--memory-backlogs", "1,-2"}, {"extra-arg"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), args, &out, &errb)
		require.Equal(t, 1, code, "%v", args)
		msg := errb.String()
		require.True(t, strings.HasPrefix(msg, "lanebench: "), "%v: %q", args, msg)
		require.Equal(t, 1, strings.Count(msg, "\n"), "%v: one line, got %q", args, msg)
		require.Empty(t, out.String())
	}
}

func TestHelpNamesTheStreamsItDeletes(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 0, Main(context.Background(), []string{"--help"}, &out, &errb))
	require.Contains(t, out.String(), `DELETES the streams "lanebench" and "lanebench:*"`)
}

// TestResultJSONNames pins the field names of issue 7 item 4.
func TestResultJSONNames(t *testing.T) {
	lat := Result{Scenario: "isolation", Lanes: "on", Primary: &latency.Summary{Count: 3, P50: 1, P90: 2, P99: 3, Max: 4},
		Backfill: &Backfill{Sent: 10, Handled: 10, DrainSeconds: 1.5}}
	var m map[string]any
	b, err := json.Marshal(lat)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, "isolation", m["scenario"])
	require.Equal(t, "on", m["lanes"])
	require.Equal(t, map[string]any{"count": 3.0, "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0, "max_ms": 4.0}, m["primary"])
	require.Equal(t, map[string]any{"sent": 10.0, "handled": 10.0, "drain_seconds": 1.5}, m["backfill"])
	for _, k := range []string{"stage", "rate_per_s", "ceiling_per_s", "ratio"} {
		require.NotContains(t, m, k)
	}

	thr := stageResult("relay", 50, 200, "pipelined XADD", 10, 10, nil)
	m = nil
	b, err = json.Marshal(thr)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, "throughput", m["scenario"])
	require.Equal(t, "relay", m["stage"])
	require.Equal(t, 50.0, m["rate_per_s"])
	require.Equal(t, 200.0, m["ceiling_per_s"])
	require.Equal(t, 0.25, m["ratio"])
	for _, k := range []string{"primary", "backfill", "lanes"} {
		require.NotContains(t, m, k)
	}
	// A zero ratio is still written: a missing field would read as "not
	// measured".
	b, err = json.Marshal(stageResult("consume", 0, 100, "x", 1, 0, nil))
	require.NoError(t, err)
	require.Contains(t, string(b), `"ratio":0`)
}

func TestTargetsVerdicts(t *testing.T) {
	rs := []Result{
		{Scenario: "isolation", Config: "default", Lanes: "on", Primary: &latency.Summary{}, Backfill: &Backfill{},
			Compare: map[string]float64{"p99_vs_idle_p99": 1.5, "drain_vs_lanes_off": 1.3}},
		stageResult("consume", 40, 100, "XREADGROUP", 1, 1, func(r *Result) { r.Concurrency = 1 }),
	}
	got := map[string]string{}
	for _, tg := range targets(rs) {
		got[tg.name] = tg.value
	}
	require.Equal(t, "1.50 (met)", got["isolation lanes on: p99 <= 2x idle p99"])
	require.Equal(t, "1.30 (NOT met)", got["isolation lanes on: drain time <= 1.25x lanes off"])
	require.Equal(t, "40.0% (NOT met)", got["consume >= 50% of XREADGROUP (concurrency 1)"])
}

// TestSmokeEmbedded runs every scenario at tiny sizes, embedded, and checks
// the JSON lines: fixed names, every configuration present, every count
// equal to what was sent, rates and memory positive. No timing is asserted.
func TestSmokeEmbedded(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const backfill, events = 300, 600
	args := []string{"--json", "--backfill", "300", "--rate", "100", "--duration", "500ms", "--handler-cost", "100us",
		"--io-handler-cost", "200us", "--concurrency", "3", "--backfill-concurrency", "2", "--events", "600",
		"--memory-backlogs", "200,400"}
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	require.Equal(t, 0, code, "stderr: %s", errb.String())

	type line struct {
		Scenario string `json:"scenario"`
		Config   string `json:"config"`
		Lanes    string `json:"lanes"`
		Primary  *struct {
			Count *int     `json:"count"`
			P50   *float64 `json:"p50_ms"`
			P90   *float64 `json:"p90_ms"`
			P99   *float64 `json:"p99_ms"`
			Max   *float64 `json:"max_ms"`
		} `json:"primary"`
		Backfill *struct {
			Sent         *int     `json:"sent"`
			Handled      *int     `json:"handled"`
			DrainSeconds *float64 `json:"drain_seconds"`
		} `json:"backfill"`
		Stage       string   `json:"stage"`
		RatePerS    *float64 `json:"rate_per_s"`
		CeilingPerS *float64 `json:"ceiling_per_s"`
		Ratio       *float64 `json:"ratio"`
		Count       int      `json:"count"`
		Handled     int      `json:"handled"`
		Processes   int      `json:"processes"`
		PrimarySent int      `json:"primary_sent"`
		Backlog     int      `json:"backlog"`
		PeakRSSMB   float64  `json:"peak_rss_mb"`
	}
	seen := map[string]int{}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, raw := range lines {
		var l line
		require.NoError(t, json.Unmarshal([]byte(raw), &l), raw)
		switch l.Scenario {
		case "idle", "isolation":
			require.Contains(t, []string{"off", "on"}, l.Lanes, raw)
			require.NotNil(t, l.Primary, raw)
			require.NotNil(t, l.Backfill, raw)
			p, b := l.Primary, l.Backfill
			for _, v := range []any{p.Count, p.P50, p.P90, p.P99, p.Max, b.Sent, b.Handled, b.DrainSeconds} {
				require.NotNil(t, v, "a fixed field is missing: %s", raw)
			}
			require.Equal(t, l.PrimarySent, *p.Count, "every production event handled: %s", raw)
			require.Equal(t, *b.Sent, *b.Handled, "every backfill event handled: %s", raw)
			require.LessOrEqual(t, *p.P50, *p.P90, raw)
			require.LessOrEqual(t, *p.P90, *p.P99, raw)
			require.LessOrEqual(t, *p.P99, *p.Max, raw)
			if l.Scenario == "idle" {
				require.Equal(t, 0, *b.Sent, raw)
			} else {
				require.Equal(t, backfill, *b.Sent, raw)
				require.Positive(t, *b.DrainSeconds, raw)
			}
			if l.Config != "drain_idle" {
				require.Positive(t, *p.Count, raw)
			}
			seen[l.Scenario+"/"+l.Config+"/"+l.Lanes]++
		case "throughput":
			require.Contains(t, []string{"process", "relay", "consume", "consumer_only", "end_to_end"}, l.Stage, raw)
			require.NotNil(t, l.RatePerS, raw)
			require.NotNil(t, l.CeilingPerS, raw)
			require.NotNil(t, l.Ratio, raw)
			require.Positive(t, *l.RatePerS, raw)
			require.Positive(t, *l.CeilingPerS, raw)
			require.Positive(t, *l.Ratio, raw)
			require.Equal(t, events, l.Count, raw)
			require.Equal(t, events, l.Handled, raw)
			seen["throughput/"+l.Stage]++
		case "scale":
			require.Equal(t, events, l.Count, raw)
			require.Equal(t, events, l.Handled, "no event lost or handled twice: %s", raw)
			require.Positive(t, *l.RatePerS, raw)
			seen["scale/"+string(rune('0'+l.Processes))]++
		case "memory":
			require.Equal(t, l.Backlog, *l.Backfill.Sent, raw)
			require.Equal(t, l.Backlog, *l.Backfill.Handled, raw)
			require.Positive(t, l.PeakRSSMB, raw)
			seen["memory/"+string(rune('0'+l.Backlog/100))]++
		default:
			t.Fatalf("unknown scenario in %s", raw)
		}
	}
	require.Equal(t, map[string]int{
		"idle/default/off": 1, "idle/default/on": 1,
		"isolation/default/off": 1, "isolation/default/on": 1,
		"isolation/drain_idle/off": 1, "isolation/drain_idle/on": 1,
		"isolation/io_c1_b1/on": 1, "isolation/io_c3_b2/on": 1,
		"throughput/process": 1, "throughput/relay": 1, "throughput/consume": 2, "throughput/consumer_only": 1, "throughput/end_to_end": 1,
		"scale/1": 1, "scale/2": 1, "scale/4": 1,
		"memory/2": 1, "memory/4": 1,
	}, seen)
}
