package lanewayconfig

// The [handlers], [server] and [outbox] tables. Config and the entry types
// ([databases], [brokers]) are in config.go.

// HandlerSettings is one [handlers.NAME] entry.
type HandlerSettings struct {
	// ConsumerGroup is the consumer group the handler reads in, overriding
	// the group the code gives it (laneway.ConsumerGroup, else the handler
	// name); set it to a Protean handler's group (its fully qualified name)
	// to share that handler's work. "" keeps the code's group. Defaults to
	// "".
	ConsumerGroup string `toml:"consumer_group" json:"consumer_group"`
}

// Server is the [server] table.
type Server struct {
	// DefaultSubscriptionType must be "stream", the only kind Laneway
	// implements; it is accepted for compatibility with the seed guide.
	// Defaults to "stream".
	DefaultSubscriptionType string `toml:"default_subscription_type" json:"default_subscription_type"`

	// MessagesPerTick is the COUNT of one read, per lane. Defaults to 100.
	MessagesPerTick int `toml:"messages_per_tick" json:"messages_per_tick"`

	// StreamNaming chooses the stream names of the domain. "laneway" names
	// streams after the category ("customer", "customer:backfill",
	// "customer:command", "customer:dlq"); "protean" prefixes the domain's
	// normalized name the way Protean does ("customers::customer",
	// "customers::customer:backfill", ...), so the engine reads and writes
	// the streams of a Protean service of the same domain (see
	// docs/protean.md). Defaults to "laneway".
	StreamNaming string `toml:"stream_naming" json:"stream_naming"`

	// Partitions is the number of partitions of every category: an event
	// goes to partition FNV-1a(aggregate id) mod Partitions, each partition
	// has its own two lanes ("customer.3", "customer.3:backfill"; partition
	// 0 keeps "customer") and, on a Redis Cluster, its own slot. 1..1024.
	// Change it only after draining the streams (docs/operations.md).
	// Defaults to 1 (the unpartitioned names).
	Partitions int `toml:"partitions" json:"partitions"`

	// CategoryPartitions overrides Partitions per aggregate category
	// ([server.category_partitions] customer = 8). Defaults to none.
	CategoryPartitions map[string]int `toml:"category_partitions" json:"category_partitions,omitempty"`

	// StreamSubscription configures every stream subscription. Defaults to
	// the defaults of its fields.
	StreamSubscription StreamSubscription `toml:"stream_subscription" json:"stream_subscription"`

	// PriorityLanes configures the primary and backfill lanes. Defaults to
	// the defaults of its fields (lanes disabled).
	PriorityLanes PriorityLanes `toml:"priority_lanes" json:"priority_lanes"`

	// HTTP configures the metrics and health endpoints. Defaults to the
	// defaults of its fields.
	HTTP HTTP `toml:"http" json:"http"`
}

// StreamSubscription is the [server.stream_subscription] table.
type StreamSubscription struct {
	// BlockingTimeoutMS bounds one blocking read, in milliseconds; it must
	// be positive (Redis reads BLOCK 0 as "forever"). Defaults to 5000.
	BlockingTimeoutMS int `toml:"blocking_timeout_ms" json:"blocking_timeout_ms"`

	// MaxRetries is the total number of handler attempts before a message
	// goes to the DLQ (or is dropped when EnableDLQ is false); at least 1.
	// Defaults to 3.
	MaxRetries int `toml:"max_retries" json:"max_retries"`

	// RetryDelaySeconds is the wait before a failed message is tried again,
	// without blocking the lane; fractions are allowed. Defaults to 1.
	RetryDelaySeconds float64 `toml:"retry_delay_seconds" json:"retry_delay_seconds"`

	// EnableDLQ sends messages that exhausted MaxRetries to "<stream>:dlq".
	// Defaults to true.
	EnableDLQ bool `toml:"enable_dlq" json:"enable_dlq"`

	// ClaimIdleSeconds is how long an entry stays pending on a consumer that
	// stopped refreshing it before a live consumer claims it; positive.
	// Defaults to 60.
	ClaimIdleSeconds float64 `toml:"claim_idle_seconds" json:"claim_idle_seconds"`

	// Concurrency is the number of handlers in flight per subscription; at
	// least 1. Above 1, order is kept per aggregate. Defaults to 1.
	Concurrency int `toml:"concurrency" json:"concurrency"`

	// DLQRetentionHours trims DLQ entries older than this; 0 keeps them
	// forever. Defaults to 0.
	DLQRetentionHours float64 `toml:"dlq_retention_hours" json:"dlq_retention_hours"`

	// ShutdownTimeoutSeconds bounds how long a graceful shutdown waits for
	// in-flight handlers; positive. Defaults to 30.
	ShutdownTimeoutSeconds float64 `toml:"shutdown_timeout_seconds" json:"shutdown_timeout_seconds"`

	// HandlerTimeoutSeconds bounds one handler run: past it the handler's
	// context is cancelled and the run counts as a failed attempt. 0 turns
	// the bound off. Defaults to 0.
	HandlerTimeoutSeconds float64 `toml:"handler_timeout_seconds" json:"handler_timeout_seconds"`
}

