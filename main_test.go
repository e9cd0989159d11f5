package laneway_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/laneway/laneway/internal/testsvc"
)

func TestMain(m *testing.M) {
	// The Redis Cluster the cluster tests share starts on first use and
	// stops after the last test.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testsvc.StopCluster()
		os.Exit(code)
	}))
}
