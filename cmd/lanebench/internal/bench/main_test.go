package bench

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/laneway/laneway/internal/testsvc"
)

// TestMain lets the smoke test's engine processes be this test binary: the
// runner re-executes os.Executable() with the worker subcommand and
// WorkerEnv set, as lanebench re-executes itself.
func TestMain(m *testing.M) {
	if os.Getenv(WorkerEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	code := m.Run()
	testsvc.StopCluster() // started by the cluster test, if it ran
	os.Exit(code)
}
