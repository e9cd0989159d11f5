// Command lanebench measures Laneway: production latency while a backfill
// drains (lanes off vs on), each pipeline stage against the raw ceiling of
// the same machine, scale across engine processes, and memory while a
// backlog drains. See docs/BENCHMARKS.md and `lanebench --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/laneway/laneway/cmd/lanebench/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
