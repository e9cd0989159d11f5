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
	"github.com/laneway/laneway/internal/tools/syncio"
	"github.com/laneway/laneway/lanewaybroker"
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
		var lb syncio.Buffer
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
		// Until a handler's failure has come back, nothing says the
		// database is down, and entries read together may start together:
		// p1 alone first, and the rule is measured from its second run on
		// (which the consumer starts only once it knows of the outage).
		publish(t, k.b, cat, encode(t, "p1", "k1", 1))
		require.Eventually(t, func() bool { return outageRuns.Load() >= 2 }, waitFor, time.Millisecond)
		maxInflight.Store(0)
		publish(t, k.b, cat, encode(t, "p2", "k2", 2))
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

// A graceful stop during an outage hands the held entries back uncounted,
// like any entry not yet attempted: the next consumer sees attempt 1.
func TestStopDuringOutage(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		cat := testsvc.Prefix() + "customer"
		var runs atomic.Int64
		c, err := consumer.New(k.b, consumer.Config{
			Group: "Projector", Consumer: "first", Primary: cat, EnableDLQ: true, MaxRetries: 1, Logger: quietLogger(),
			Outage: func(error) bool { return true },
			Handle: func(context.Context, *consumer.Message) error {
				runs.Add(1)
				return errors.New("connection refused")
			},
		})
		require.NoError(t, err)
		require.NoError(t, c.Start(t.Context()))
		publish(t, k.b, cat, encode(t, "a", "k1", 1), encode(t, "b", "k2", 2))
		require.Eventually(t, func() bool { return runs.Load() >= 3 }, waitFor, time.Millisecond)
		require.NoError(t, c.Stop(context.Background()))

		pend, err := k.b.Pending(context.Background(), lanewaybroker.PendingParams{Stream: cat, Group: "Projector", Count: 10})
		require.NoError(t, err)
		// "a" at least was read (b too if one read got both: at concurrency
		// 1 nothing more is read while "a" waits for the database).
		require.NotEmpty(t, pend)
		for _, p := range pend {
			assert.Equal(t, int64(0), p.Deliveries, "%s handed back uncounted", p.ID)
		}
		n, err := k.b.Len(context.Background(), cat+":dlq")
		require.NoError(t, err)
		assert.Zero(t, n, "MaxRetries 1, and nothing dead-lettered")

		var next recorder
		startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Consumer: "second", Primary: cat, ClaimIdle: 50 * time.Millisecond,
			Handle: func(ctx context.Context, m *consumer.Message) error { next.add(m); return nil },
		})
		require.Eventually(t, func() bool { return next.len() == 2 }, waitFor, time.Millisecond)
		assert.Equal(t, []int64{1}, next.attempts("a"))
		assert.Equal(t, []int64{1}, next.attempts("b"))
	})
}
