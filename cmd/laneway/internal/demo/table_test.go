package demo

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/tools/latency"
)

func TestDemoTable(t *testing.T) {
	run := func(lanes string, p99 float64) demoRun {
		return demoRun{Lanes: lanes, Primary: latency.Summary{Count: 3000, P50: 1, P90: 2, P99: p99, Max: p99 + 1},
			Backfill: demoBackfill{Sent: 20000, Handled: 20000, DrainSeconds: 30.25}, Throughput: 812.5}
	}
	var b bytes.Buffer
	printDemoTable(&b, demoReport{Broker: "embedded", Database: "sqlite", Rate: 200, HandlerCost: 1, Concurrency: 4,
		Runs: []demoRun{run("off", 5000), run("on", 20)}, P99Ratio: 250})
	out := b.String()
	for _, want := range []string{
		"laneway demo: broker embedded, database sqlite, production 200/s, email cost 1ms, 4 handler slots",
		"lanes off     lanes on",
		"primary latency p50 (ms)",
		"primary latency p99 (ms)         5000.0         20.0",
		"primary latency max (ms)",
		"backfill handled                  20000        20000",
		"backfill drain (s)                 30.2         30.2",
		"throughput (events/s)             812.5        812.5",
		"primary p99, lanes off / lanes on: 250.0x",
	} {
		require.Contains(t, out, want)
	}
	require.False(t, strings.Contains(out, "failed to send"))
}
