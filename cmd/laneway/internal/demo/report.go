package demo

import (
	"bytes"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"time"

	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/internal/uplot"
)

// The demo's picture (`laneway demo --report FILE.html`): one HTML file
// that needs no network to open, with uPlot and the data inline. It is fed
// by what the demo measures anyway; demoSeries only keeps the times.

// reportWindow is the width of one point of the report's charts.
const reportWindow = 500 * time.Millisecond

// demoSeries records, per reportWindow since the run began, the production
// latencies and the backfill events handled. The recorder's lock guards it.
type demoSeries struct {
	start    time.Time
	primary  map[int][]time.Duration
	backfill map[int]int
}

func newDemoSeries(start time.Time) *demoSeries {
	return &demoSeries{start: start, primary: map[int][]time.Duration{}, backfill: map[int]int{}}
}

func (s *demoSeries) window(at time.Time) int { return int(at.Sub(s.start) / reportWindow) }

func (s *demoSeries) addPrimary(at time.Time, lat time.Duration) {
	w := s.window(at)
	s.primary[w] = append(s.primary[w], lat)
}

func (s *demoSeries) addBackfill(at time.Time) { s.backfill[s.window(at)]++ }

// reportRun is one run's columns, aligned on reportData.Seconds.
type reportRun struct {
	Lanes string `json:"lanes"`
	// P50 and P99 are the production latency (ms) of the events handled in
	// each window; null where none was.
	P50 []*float64 `json:"p50_ms"`
	P99 []*float64 `json:"p99_ms"`
	// Backfill is the share of the backfill handled by each window's end
	// (0 to 100).
	Backfill []float64 `json:"backfill_pct"`
}

type reportData struct {
	Seconds []float64   `json:"seconds"` // each window's end, since its run began
	Runs    []reportRun `json:"runs"`
}

func buildReportData(rep demoReport, series []*demoSeries) reportData {
	last := 0
	for _, s := range series {
		for w := range s.primary {
			last = max(last, w)
		}
		for w := range s.backfill {
			last = max(last, w)
		}
	}
	var d reportData
	for w := 0; w <= last; w++ {
		d.Seconds = append(d.Seconds, (time.Duration(w+1) * reportWindow).Seconds())
	}
	for i, r := range rep.Runs {
		s := series[i]
		rr := reportRun{Lanes: r.Lanes}
		done := 0
		for w := 0; w <= last; w++ {
			if lat := s.primary[w]; len(lat) > 0 {
				sum := latency.Summarize(lat)
				rr.P50 = append(rr.P50, &sum.P50)
				rr.P99 = append(rr.P99, &sum.P99)
			} else {
				rr.P50, rr.P99 = append(rr.P50, nil), append(rr.P99, nil)
			}
			done += s.backfill[w]
			pct := 100.0
			if r.Backfill.Sent > 0 {
				pct = latency.Round3(float64(done) * 100 / float64(r.Backfill.Sent))
			}
			rr.Backfill = append(rr.Backfill, pct)
		}
		d.Runs = append(d.Runs, rr)
	}
	return d
}

// checkReportPath fails early, before minutes of demo, when the report
// could not be written.
func checkReportPath(path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("--report %q: directory %s does not exist", path, dir)
	}
	return nil
}

