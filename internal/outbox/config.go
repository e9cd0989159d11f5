package outbox

import (
	"context"
	"log/slog"
	"time"

	"github.com/laneway/laneway/internal/instance"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

// Retry configures publish retries.
type Retry struct {
	// MaxAttempts is the number of publish attempts before a row is
	// abandoned. Defaults to 5.
	MaxAttempts int
	// BaseDelay is the delay after the first failure, doubled per failure.
	// Defaults to 1s.
	BaseDelay time.Duration
	// MaxBackoff caps the delay. Defaults to 60s.
	MaxBackoff time.Duration
	// Jitter spreads each delay by up to ±25% so failing rows do not retry
	// in step. Zero value false; the engine passes the configured value
	// (true by default in domain.toml).
	Jitter bool
}

// Observer receives metrics events. Methods are called from the relay's
// goroutines and must not block.
type Observer interface {
	// Published reports n rows appended to stream; latency is the age of
	// the oldest of them (commit to publish).
	Published(stream string, n int, latency time.Duration)
	// Failed reports n rows whose publish failed and will be retried.
	Failed(n int)
	// Abandoned reports n rows that used all their attempts.
	Abandoned(n int)
}

// Config configures a Relay. The zero value of every field means its
// default.
type Config struct {
	// WorkerID names this relay in locked_by. Defaults to
	// "relay-<hostname>-<pid>-<6 hex>".
	WorkerID string
	// BatchSize is the number of rows per claim. Defaults to 500.
	BatchSize int
	// BackfillBatchSize caps the claims of backfill rows (with lanes on)
	// while production rows are being relayed, so a backfill transaction
	// or broker pipeline never holds a production row up for long (see
	// lanes.go). Defaults to 10; never above BatchSize.
	BackfillBatchSize int
	// BackfillQuietBatchSize caps the claims of backfill rows (with lanes
	// on) while production is quiet: the next production row's commit may
	// have to wait for the backfill transaction in flight, so a backfill
	// claim or mark stays short however large BatchSize is (lanes.go).
	// Defaults to 100; never above BatchSize, never below
	// BackfillBatchSize.
	BackfillQuietBatchSize int
	// Lease is how long claimed rows stay leased to this relay. Defaults
	// to 30s.
	Lease time.Duration
	// NoHandOff turns the production hand-off off (handoff.go): every row
	// is claimed. Zero value false: with lanes on, production rows of this
	// process's units of work are handed over in memory.
	NoHandOff bool
	// TickInterval is the first idle poll interval. Defaults to 10ms.
	TickInterval time.Duration
	// MaxTickInterval caps the doubling idle poll interval. Defaults to 1s;
	// at most 25ms on a store that is not a Notifier.
	MaxTickInterval time.Duration
	// Retry configures publish retries.
	Retry Retry
	// CleanupInterval is the time between cleanup runs. Defaults to 1m.
	CleanupInterval time.Duration
	// PublishedRetention is how long published rows are kept. Defaults to
	// 168h.
	PublishedRetention time.Duration
	// AbandonedRetention is how long abandoned rows are kept. Defaults to
	// 720h.
	AbandonedRetention time.Duration
	// CleanupLimit bounds the rows one cleanup statement deletes. Defaults
	// to 5000.
	CleanupLimit int
	// Lanes configures routing. The zero value sends every row to its
	// primary stream.
	Lanes lanes.Config
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock, for tests. Defaults to time.Now.
	Now func() time.Time
	// Observer receives metrics events. Optional.
	Observer Observer
	// MinReplicasAcked, when above 0, marks a batch published only once
	// that many replicas acknowledged it (see replicated.go). The broker
	// must implement lanewaybroker.ReplicatedPublisher. Defaults to 0.
	MinReplicasAcked int
	// ReplicasTimeout bounds the wait for those replicas. Defaults to 1s.
	ReplicasTimeout time.Duration
	// StoppedRelays, when set, names the relays known to have stopped
	// (the engine names the relays of engines whose heartbeat expired).
	// Every StoppedCheckInterval the relay ends their leases, on a store
	// that is a lanewaystore.LeaseEnder, so the rows they held are claimed
	// again then rather than when their leases run out (stopped.go).
	// Optional.
	StoppedRelays func(ctx context.Context) ([]string, error)
	// StoppedCheckInterval is how often StoppedRelays is asked. Defaults
	// to 1s.
	StoppedCheckInterval time.Duration
	// Trace, when set, is called before each publish with the rows and
	// their publications; the function it returns is called with the
	// publish's outcome (tracing spans). Optional.
	Trace func(ctx context.Context, rows []lanewaystore.OutboxRow, pubs []lanewaybroker.Publication) (end func(error))
}

func (c Config) withDefaults(hasNotifier bool) Config {
	if c.WorkerID == "" {
		c.WorkerID = DefaultWorkerID()
	}
	if c.BatchSize <= 0 {
		c.BatchSize = BatchSizeDefault
	}
	if c.BackfillBatchSize <= 0 {
		c.BackfillBatchSize = BackfillBatchSizeDefault
	}
	if c.BackfillQuietBatchSize <= 0 {
		c.BackfillQuietBatchSize = BackfillQuietBatchSizeDefault
	}
	c.BackfillQuietBatchSize = max(c.BackfillQuietBatchSize, c.BackfillBatchSize)
	if c.Lease <= 0 {
		c.Lease = LeaseDefault
	}
	if c.TickInterval <= 0 {
		c.TickInterval = TickIntervalDefault
	}
	if c.MaxTickInterval <= 0 {
		c.MaxTickInterval = MaxTickIntervalDefault
	}
	if !hasNotifier && c.MaxTickInterval > NoNotifierMaxTick {
		c.MaxTickInterval = NoNotifierMaxTick
	}
	if c.TickInterval > c.MaxTickInterval {
		c.TickInterval = c.MaxTickInterval
	}
	if c.Retry.MaxAttempts <= 0 {
		c.Retry.MaxAttempts = MaxAttemptsDefault
	}
	if c.Retry.BaseDelay <= 0 {
		c.Retry.BaseDelay = BaseDelayDefault
	}
	if c.Retry.MaxBackoff <= 0 {
		c.Retry.MaxBackoff = MaxBackoffDefault
	}
	if c.Retry.MaxBackoff < c.Retry.BaseDelay {
		c.Retry.MaxBackoff = c.Retry.BaseDelay
	}
	if c.CleanupInterval <= 0 {
		c.CleanupInterval = CleanupIntervalDefault
	}
	if c.PublishedRetention <= 0 {
		c.PublishedRetention = PublishedRetentionDefault
	}
	if c.AbandonedRetention <= 0 {
		c.AbandonedRetention = AbandonedRetentionDefault
	}
	if c.CleanupLimit <= 0 {
		c.CleanupLimit = CleanupLimitDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.ReplicasTimeout <= 0 {
		c.ReplicasTimeout = ReplicasTimeoutDefault
	}
	if c.StoppedCheckInterval <= 0 {
		c.StoppedCheckInterval = StoppedCheckIntervalDefault
	}
	return c
}

// DefaultWorkerID returns "relay-<hostname>-<pid>-<6 hex>".
func DefaultWorkerID() string {
	return instance.ID("relay")
}

// ConfigFrom maps the [outbox] and [server.priority_lanes] tables of a
// loaded domain.toml to a relay Config for the streams of domain (named as
// server.stream_naming says). Fields the file does not hold (WorkerID,
// Logger, Now, Observer, CleanupLimit) keep their defaults.
func ConfigFrom(c *lanewayconfig.Config, domain string) (Config, error) {
	lc, err := lanes.FromConfig(c, domain)
	if err != nil {
		return Config{}, err
	}
	o := c.Outbox
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
		NoHandOff:        !o.HandOff,
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
		Lanes:              lc,
	}, nil
}
