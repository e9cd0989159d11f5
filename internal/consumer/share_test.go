package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
)

// Guarantee 5: MinBackfillShare gives backfill its share while primary is
// saturated; the default 0 is strict priority.
func TestMinBackfillShare(t *testing.T) {
	t.Parallel()
	for _, share := range []float64{0, 0.5} {
		t.Run(fmt.Sprint(share), func(t *testing.T) {
			t.Parallel()
			eachBroker(t, func(t *testing.T, k brokerKit) {
				p := testsvc.Prefix()
				cat, bf := p+"customer", p+"customer:backfill"
				var pd, bd []string
				for i := range 200 {
					pd = append(pd, encode(t, fmt.Sprintf("p%d", i), "pk", i))
					bd = append(bd, encode(t, fmt.Sprintf("b%d", i), "bk", i))
				}
				publish(t, k.b, cat, pd...)
				publish(t, k.b, bf, bd...)
				var rec recorder
				startConsumer(t, k.b, consumer.Config{
					Group: "Projector", Primary: cat, Backfill: bf, MinBackfillShare: share,
					Handle: func(ctx context.Context, m *consumer.Message) error { rec.add(m); return nil },
				})
				require.Eventually(t, func() bool { return rec.len() >= 100 }, waitFor, time.Millisecond)
				nb := 0
				for _, id := range rec.snapshot()[:100] {
					if strings.HasPrefix(id, "b") {
						nb++
					}
				}
				if share == 0 {
					assert.Zero(t, nb, "strict: no backfill while primary has entries")
				} else {
					assert.InDelta(t, 50, nb, 2, "backfill share of the first 100 handled")
				}
			})
		})
	}
}

// A consumer group that disappears (XGROUP DESTROY) is created again and
// the loop carries on.
func TestGroupRecreated(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat := p + "customer"
		var rec recorder
		startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, Block: 100 * time.Millisecond,
			Handle: func(ctx context.Context, m *consumer.Message) error { rec.add(m); return nil },
		})
		publish(t, k.b, cat, encode(t, "p1", "k", 1))
		require.Eventually(t, func() bool { return rec.len() == 1 }, waitFor, time.Millisecond)
		require.NoError(t, k.raw.XGroupDestroy(context.Background(), cat, "Projector").Err())
		require.NoError(t, k.raw.Del(context.Background(), cat).Err())
		publish(t, k.b, cat, encode(t, "p2", "k", 2))
		require.Eventually(t, func() bool { return rec.index("p2") >= 0 }, waitFor, 5*time.Millisecond)
	})
}

type countingObserver struct {
	reads, handled, retried, dlq atomic.Int64
}

func (o *countingObserver) Read(kind consumer.ReadMode, n int) { o.reads.Add(1) }
func (o *countingObserver) Handled(lane consumer.Lane, outcome string, d time.Duration, m *consumer.Message) {
	o.handled.Add(1)
}
func (o *countingObserver) Retried(lane consumer.Lane)                     { o.retried.Add(1) }
func (o *countingObserver) DeadLettered(lane consumer.Lane, stream string) { o.dlq.Add(1) }

func TestObserverAndLifecycle(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat := p + "customer"
		var obs countingObserver
		c, err := consumer.New(k.b, consumer.Config{
			Group: "Projector", Primary: cat, Observer: &obs, MaxRetries: 2, RetryDelay: 10 * time.Millisecond, EnableDLQ: true,
			Logger: quietLogger(),
			Handle: func(ctx context.Context, m *consumer.Message) error {
				if m.Envelope.Metadata.Headers.ID == "bad" {
					return errors.New("bad")
				}
				return nil
			},
		})
		require.NoError(t, err)
		require.NoError(t, c.Stop(context.Background()), "Stop before Start is a no-op")
		require.NoError(t, c.Start(t.Context()))
		require.Error(t, c.Start(t.Context()), "second Start")
		publish(t, k.b, cat, encode(t, "ok", "k1", 1), encode(t, "bad", "k2", 2))
		require.Eventually(t, func() bool { return obs.dlq.Load() == 1 && obs.handled.Load() == 3 }, waitFor, time.Millisecond)
		require.NoError(t, c.Stop(context.Background()))
		require.NoError(t, c.Stop(context.Background()), "second Stop")
		assert.Equal(t, int64(1), obs.retried.Load())
		assert.Positive(t, obs.reads.Load())
		st := c.Stats()
		assert.Equal(t, int64(1), st.Handled[consumer.Primary])
		assert.Equal(t, int64(2), st.Failed[consumer.Primary])
	})
}

// A handler still running at ShutdownTimeout is cancelled; its entry stays
// pending without the attempt counted (delivery count back to 0).
func TestShutdownTimeoutCancelsHandler(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat := p + "customer"
		var started atomic.Int64
		c, err := consumer.New(k.b, consumer.Config{
			Group: "Projector", Primary: cat, ShutdownTimeout: 100 * time.Millisecond, Logger: quietLogger(),
			Handle: func(ctx context.Context, m *consumer.Message) error {
				started.Add(1)
				<-ctx.Done()
				return ctx.Err()
			},
		})
		require.NoError(t, err)
		require.NoError(t, c.Start(t.Context()))
		publish(t, k.b, cat, encode(t, "stuck", "k", 1))
		require.Eventually(t, func() bool { return started.Load() == 1 }, waitFor, time.Millisecond)
		require.NoError(t, c.Stop(context.Background()))
		pend, err := k.b.Pending(context.Background(), lanewaybroker.PendingParams{Stream: cat, Group: "Projector"})
		require.NoError(t, err)
		require.Len(t, pend, 1)
		assert.Equal(t, int64(0), pend[0].Deliveries)
		assert.Zero(t, c.Stats().Failed[consumer.Primary], "a cancelled handler is not a failure")
	})
}
