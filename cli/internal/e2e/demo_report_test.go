package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemoReportInBrowser runs a short `laneway demo --report` and opens the
// page in headless chromium from disk: both runs are drawn on the latency
// chart and the backfill chart, the summary table is there, nothing is
// fetched from the network. The screenshot is the README's picture.
func TestDemoReportInBrowser(t *testing.T) {
	out := filepath.Join(t.TempDir(), "demo.html")
	// Two slots: with lanes on, production always has one (backfill may
	// hold all but one), so the picture shows the lanes' point.
	rep := runDemo(t, "demo", "--json", "--report", out, "--backfill", "1500", "--rate", "100", "--duration", "1s",
		"--handler-cost", "4ms", "--concurrency", "2")
	require.Len(t, rep.Runs, 2)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	page := string(b)
	assert.NotContains(t, page, `src="http`, "no script from the network")
	assert.NotContains(t, page, `href="http`, "no stylesheet from the network")
	assert.True(t, strings.Contains(page, "uPlot"), "uPlot is inline")
	runBrowser(t, map[string]string{"SHOTS": screenshotDir(t)}, "report.mjs", out)
}

// A --report path in a missing directory fails before the demo runs.
func TestDemoReportBadPath(t *testing.T) {
	code, out, errs := runCLI(t, nil, "demo", "--report", filepath.Join(t.TempDir(), "missing", "r.html"))
	requireUserError(t, code, errs, "--report", "does not exist")
	assert.Empty(t, out)
}
