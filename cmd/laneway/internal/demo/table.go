package demo

import (
	"fmt"
	"io"
)

func printDemoTable(w io.Writer, rep demoReport) {
	off, on := rep.Runs[0], rep.Runs[1]
	fmt.Fprintf(w, "\nlaneway demo: broker %s, database %s, production %.0f/s, email cost %gms, %d handler slots\n\n",
		rep.Broker, rep.Database, rep.Rate, rep.HandlerCost, rep.Concurrency)
	rows := []struct {
		name    string
		off, on string
	}{
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
	fmt.Fprintf(w, "%-26s %12s %12s\n", "", "lanes off", "lanes on")
	for _, r := range rows {
		fmt.Fprintf(w, "%-26s %12s %12s\n", r.name, r.off, r.on)
	}
	if rep.P99Ratio > 0 {
		fmt.Fprintf(w, "\nprimary p99, lanes off / lanes on: %.1fx\n", rep.P99Ratio)
	}
	for _, r := range rep.Runs {
		if r.SendErrors > 0 {
			fmt.Fprintf(w, "lanes %s: %d commands failed to send (first: %v)\n", r.Lanes, r.SendErrors, r.firstSendError)
		}
	}
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
