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
	"github.com/laneway/laneway/lanewaybroker/brokertest"
)

// A graceful stop deletes the consumer from both lanes' groups when it
// holds nothing. One that handed entries back stays until a survivor has
// taken them over (its engine gone), and is deleted then.
func TestGracefulStopDeletesItsConsumers(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		ctx := context.Background()
		p := testsvc.Prefix()
		cat, bf := p+"customer", p+"customer:backfill"
		var rec recorder
		c1, err := consumer.New(k.b, consumer.Config{
			Group: "Projector", Consumer: "Projector-one", Primary: cat, Backfill: bf, Logger: quietLogger(),
			Handle: func(_ context.Context, m *consumer.Message) error { rec.add(m); return nil },
		})
		require.NoError(t, err)
		require.NoError(t, c1.Start(ctx))
		publish(t, k.b, cat, encode(t, "p1", "k1", 1))
		publish(t, k.b, bf, encode(t, "b1", "k2", 2))
		require.Eventually(t, func() bool { return rec.len() == 2 }, waitFor, time.Millisecond)
		require.Contains(t, consumerNames(t, k.b, cat, "Projector"), "Projector-one")
		require.NoError(t, c1.Stop(ctx))
		assert.NotContains(t, consumerNames(t, k.b, cat, "Projector"), "Projector-one")
		assert.NotContains(t, consumerNames(t, k.b, bf, "Projector"), "Projector-one")

		// A stop that hands an entry back keeps the consumer.
		block := make(chan struct{})
		c2, err := consumer.New(k.b, consumer.Config{
			Group: "Projector", Consumer: "Projector-two", Primary: cat, Backfill: bf, Logger: quietLogger(),
			ShutdownTimeout: 50 * time.Millisecond,
			Handle: func(ctx context.Context, m *consumer.Message) error {
				select {
				case <-block:
				case <-ctx.Done():
				}
				return ctx.Err()
			},
		})
		require.NoError(t, err)
		require.NoError(t, c2.Start(ctx))
		publish(t, k.b, cat, encode(t, "p2", "k3", 3))
		require.Eventually(t, func() bool { return pendingCount(t, k.b, cat, "Projector") == 1 }, waitFor, time.Millisecond)
		require.NoError(t, c2.Stop(ctx))
		close(block)
		assert.Equal(t, int64(1), consumerNames(t, k.b, cat, "Projector")["Projector-two"], "the consumer holding a handed-back entry was deleted")

		var rec3 recorder
		startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Consumer: "Projector-three", Primary: cat, Backfill: bf, ClaimIdle: time.Hour,
			Alive: func(context.Context) (func(string) bool, error) {
				return func(name string) bool { return name == "Projector-three" }, nil
			},
			Handle: func(_ context.Context, m *consumer.Message) error { rec3.add(m); return nil },
		})
		require.Eventually(t, func() bool {
			_, there := consumerNames(t, k.b, cat, "Projector")["Projector-two"]
			return rec3.len() == 1 && !there
		}, waitFor, 10*time.Millisecond)
		assert.Equal(t, []int64{1}, rec3.attempts("p2"), "the handed-back entry's attempt was counted")
	})
}

