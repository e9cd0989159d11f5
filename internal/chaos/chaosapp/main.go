// Command chaosapp is `laneway` with the fault suite's domain compiled in;
// the suite (internal/chaos) builds it and runs it as `chaosapp server`.
package main

import (
	"os"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli"
	"github.com/laneway/laneway/internal/chaos/chaosdomain"
)

// bulkCost is the handler's work per bulk event; CHAOS_BULK_COST (a Go
// duration) overrides it.
var bulkCost = 3 * time.Millisecond

func main() {
	if v := os.Getenv("CHAOS_BULK_COST"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			bulkCost = d
		}
	}
	cli.Main(func() (*laneway.Domain, error) {
		return chaosdomain.New(func() int64 { return time.Now().UnixNano() }, bulkCost, os.Getenv("CHAOS_ENGINE"))
	})
}
