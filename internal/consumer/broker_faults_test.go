package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/internal/tools/syncio"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

func TestStartupLogLine(t *testing.T) {
	t.Parallel()
	b, err := redisbroker.OpenEmbedded(t.Context(), redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	var lb syncio.Buffer
	startConsumer(t, b, consumer.Config{
		Group: "CustomerProjector", Primary: "customer", Backfill: "customer:backfill",
		Logger: slog.New(slog.NewTextHandler(&lb, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Handle: func(context.Context, *consumer.Message) error { return nil },
	})
	assert.Contains(t, lb.String(), `msg="Initialized priority lanes for CustomerProjector: primary='customer', backfill='customer:backfill'"`)
}

// Redis errors: the loop backs off, logs once per state change and resumes
// by itself.
func TestBrokerDownBacksOffAndResumes(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat, bf := p+"customer", p+"customer:backfill"
		f := brokertest.NewFaulty(k.b)
		f.FailReadGroup(errors.New("connection refused"))
		var lb syncio.Buffer
		var rec recorder
		startConsumer(t, f, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, Block: 100 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&lb, &slog.HandlerOptions{Level: slog.LevelInfo})),
			Handle: func(ctx context.Context, m *consumer.Message) error { rec.add(m); return nil },
		})
		require.Eventually(t, func() bool { return f.Injected() >= 3 }, waitFor, time.Millisecond)
		f.Heal()
		publish(t, k.b, cat, encode(t, "p1", "k", 1))
		require.Eventually(t, func() bool { return rec.len() == 1 }, waitFor, time.Millisecond)
		logs := lb.String()
		assert.Equal(t, 1, strings.Count(logs, "broker unavailable"), logs)
		assert.Equal(t, 1, strings.Count(logs, "broker available again"), logs)
	})
}

// A read whose reply is lost (Redis killed after it wrote the delivery,
// a dropped connection) leaves entries pending on a live consumer that never
// saw them. Once the broker answers again they are claimed back and run,
// once each and as their first attempt, long before the idle reclaim.
func TestLostReadReplyIsClaimedBack(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat, bf := p+"customer", p+"customer:backfill"
		f := brokertest.NewFaulty(k.b)
		f.LoseReadReplies(errors.New("read: connection reset by peer"))
		var rec recorder
		startConsumer(t, f, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, Block: 100 * time.Millisecond,
			ClaimIdle: time.Hour, MaxRetries: 1, EnableDLQ: true,
			Handle: func(ctx context.Context, m *consumer.Message) error { rec.add(m); return nil },
		})
		publish(t, k.b, cat, encode(t, "p1", "k", 1), encode(t, "p2", "k", 2))
		publish(t, k.b, bf, encode(t, "b1", "k", 3))
		require.Eventually(t, func() bool { return f.Injected() >= 1 }, waitFor, time.Millisecond, "a reply lost")
		f.Heal()
		require.Eventually(t, func() bool {
			return rec.len() == 3 && pendingCount(t, k.b, cat, "Projector") == 0 && pendingCount(t, k.b, bf, "Projector") == 0
		}, waitFor, time.Millisecond)
		for _, id := range []string{"p1", "p2", "b1"} {
			assert.Equal(t, []int64{1}, rec.attempts(id), id)
		}
		for _, s := range []string{cat, bf} {
			n, err := k.b.Len(t.Context(), s+":dlq")
			require.NoError(t, err)
			assert.Zero(t, n, "nothing dead-lettered on %s", s)
		}
	})
}

// A failed DLQ publish keeps the entry pending; it lands once the broker
// accepts publishes again, and nothing is lost.
func TestDLQPublishFailureKeepsEntry(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat := p + "customer"
		f := brokertest.NewFaulty(k.b)
		f.FailPublish(errors.New("redis down"))
		startConsumer(t, f, consumer.Config{
			Group: "Projector", Primary: cat, EnableDLQ: true, RetryDelay: 20 * time.Millisecond, MaxRetries: 1,
			Handle: func(ctx context.Context, m *consumer.Message) error { return errors.New("nope") },
		})
		publish(t, k.b, cat, encode(t, "x", "k", 1))
		require.Eventually(t, func() bool { return f.Injected() >= 2 }, waitFor, time.Millisecond)
		assert.Equal(t, 1, pendingCount(t, k.b, cat, "Projector"), "still pending while the DLQ is unreachable")
		f.Heal()
		require.Eventually(t, func() bool {
			n, err := k.b.Len(context.Background(), cat+":dlq")
			return err == nil && n == 1 && pendingCount(t, k.b, cat, "Projector") == 0
		}, waitFor, 5*time.Millisecond)
	})
}

// Throughput with a no-op handler against real Redis.
func BenchmarkConsume(b *testing.B) {
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			br, err := redisbroker.Open(b.Context(), testsvc.RedisURL(b), redisbroker.Options{})
			require.NoError(b, err)
			defer br.Close()
			const n = 50000
			datas := make([]string, n)
			for i := range datas {
				datas[i] = encode(b, fmt.Sprintf("e%d", i), fmt.Sprintf("k%d", i%100), i)
			}
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				stream := testsvc.Prefix() + "bench"
				publish(b, br, stream, datas...)
				var mu sync.Mutex
				handled := 0
				done := make(chan struct{})
				c, err := consumer.New(br, consumer.Config{
					Group: "Bench", Primary: stream, Concurrency: conc, Logger: quietLogger(),
					Handle: func(context.Context, *consumer.Message) error {
						mu.Lock()
						handled++
						if handled == n {
							close(done)
						}
						mu.Unlock()
						return nil
					},
				})
				require.NoError(b, err)
				b.StartTimer()
				start := time.Now()
				require.NoError(b, c.Start(context.Background()))
				<-done
				elapsed += time.Since(start)
				b.StopTimer()
				require.NoError(b, c.Stop(context.Background()))
				_ = br.DeleteKey(context.Background(), stream)
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}

var _ lanewaybroker.Broker = (*brokertest.Faulty)(nil)
