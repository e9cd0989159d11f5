// Package outbox is the outbox relay: it claims committed outbox rows,
// routes each to its lane's stream, publishes them to the broker in one
// pipelined round trip per batch and marks them published, recording the
// physical stream.
//
// The relay is woken at once when rows commit, never only by a poll: by
// Notify from the unit of work in the same process, and across processes by
// the store's Notifier (PostgreSQL LISTEN/NOTIFY; SQLite's watch of its
// write-ahead log). Polling with an idle back-off is only the fallback; on
// a store without a Notifier the back-off is capped at 25ms so writers in
// other processes are still seen quickly.
//
// Failures never lose rows: a failed publish marks the batch failed with an
// exponential, capped, optionally jittered next_retry_at, and rows are
// abandoned (kept, with last_error) once they have used MaxAttempts publish
// attempts. Every retry key is honoured (unlike the reference, defects G7
// and G8). Delivery is at-least-once: a publish whose reply is lost, or a
// MarkPublished that fails, republishes after the lease expires.
package outbox

import (
	"github.com/laneway/laneway/lanewayconfig"
	"time"
)

// Defaults of Config's fields: the defaults of domain.toml (lanewayconfig),
// so a relay built without a file behaves as one built from a default file.
const (
	BatchSizeDefault         = lanewayconfig.BatchSizeDefault
	BackfillBatchSizeDefault = 10
	// BackfillQuietBatchSizeDefault has no key in domain.toml either.
	BackfillQuietBatchSizeDefault = 100
	LeaseDefault                  = time.Duration(lanewayconfig.LeaseSecondsDefault * float64(time.Second))
	TickIntervalDefault           = lanewayconfig.TickIntervalMSDefault * time.Millisecond
	MaxTickIntervalDefault        = lanewayconfig.MaxTickIntervalMSDefault * time.Millisecond
	MaxAttemptsDefault            = lanewayconfig.RetryMaxAttemptsDefault
	BaseDelayDefault              = time.Duration(lanewayconfig.RetryBaseDelaySecondsDefault * float64(time.Second))
	MaxBackoffDefault             = time.Duration(lanewayconfig.RetryMaxBackoffSecondsDefault * float64(time.Second))
	CleanupIntervalDefault        = time.Duration(lanewayconfig.CleanupIntervalSecondsDefault * float64(time.Second))
	PublishedRetentionDefault     = time.Duration(lanewayconfig.PublishedRetentionHoursDefault * float64(time.Hour))
	AbandonedRetentionDefault     = time.Duration(lanewayconfig.AbandonedRetentionHoursDefault * float64(time.Hour))
	// CleanupLimitDefault has no key in domain.toml.
	CleanupLimitDefault = 5000
	// StoppedCheckIntervalDefault has no key in domain.toml: the check
	// costs a read of the engine's cached liveness, and a statement only
	// when a relay newly stopped.
	StoppedCheckIntervalDefault = time.Second

	// NoNotifierMaxTick caps the idle poll interval on stores that can
	// neither wake the relay across processes nor say whether anything
	// has committed.
	NoNotifierMaxTick = 25 * time.Millisecond

	// errorBackoffCap bounds the loop's back-off while the broker or the
	// database is down.
	errorBackoffCap = 5 * time.Second
	// maxErrorText bounds last_error.
	maxErrorText = 1024
)
