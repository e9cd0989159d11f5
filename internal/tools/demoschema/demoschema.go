// Package demoschema is the JSON that `laneway demo --json` promises
// (docs/operations.md), written out field by field so the tests of the demo
// and of the binary decode its output with names they did not take from the
// demo's own code. Pointers tell a missing number from a zero.
package demoschema

// Output is the one JSON object the demo prints.
type Output struct {
	Broker   string `json:"broker"`
	Database string `json:"database"`
	Runs     []Run  `json:"runs"`
}

// Run is one configuration of the demo: lanes off, then on.
type Run struct {
	Lanes      string   `json:"lanes"`
	Primary    Primary  `json:"primary"`
	Backfill   Backfill `json:"backfill"`
	Throughput *float64 `json:"throughput_per_s"`
}

// Primary is the production events' latency, in milliseconds.
type Primary struct {
	Count int      `json:"count"`
	P50   *float64 `json:"p50_ms"`
	P90   *float64 `json:"p90_ms"`
	P99   *float64 `json:"p99_ms"`
	Max   *float64 `json:"max_ms"`
}

// Backfill is the migration's commands: sent, handled, and the drain time.
type Backfill struct {
	Sent         int      `json:"sent"`
	Handled      int      `json:"handled"`
	DrainSeconds *float64 `json:"drain_seconds"`
}