// Acks that fail while the broker is unreachable are kept and sent once it
// answers, also when the consumer is being stopped: the handled entries
// are not run again.
func TestAcksSurviveBrokerOutage(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		ctx := context.Background()
		p := testsvc.Prefix()
		cat := p + "customer"
		f := brokertest.NewFaulty(k.b)
		var rec recorder
		c, err := consumer.New(f, consumer.Config{
			Group: "Projector", Consumer: "Projector-acks", Primary: cat, Concurrency: 4, Logger: quietLogger(),
			ClaimIdle: 100 * time.Millisecond, // a lost ack would be reclaimed and run again at once
			Handle:    func(_ context.Context, m *consumer.Message) error { rec.add(m); return nil },
		})
		require.NoError(t, err)
		require.NoError(t, c.Start(ctx))
		f.FailAck(errors.New("dial tcp: connection refused"))
		var datas []string
		for i := range 50 {
			datas = append(datas, encode(t, fmt.Sprintf("e%d", i), fmt.Sprintf("k%d", i), i))
		}
		publish(t, k.b, cat, datas...)
		require.Eventually(t, func() bool { return rec.len() == 25 || rec.len() >= 50 }, waitFor, time.Millisecond)
		require.Eventually(t, func() bool { return f.Injected() >= 2 }, waitFor, time.Millisecond)
		f.Heal()
		require.Eventually(t, func() bool { return rec.len() >= 50 && pendingCount(t, k.b, cat, "Projector") == 0 }, waitFor, time.Millisecond)

		// Stop while acks fail: Stop keeps trying until the broker answers.
		f.FailAck(errors.New("dial tcp: connection refused"))
		publish(t, k.b, cat, encode(t, "last", "k", 99))
		require.Eventually(t, func() bool { return rec.len() == 51 }, waitFor, time.Millisecond)
		var stopped atomic.Bool
		go func() {
			time.Sleep(300 * time.Millisecond)
			stopped.Store(true)
			f.Heal()
		}()
		require.NoError(t, c.Stop(ctx))
		require.True(t, stopped.Load(), "Stop returned before the ack could be sent")
		assert.Zero(t, pendingCount(t, k.b, cat, "Projector"), "a handled entry's ack was lost at stop")
		for i := range 50 {
			assert.Len(t, rec.attempts(fmt.Sprintf("e%d", i)), 1, "e%d run again", i)
		}
	})
}

// A Permanent error goes to the DLQ at its first attempt; a handler that
// outlives HandlerTimeout is cancelled and the run is a failed attempt.
func TestPermanentAndTimedOutHandlers(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat := p + "customer"
		var runs atomic.Int64
		c := startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, EnableDLQ: true, MaxRetries: 3, RetryDelay: 10 * time.Millisecond,
			HandlerTimeout: 50 * time.Millisecond,
			Handle: func(ctx context.Context, m *consumer.Message) error {
				runs.Add(1)
				switch m.Envelope.Metadata.Headers.ID {
				case "upcast":
					return consumer.Permanent(errors.New("upcaster: no field tier"))
				case "hang":
					<-ctx.Done()
					return ctx.Err()
				case "deaf":
					time.Sleep(1500 * time.Millisecond) // ignores its context
				case "panic":
					panic("boom")
				}
				return nil
			},
		})
		publish(t, k.b, cat, encode(t, "upcast", "k1", 1), encode(t, "hang", "k2", 2), encode(t, "panic", "k3", 3), encode(t, "ok", "k4", 4))
		require.Eventually(t, func() bool {
			n, err := k.b.Len(context.Background(), cat+":dlq")
			return err == nil && n == 3
		}, waitFor, 5*time.Millisecond)
		byID := map[string]string{}
		for _, d := range readDLQ(t, k.b, cat+":dlq") {
			byID[d.Meta.OriginalID] = d.Meta.FailureReason
			if strings.Contains(d.Meta.FailureReason, "upcaster") {
				assert.Equal(t, int64(1), d.Meta.RetryCount, "a permanent failure used up retries")
			} else {
				assert.Equal(t, int64(3), d.Meta.RetryCount)
			}
		}
		reasons := fmt.Sprint(byID)
		assert.Contains(t, reasons, "handler timed out")
		assert.Contains(t, reasons, "handler panic: boom")
		assert.Contains(t, reasons, "goroutine", "the panic's stack is in the DLQ reason")
		assert.Equal(t, int64(1+3+3+1), runs.Load())
		assert.Equal(t, int64(1), c.Stats().Handled[consumer.Primary])

		// A handler that ignores its context frees its slot anyway.
		publish(t, k.b, cat, encode(t, "deaf", "k5", 5), encode(t, "after", "k6", 6))
		require.Eventually(t, func() bool { return c.Stats().Handled[consumer.Primary] == 2 }, waitFor, 5*time.Millisecond)
	})
}
