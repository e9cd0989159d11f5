package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/laneway/laneway/lanewaystore"
)

// Cleanup deletes old published and abandoned rows in batches of
// CleanupLimit until a batch deletes fewer, and returns the total.
func (r *Relay) Cleanup(ctx context.Context) (int64, error) {
	var total int64
	for {
		now := r.cfg.Now()
		n, err := r.store.CleanupOutbox(ctx, lanewaystore.CleanupParams{
			PublishedBefore: now.Add(-r.cfg.PublishedRetention),
			AbandonedBefore: now.Add(-r.cfg.AbandonedRetention),
			Limit:           r.cfg.CleanupLimit,
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("outbox: cleanup: %w", err)
		}
		if n < int64(r.cfg.CleanupLimit) || ctx.Err() != nil {
			return total, nil //nolint:nilerr // stopping mid-cleanup is no failure; the rest waits for the next run
		}
	}
}

// cleanup is one periodic cleanup run of the relay.
func (r *Relay) cleanup(ctx context.Context) {
	// Housekeeping: on a store with one writer, production writes go first.
	n, err := r.Cleanup(lanewaystore.AsBackfill(ctx))
	switch {
	case err != nil && ctx.Err() == nil:
		r.log.Warn("outbox cleanup failed", "error", err)
	case n > 0:
		r.log.Info("outbox cleanup completed", "deleted", n)
	}
}

type nopObserver struct{}

func (nopObserver) Published(string, int, time.Duration) {}
func (nopObserver) Failed(int)                           {}
func (nopObserver) Abandoned(int)                        {}
