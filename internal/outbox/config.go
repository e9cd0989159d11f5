package outbox

import (
	"time"

	"github.com/laneway/laneway/lanewayconfig"
)

// ConfigFrom maps the [outbox] and [server.priority_lanes] tables of a
// loaded domain.toml to a relay Config. Fields the file does not hold
// (WorkerID, Logger, Now, Observer, CleanupLimit) keep their defaults.
func ConfigFrom(c *lanewayconfig.Config) Config {
	o, lanes := c.Outbox, c.Server.PriorityLanes
	base := o.Retry.BaseDelay()
	if base <= 0 && o.Retry.BaseDelaySeconds == 0 {
		// base_delay_seconds = 0 means "retry at once"; Config's zero value
		// means the default, so use the smallest positive delay.
		base = time.Nanosecond
	}
	br := c.Brokers[lanewayconfig.DefaultEntry]
	return Config{
		MinReplicasAcked: br.MinReplicasAcked,
		ReplicasTimeout:  time.Duration(br.MinReplicasTimeoutMS) * time.Millisecond,
		BatchSize:        o.BatchSize,
		Lease:            o.Lease(),
		TickInterval:     o.TickInterval(),
		MaxTickInterval:  o.MaxTickInterval(),
		Retry: Retry{
			MaxAttempts: o.Retry.MaxAttempts,
			BaseDelay:   base,
			MaxBackoff:  o.Retry.MaxBackoff(),
			Jitter:      o.Retry.Jitter,
		},
		CleanupInterval:    o.Cleanup.Interval(),
		PublishedRetention: o.Cleanup.PublishedRetention(),
		AbandonedRetention: o.Cleanup.AbandonedRetention(),
		Lanes: Lanes{
			Enabled:        lanes.Enabled,
			Threshold:      lanes.Threshold,
			BackfillSuffix: lanes.BackfillSuffix,
		},
	}
}
