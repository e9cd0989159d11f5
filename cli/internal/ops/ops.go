// Package ops computes what the operator commands report: the values
// `laneway lanes status`, `doctor`, `dlq` and `outbox` print with --json,
// and that the dashboard serves from its JSON endpoints. Both call the same
// functions, so a page and a terminal never disagree about the data.
package ops

import (
	"time"

	"github.com/laneway/laneway/lanewayconfig"
)

// ActiveIdle is how long a consumer may go without reading before it no
// longer counts as active: an engine's consumer re-reads at least every
// blocking timeout, so three of them (and at least 30s) without a read
// means it is gone.
func ActiveIdle(cfg *lanewayconfig.Config) time.Duration {
	return max(3*cfg.Server.StreamSubscription.BlockingTimeout(), 30*time.Second)
}