// PriorityLanes is the [server.priority_lanes] table.
type PriorityLanes struct {
	// Enabled routes messages whose priority is below Threshold to the
	// backfill lane "<category>:<BackfillSuffix>". Defaults to false.
	Enabled bool `toml:"enabled" json:"enabled"`

	// Threshold: priority < Threshold goes to backfill (strictly below; an
	// equal priority stays primary). Any integer; floats are rejected.
	// Defaults to 0.
	Threshold int `toml:"threshold" json:"threshold"`

	// BackfillSuffix names the backfill lane. It must be non-empty, free of
	// ':' and whitespace, and not "dlq" (which would collide with the
	// primary DLQ). Defaults to "backfill".
	BackfillSuffix string `toml:"backfill_suffix" json:"backfill_suffix"`

	// Propagate runs each handler under the priority of the message it
	// handles, so work caused by a backfill event stays in the backfill
	// lane; false restores the reference behavior (handlers run at 0).
	// Defaults to true.
	Propagate bool `toml:"propagate" json:"propagate"`

	// BackfillConcurrency caps the handler slots backfill may hold; at least
	// 1 and, when Concurrency > 1, at most Concurrency. Defaults to 1.
	BackfillConcurrency int `toml:"backfill_concurrency" json:"backfill_concurrency"`

	// MinBackfillShare is the share of handled messages guaranteed to
	// backfill while primary is saturated, in [0, 1); 0 is strict priority.
	// Defaults to 0.
	MinBackfillShare float64 `toml:"min_backfill_share" json:"min_backfill_share"`

	// PrimaryReader keeps a blocking read of each primary lane outstanding
	// beside the backfill reads, so a production entry reaches the engine
	// one round trip after it is written whatever the backfill is doing;
	// false checks primary with a non-blocking read between backfill runs
	// instead (at most every 2 ms). Defaults to true.
	PrimaryReader bool `toml:"primary_reader" json:"primary_reader"`

	// BackfillYield makes backfill give way in time while production
	// entries are arriving (one queued within the last second): each
	// backfill handler slot pauses for as long as its handlers used the
	// CPU since its last pause, so a CPU-bound backfill gets about half its
	// time and leaves the CPU free for the production path. A production
	// entry never waits for a pause: at concurrency 1 it takes the pausing
	// slot at once, above it the pause ends. It costs a migration's drain
	// only while production flows. Defaults to true.
	BackfillYield bool `toml:"backfill_yield" json:"backfill_yield"`

	// BackfillShortSlice runs CPU-bound backfill handlers, while
	// production entries are arriving, on the shortest time slice the
	// kernel accepts (100 µs), so that Redis and the production path's
	// threads woken on their core preempt them without waiting for the next
	// scheduler tick. Handlers that wait on I/O keep the default slice: on
	// a short one, a waiting migration drained slower on busy cores. Linux
	// 6.12+ (ignored elsewhere). Defaults to true.
	BackfillShortSlice bool `toml:"backfill_short_slice" json:"backfill_short_slice"`

	// BackfillNice runs backfill handlers on OS threads this many nice
	// levels below the process's priority (up to 19, the lowest), so that
	// on busy cores the kernel serves the production path and the servers
	// beside the engine first. Linux only (ignored elsewhere); 0 to 19; 0
	// turns it off. The lowered threads are kept for the life of the
	// process. Defaults to 0 (off; 10 is the measured setting).
	BackfillNice int `toml:"backfill_nice" json:"backfill_nice"`

	// BackfillRatePerSecond caps how many messages per second each handler
	// takes from each category's backfill lane, shared by every engine of
	// the domain (a limiter in Redis); fractions are allowed. `laneway
	// lanes throttle` overrides it per lane at run time. The primary lane
	// is never limited. 0 is unlimited. Defaults to 0.
	BackfillRatePerSecond float64 `toml:"backfill_rate_per_second" json:"backfill_rate_per_second"`

	// Governor lowers the backfill's slots and rate while production
	// latency is over a target. Defaults to off.
	Governor Governor `toml:"governor" json:"governor"`
}

