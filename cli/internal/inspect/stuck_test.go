package inspect_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/lanewaybroker"
)

// TestDoctorStuckPending: an entry pending in a group whose consumers
// never reclaim (another service's, here Protean-named) for longer than a
// Laneway consumer would leave it is reported with group, id and the fix;
// an entry pending for a short time is not.
func TestDoctorStuckPending(t *testing.T) {
	forBrokers(t, func(t *testing.T, embedded bool) {
		ctx := context.Background()
		x := setup(t, embedded)
		backfill := x.topo.Backfill(x.cat)
		ids := x.publish(t, backfill, 3)
		const foreign = "protean_shop.Billing"
		for _, g := range []string{foreign, "Billing"} {
			require.NoError(t, x.b.EnsureGroup(ctx, backfill, g))
			_, err := x.b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: g, Consumer: "worker-1", Streams: []string{backfill}, Count: 2})
			require.NoError(t, err)
		}
		// The foreign group's first entry has sat there for an hour (as
		// after Protean failed to deserialize it and never acked it).
		_, err := x.b.Claim(ctx, lanewaybroker.ClaimParams{Stream: backfill, Group: foreign, Consumer: "worker-1",
			IDs: ids[:1], RetryCount: 1, Idle: time.Hour})
		require.NoError(t, err)

		minIdle := inspect.StuckIdle(x.cfg)
		require.Equal(t, 2*time.Minute, minIdle, "twice the default claim_idle_seconds")
		stuck, err := x.in.StuckPending(ctx, minIdle)
		require.NoError(t, err)
		require.Len(t, stuck, 1, "%+v", stuck)
		assert.Equal(t, foreign, stuck[0].Group)
		assert.Equal(t, backfill, stuck[0].Stream)
		assert.Equal(t, ids[0], stuck[0].ID)
		assert.Equal(t, "worker-1", stuck[0].Consumer)
		assert.Equal(t, 1, stuck[0].Stuck)
		assert.GreaterOrEqual(t, stuck[0].Idle, time.Hour)

		checks, err := inspect.Doctor(ctx, x.in, inspect.DoctorParams{Config: x.cfg, Sample: 10 * time.Millisecond})
		require.NoError(t, err)
		var c inspect.Check
		for _, ch := range checks {
			if ch.ID == "stuck_pending" {
				c = ch
			}
		}
		require.Equal(t, inspect.Warn, c.Status, "%+v", checks)
		assert.Contains(t, c.Detail, "group "+foreign+" on "+backfill+": entry "+ids[0])
		assert.Contains(t, c.Detail, "retention trimming stops")
		assert.Contains(t, c.Fix, "redis-cli XACK "+backfill+" "+foreign+" "+ids[0])
		assert.Contains(t, c.Fix, "redis-cli XCLAIM "+backfill+" "+foreign+" <live consumer> 120000 "+ids[0])
		assert.False(t, strings.Contains(c.Detail, "group Billing "), "a fresh pending entry is not stuck")

		// Acknowledged as the fix says: the check passes.
		require.NoError(t, x.b.Ack(ctx, []lanewaybroker.AckParams{{Stream: backfill, Group: foreign, IDs: ids[:1]}}))
		stuck, err = x.in.StuckPending(ctx, minIdle)
		require.NoError(t, err)
		assert.Empty(t, stuck)
	})
}
