package laneway

import (
	"context"
	"fmt"

	"github.com/laneway/laneway/internal/lanes"
)

// warnLeftovers logs, at start with lanes disabled, every backfill stream
// of the domain that holds entries: nothing reads them in this
// configuration. Another producer on the same streams (a Protean service
// with its lanes on, an earlier run with lanes on) may have put them
// there; they wait until lanes are enabled. A failing length lookup is not
// a reason to refuse to start: the warning is advice, and `laneway doctor`
// reports the same.
func (e *Engine) warnLeftovers(ctx context.Context, topo lanes.Topology) {
	if topo.Lanes.Enabled {
		return
	}
	for _, c := range topo.Categories {
		stream := topo.Backfill(c.Name)
		n, err := e.broker.Len(ctx, stream)
		if err != nil || n == 0 {
			continue
		}
		e.log.Warn(fmt.Sprintf("%s holds %d entries and priority lanes are disabled, so nothing reads them: enable [server.priority_lanes] to handle them", stream, n),
			"stream", stream, "entries", n)
	}
}