// Governor is the [server.priority_lanes.governor] table.
type Governor struct {
	// PrimaryLatencyTargetMS is the p99 latency, in milliseconds, the
	// fleet's primary lanes should stay within (entry written to handler
	// done). While the measured p99 is over it, the backfill's allowance is
	// cut (to half, or to target/p99 when smaller, at most to a quarter in
	// one step); while within, it grows back 0.05 at a time, never below
	// 5% (one slot) nor above backfill_concurrency and the backfill rate.
	// 0 turns the governor off. Defaults to 0.
	PrimaryLatencyTargetMS int `toml:"primary_latency_target_ms" json:"primary_latency_target_ms"`
}

// HTTP is the [server.http] table.
type HTTP struct {
	// Listen is the host:port serving /metrics, /healthz and /readyz; ""
	// disables the server. Defaults to "127.0.0.1:9464".
	Listen string `toml:"listen" json:"listen"`
}

// Outbox is the [outbox] table.
type Outbox struct {
	// BatchSize is the number of rows one relay claim takes; at least 1.
	// Defaults to 500.
	BatchSize int `toml:"batch_size" json:"batch_size"`

	// TickIntervalMS is the first poll interval of an idle relay, in
	// milliseconds; at least 1. Defaults to 10.
	TickIntervalMS int `toml:"tick_interval_ms" json:"tick_interval_ms"`

	// MaxTickIntervalMS caps the idle back-off, in milliseconds; at least
	// TickIntervalMS. Defaults to 1000.
	MaxTickIntervalMS int `toml:"max_tick_interval_ms" json:"max_tick_interval_ms"`

	// LeaseSeconds is how long a claimed row stays leased to one relay
	// worker before another may claim it; positive. Defaults to 30.
	LeaseSeconds float64 `toml:"lease_seconds" json:"lease_seconds"`

	// HandOff lets the relay of an engine take the production
	// rows its own app's units of work commit over in memory, leased to it
	// at insert, instead of claiming them (priority lanes on). Defaults to
	// true.
	HandOff bool `toml:"handoff" json:"handoff"`

	// Retry configures publish retries. Defaults to the defaults of its
	// fields.
	Retry OutboxRetry `toml:"retry" json:"retry"`

	// Cleanup configures the deletion of old rows. Defaults to the defaults
	// of its fields.
	Cleanup OutboxCleanup `toml:"cleanup" json:"cleanup"`
}

// OutboxRetry is the [outbox.retry] table.
type OutboxRetry struct {
	// MaxAttempts is the number of publish attempts before a row is
	// abandoned; at least 1. Defaults to 5.
	MaxAttempts int `toml:"max_attempts" json:"max_attempts"`

	// BaseDelaySeconds is the first retry delay, doubled per attempt;
	// at least 0. Defaults to 1.
	BaseDelaySeconds float64 `toml:"base_delay_seconds" json:"base_delay_seconds"`

	// MaxBackoffSeconds caps the retry delay; at least BaseDelaySeconds.
	// Defaults to 60.
	MaxBackoffSeconds float64 `toml:"max_backoff_seconds" json:"max_backoff_seconds"`

	// Jitter randomizes retry delays so failing rows do not retry in step.
	// Defaults to true.
	Jitter bool `toml:"jitter" json:"jitter"`
}

// OutboxCleanup is the [outbox.cleanup] table.
type OutboxCleanup struct {
	// PublishedRetentionHours is how long published rows are kept; positive.
	// Defaults to 168 (7 days).
	PublishedRetentionHours float64 `toml:"published_retention_hours" json:"published_retention_hours"`

	// AbandonedRetentionHours is how long abandoned rows are kept for
	// inspection and retry; positive. Defaults to 720 (30 days).
	AbandonedRetentionHours float64 `toml:"abandoned_retention_hours" json:"abandoned_retention_hours"`

	// IntervalSeconds is the time between two cleanup runs; positive.
	// Defaults to 60.
	IntervalSeconds float64 `toml:"interval_seconds" json:"interval_seconds"`
}