// writeDemoReport writes the report page for rep.
func writeDemoReport(path string, rep demoReport) error {
	off, on := rep.Runs[0], rep.Runs[1]
	series := make([]*demoSeries, len(rep.Runs))
	for i, r := range rep.Runs {
		series[i] = r.series
	}
	rows := [][3]string{
		{"primary latency p50 (ms)", f1(off.Primary.P50), f1(on.Primary.P50)},
		{"primary latency p90 (ms)", f1(off.Primary.P90), f1(on.Primary.P90)},
		{"primary latency p99 (ms)", f1(off.Primary.P99), f1(on.Primary.P99)},
		{"primary latency max (ms)", f1(off.Primary.Max), f1(on.Primary.Max)},
		{"primary events handled", fmt.Sprint(off.Primary.Count), fmt.Sprint(on.Primary.Count)},
		{"backfill sent", fmt.Sprint(off.Backfill.Sent), fmt.Sprint(on.Backfill.Sent)},
		{"backfill handled", fmt.Sprint(off.Backfill.Handled), fmt.Sprint(on.Backfill.Handled)},
		{"backfill drain (s)", f1(off.Backfill.DrainSeconds), f1(on.Backfill.DrainSeconds)},
		{"throughput (events/s)", f1(off.Throughput), f1(on.Throughput)},
	}
	var buf bytes.Buffer
	err := reportTemplate.Execute(&buf, map[string]any{
		"Rep": rep, "Rows": rows, "Data": buildReportData(rep, series),
		"UPlotJS": template.JS(uplot.JS), "UPlotCSS": template.CSS(uplot.CSS), "UPlotVersion": uplot.Version,
		"Generated": time.Now().UTC().Format(time.RFC3339), "Window": reportWindow.String(),
	})
	if err != nil {
		return fmt.Errorf("demo report: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	return nil
}

var reportTemplate = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Laneway demo: priority lanes off vs on</title>
<style>{{.UPlotCSS}}</style>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 24px auto; max-width: 1100px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 16px; margin: 22px 0 6px; }
.sub { color: #656d76; margin-top: 0; }
.ratio { font-size: 18px; margin: 12px 0; } .ratio b { color: #1a7f37; }
table { border-collapse: collapse; min-width: 520px; }
th, td { border-bottom: 1px solid #d0d7de; padding: 5px 12px; text-align: right; font-variant-numeric: tabular-nums; }
th:first-child, td:first-child { text-align: left; } thead th { background: #f6f8fa; }
.off { color: #cf222e; } .on { color: #0969da; }
footer { color: #656d76; font-size: 12px; margin-top: 24px; }
</style>
</head>
<body>
<h1>Production latency while a backfill floods in: lanes <span class="off">off</span> vs <span class="on">on</span></h1>
<p class="sub">laneway demo · broker {{.Rep.Broker}}, database {{.Rep.Database}} · production {{printf "%.0f" .Rep.Rate}}/s, email cost {{.Rep.HandlerCost}} ms, {{.Rep.Concurrency}} handler slot(s) · {{.Generated}}</p>
{{if .Rep.P99Ratio}}<p class="ratio">Primary p99 with lanes off is <b>{{printf "%.1f" .Rep.P99Ratio}}×</b> the p99 with lanes on.</p>{{end}}
<h2>Production latency (commit to handled, p99 per {{.Window}} window, log scale)</h2>
<div id="latency"></div>
<h2>Backfill progress (share of the backfill handled)</h2>
<div id="backfill"></div>
<h2>Summary</h2>
<table id="summary">
<thead><tr><th></th><th class="off">lanes off</th><th class="on">lanes on</th></tr></thead>
<tbody>{{range .Rows}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td><td>{{index . 2}}</td></tr>{{end}}</tbody>
</table>
<footer>Self-contained: the data and the chart library are in this file. Charts by uPlot {{.UPlotVersion}} (MIT licence, © Leon Sorokin).</footer>
<script>{{.UPlotJS}}</script>
<script>
"use strict";
const DATA = {{.Data}};
window.lanewayReport = DATA;
(function () {
  const colors = { off: "#cf222e", on: "#0969da" };
  const width = Math.min(1060, document.body.clientWidth - 10);
  const x = { time: false };
  const secs = { label: "seconds since the run began" };
  const lat = [DATA.seconds].concat(DATA.runs.map((r) => r.p99_ms));
  new uPlot({
    width: width, height: 320,
    scales: { x: x, y: { distr: 3 } },
    axes: [secs, { label: "ms", size: 60 }],
    series: [{ label: "s" }].concat(DATA.runs.map((r) => ({ label: "lanes " + r.lanes + " p99 (ms)", stroke: colors[r.lanes], width: 2, spanGaps: true }))),
  }, lat, document.getElementById("latency"));
  const bf = [DATA.seconds].concat(DATA.runs.map((r) => r.backfill_pct));
  new uPlot({
    width: width, height: 240,
    scales: { x: x, y: { range: [0, 100] } },
    axes: [secs, { label: "%", size: 60 }],
    series: [{ label: "s" }].concat(DATA.runs.map((r) => ({ label: "lanes " + r.lanes + " backfill handled (%)", stroke: colors[r.lanes], width: 2 }))),
  }, bf, document.getElementById("backfill"));
  document.body.dataset.rendered = "1";
})();
</script>
</body>
</html>
`))
