package consumer_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/testsvc"
)

// Config.Outage: failures it claims are not attempts. Entries stay pending
// with their delivery count, one handler probes at a time after a backoff,
// nothing reaches the DLQ, and handling resumes when the outage ends. (The
// engine's test with a real PostgreSQL cut off is TestDatabaseOutage.)
func TestOutageIsNotAnAttempt(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat, bf := p+"customer", p+"customer:backfill"
		var down atomic.Bool
		down.Store(true)
		var inflight, maxInflight, outageRuns atomic.Int64
		var rec recorder
		var lb logBuf
		c := startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, EnableDLQ: true,
			MaxRetries: 2, RetryDelay: 10 * time.Millisecond, Concurrency: 4, BackfillConcurrency: 2,
			Logger: slog.New(slog.NewTextHandler(&lb, &slog.HandlerOptions{Level: slog.LevelInfo})),
			Outage: func(error) bool { return down.Load() },
			Handle: func(ctx context.Context, m *consumer.Message) error {
				n := inflight.Add(1)
				defer inflight.Add(-1)
				for {
					cur := maxInflight.Load()
					if n <= cur || maxInflight.CompareAndSwap(cur, n) {
						break
					}
				}
				rec.add(m)
				if down.Load() {
					outageRuns.Add(1)
					return errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
				}
				return nil
			},
		})
		publish(t, k.b, cat, encode(t, "p1", "k1", 1), encode(t, "p2", "k2", 2))
		publish(t, k.b, bf, encode(t, "b1", "k3", 3))
		require.Eventually(t, func() bool { return outageRuns.Load() >= 6 }, waitFor, time.Millisecond)

		assert.Equal(t, int64(1), maxInflight.Load(), "during an outage one handler probes at a time")
		for _, id := range []string{"p1", "p2", "b1"} {
			for _, a := range rec.attempts(id) {
				assert.Equal(t, int64(1), a, "%s: an outage run is not an attempt", id)
			}
		}
		for _, s := range []string{cat, bf} {
			n, err := k.b.Len(context.Background(), s+":dlq")
			require.NoError(t, err)
			assert.Zero(t, n)
		}
		st := c.Stats()
		assert.Zero(t, st.Retries)
		assert.Zero(t, st.Failed[consumer.Primary]+st.Failed[consumer.Backfill])

		down.Store(false)
		require.Eventually(t, func() bool {
			st := c.Stats()
			return st.Handled[consumer.Primary] == 2 && st.Handled[consumer.Backfill] == 1 &&
				pendingCount(t, k.b, cat, "Projector")+pendingCount(t, k.b, bf, "Projector") == 0
		}, waitFor, 5*time.Millisecond)
		logs := lb.String()
		assert.Equal(t, 1, strings.Count(logs, "database unavailable"), logs)
		assert.Equal(t, 1, strings.Count(logs, "database available again"), logs)
		assert.NotContains(t, logs, "handler failed")
	})
}
