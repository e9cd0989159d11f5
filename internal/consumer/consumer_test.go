package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

// The pool of lowered threads (BackfillNice) lives as long as the process.
// The shared Redis Cluster is started by the first test that needs it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/laneway/laneway/internal/consumer.(*lowThread).serve"),
		goleak.Cleanup(func(code int) {
			testsvc.StopCluster()
			os.Exit(code)
		}))
}

const waitFor = 30 * time.Second

type brokerKit struct {
	b   *redisbroker.Broker
	raw *redis.Client // for entries Publish cannot write (no data field); nil on the cluster
	// cluster: b is a real three-master Redis Cluster.
	cluster bool
}

// lanes names the two lanes of a category: on a cluster with a hash tag,
// as the engine names them there, so both lanes are in one slot and one
// blocking read covers them.
func (k brokerKit) lanes(category string) (primary, backfill string) {
	if k.cluster {
		category = "{" + category + "}"
	}
	return category, category + ":backfill"
}

// eachBrokerAndCluster runs fn as eachBroker does, and against a real
// three-master Redis Cluster: the lane guarantees must hold there too.
func eachBrokerAndCluster(t *testing.T, fn func(t *testing.T, k brokerKit)) {
	eachBroker(t, fn)
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		b, err := redisbroker.Open(t.Context(), testsvc.Cluster(t).URL(), redisbroker.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		fn(t, brokerKit{b: b, cluster: true})
	})
}

// eachBroker runs fn against the embedded broker and against real Redis.
func eachBroker(t *testing.T, fn func(t *testing.T, k brokerKit)) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		b, err := redisbroker.OpenEmbedded(t.Context(), redisbroker.EmbeddedOptions{})
		require.NoError(t, err)
		raw := redis.NewClient(&redis.Options{Addr: b.Addr(), DisableIdentity: true})
		t.Cleanup(func() { _ = raw.Close(); _ = b.Close() })
		fn(t, brokerKit{b: b, raw: raw})
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		url := testsvc.RedisURL(t)
		b, err := redisbroker.Open(t.Context(), url, redisbroker.Options{})
		require.NoError(t, err)
		opt, err := redis.ParseURL(url)
		require.NoError(t, err)
		raw := redis.NewClient(opt)
		t.Cleanup(func() { _ = raw.Close(); _ = b.Close() })
		fn(t, brokerKit{b: b, raw: raw})
	})
}

func encode(t testing.TB, id, key string, seq int) string {
	t.Helper()
	b, err := envelope.Encode(envelope.Envelope{
		Data: json.RawMessage(fmt.Sprintf(`{"seq":%d}`, seq)),
		Metadata: envelope.Metadata{
			Headers: envelope.Headers{ID: id, Type: "Test.Thing.v1", Stream: key, Time: "2026-01-01T00:00:00Z"},
			Domain:  envelope.Domain{Class: envelope.ClassEvent, StreamCategory: "thing", Version: 1},
		},
	})
	require.NoError(t, err)
	return string(b)
}

func publish(t testing.TB, b lanewaybroker.Broker, stream string, datas ...string) []string {
	t.Helper()
	var ids []string
	for len(datas) > 0 {
		n := min(len(datas), 1000)
		pubs := make([]lanewaybroker.Publication, n)
		for i := range n {
			pubs[i] = lanewaybroker.Publication{Stream: stream, Data: datas[i]}
		}
		got, err := b.Publish(context.Background(), pubs)
		require.NoError(t, err)
		ids = append(ids, got...)
		datas = datas[n:]
	}
	return ids
}

// recorder keeps the order in which handlers started.
type recorder struct {
	mu    sync.Mutex
	order []string
	att   map[string][]int64
}

func (r *recorder) add(m *consumer.Message) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.att == nil {
		r.att = map[string][]int64{}
	}
	id := m.Envelope.Metadata.Headers.ID
	r.order = append(r.order, id)
	r.att[id] = append(r.att[id], m.Attempt)
	return len(r.order)
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

func (r *recorder) attempts(id string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.att[id])
}

func (r *recorder) index(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Index(r.order, id)
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelError + 10}))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func startConsumer(t *testing.T, b lanewaybroker.Broker, cfg consumer.Config) *consumer.Consumer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	c, err := consumer.New(b, cfg)
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c
}

func pendingCount(t testing.TB, b lanewaybroker.Broker, stream, group string) int {
	t.Helper()
	p, err := b.Pending(context.Background(), lanewaybroker.PendingParams{Stream: stream, Group: group, Count: 100000})
	require.NoError(t, err)
	return len(p)
}

func readDLQ(t testing.TB, b lanewaybroker.Broker, stream string) []dlqEntry {
	t.Helper()
	es, err := b.Range(context.Background(), stream, "-", "+", 0)
	require.NoError(t, err)
	out := make([]dlqEntry, len(es))
	for i, e := range es {
		require.NoError(t, json.Unmarshal([]byte(e.Data), &out[i]), e.Data)
	}
	return out
}

// Retries wait without blocking the lane; after MaxRetries attempts the
// entry goes to the lane's DLQ with complete metadata and is acked.
func TestRetryThenDLQ(t *testing.T) {
	t.Parallel()
	for _, lane := range []consumer.Lane{consumer.Primary, consumer.Backfill} {
		t.Run(lane.String(), func(t *testing.T) {
			t.Parallel()
			eachBroker(t, func(t *testing.T, k brokerKit) {
				p := testsvc.Prefix()
				cat, bf := p+"customer", p+"customer:backfill"
				stream := cat
				if lane == consumer.Backfill {
					stream = bf
				}
				var rec recorder
				var thirdEnded atomic.Int64 // unix ns: the third attempt of X returns
				c := startConsumer(t, k.b, consumer.Config{
					Group: "Projector", Consumer: "me", Primary: cat, Backfill: bf,
					MaxRetries: 3, RetryDelay: 50 * time.Millisecond, EnableDLQ: true,
					Handle: func(ctx context.Context, m *consumer.Message) error {
						rec.add(m)
						if m.Envelope.Metadata.Headers.ID == "X" {
							if m.Attempt == 3 {
								thirdEnded.Store(time.Now().UnixNano())
							}
							return errors.New("boom: projector failed")
						}
						return nil
					},
				})
				ids := publish(t, k.b, stream, encode(t, "X", "kx", 0))
				require.Eventually(t, func() bool { return rec.len() >= 1 }, waitFor, time.Millisecond)
				later := make([]string, 5)
				for i := range later {
					later[i] = encode(t, fmt.Sprintf("Y%d", i), fmt.Sprintf("ky%d", i), i)
				}
				publish(t, k.b, stream, later...)

				var observed time.Time
				require.Eventually(t, func() bool {
					n, err := k.b.Len(context.Background(), stream+":dlq")
					observed = time.Now()
					return err == nil && n == 1 && pendingCount(t, k.b, stream, "Projector") == 0
				}, waitFor, 5*time.Millisecond)

				assert.Equal(t, []int64{1, 2, 3}, rec.attempts("X"))
				order := rec.snapshot()
				second := -1
				for i, x := range order {
					if x == "X" && i > 0 {
						second = i
						break
					}
				}
				require.Positive(t, second)
				for i := range 5 {
					yi := slices.Index(order, fmt.Sprintf("Y%d", i))
					require.GreaterOrEqual(t, yi, 0)
					assert.Less(t, yi, second, "Y%d handled while X waited for its retry", i)
				}
				d := readDLQ(t, k.b, stream+":dlq")
				require.Len(t, d, 1)
				m := d[0].Meta
				assert.Equal(t, stream, m.OriginalStream)
				assert.Equal(t, ids[0], m.OriginalID)
				assert.Equal(t, "Projector", m.ConsumerGroup)
				assert.Equal(t, "me", m.Consumer)
				assert.Equal(t, int64(3), m.RetryCount)
				assert.Equal(t, "boom: projector failed", m.FailureReason)
				failedAt, err := time.Parse(time.RFC3339, m.FailedAt)
				require.NoError(t, err)
				// The failure's time: after the last attempt returned, before
				// the DLQ entry was seen.
				third := time.Unix(0, thirdEnded.Load())
				assert.False(t, failedAt.Before(third), "failed_at %s before the third attempt ended at %s", failedAt, third)
				assert.False(t, failedAt.After(observed), "failed_at %s after the DLQ entry was observed at %s", failedAt, observed)
				other := cat + ":dlq"
				if lane == consumer.Primary {
					other = bf + ":dlq"
				}
				n, err := k.b.Len(context.Background(), other)
				require.NoError(t, err)
				assert.Zero(t, n, "other lane's DLQ untouched")
				st := c.Stats()
				assert.Equal(t, int64(2), st.Retries)
				assert.Equal(t, int64(1), st.DeadLettered)
			})
		})
	}
}

// Undecodable entries go to the DLQ at once, with the reason, are acked and
// never wedge the lane.
func TestGarbageToDLQ(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat, bf := p+"customer", p+"customer:backfill"
		var rec recorder
		c := startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, EnableDLQ: true,
			Handle: func(ctx context.Context, m *consumer.Message) error { rec.add(m); return nil },
		})
		publish(t, k.b, cat, "notjson")
		require.NoError(t, k.raw.XAdd(context.Background(), &redis.XAddArgs{Stream: cat, Values: []string{"other", "x"}}).Err())
		bad := strings.Replace(encode(t, "bad", "k", 1), `"checksum":"`, `"checksum":"00`, 1)
		publish(t, k.b, cat, bad, encode(t, "good", "k", 2))

		require.Eventually(t, func() bool { return rec.index("good") >= 0 }, waitFor, time.Millisecond)
		require.Eventually(t, func() bool { return pendingCount(t, k.b, cat, "Projector") == 0 }, waitFor, 5*time.Millisecond)
		assert.Equal(t, []string{"good"}, rec.snapshot())
		d := readDLQ(t, k.b, cat+":dlq")
		require.Len(t, d, 3)
		for _, e := range d {
			assert.NotEmpty(t, e.Meta.FailureReason)
			assert.Equal(t, int64(1), e.Meta.RetryCount)
			assert.Equal(t, cat, e.Meta.OriginalStream)
		}
		require.NotNil(t, d[0].Raw)
		assert.Equal(t, "notjson", *d[0].Raw)
		assert.Contains(t, d[1].Meta.FailureReason, "no data field")
		assert.Contains(t, d[2].Meta.FailureReason, "checksum")
		assert.Equal(t, int64(3), c.Stats().DecodeErrors)
	})
}

// Guarantee 6: lanes off reads only the primary stream.
func TestLanesOff(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat, bf := p+"customer", p+"customer:backfill"
		publish(t, k.b, bf, encode(t, "b1", "k", 1), encode(t, "b2", "k", 2), encode(t, "b3", "k", 3))
		var rec recorder
		c := startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat,
			Handle: func(ctx context.Context, m *consumer.Message) error { rec.add(m); return nil },
		})
		publish(t, k.b, cat, encode(t, "p1", "k", 1))
		require.Eventually(t, func() bool { return rec.len() == 1 }, waitFor, time.Millisecond)
		require.NoError(t, c.Stop(context.Background()))
		assert.Equal(t, []string{"p1"}, rec.snapshot())
		n, err := k.b.Len(context.Background(), bf)
		require.NoError(t, err)
		assert.Equal(t, int64(3), n)
		g, err := k.b.Groups(context.Background(), bf)
		require.NoError(t, err)
		assert.Empty(t, g, "no group created on the backfill stream")
	})
}

// Entries left pending by a dead consumer are reclaimed with their durable
// attempt counts.
func TestReclaimDeadConsumer(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		ctx := context.Background()
		p := testsvc.Prefix()
		cat := p + "customer"
		require.NoError(t, k.b.EnsureGroup(ctx, cat, "Projector"))
		ids := publish(t, k.b, cat, encode(t, "A", "ka", 1), encode(t, "X", "kx", 2), encode(t, "B", "kb", 3))
		got, err := k.b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: "Projector", Consumer: "dead", Streams: []string{cat}, Count: 10})
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Len(t, got[0].Entries, 3)
		// X was already tried twice by the dead consumer.
		_, err = k.b.Claim(ctx, lanewaybroker.ClaimParams{Stream: cat, Group: "Projector", Consumer: "dead", IDs: []string{ids[1]}, RetryCount: 2, Idle: -1})
		require.NoError(t, err)

		var rec recorder
		startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, ClaimIdle: 200 * time.Millisecond, MaxRetries: 3, EnableDLQ: true,
			RetryDelay: 20 * time.Millisecond,
			Handle: func(ctx context.Context, m *consumer.Message) error {
				rec.add(m)
				if m.Envelope.Metadata.Headers.ID == "X" {
					return errors.New("still failing")
				}
				return nil
			},
		})
		require.Eventually(t, func() bool {
			n, err := k.b.Len(ctx, cat+":dlq")
			return err == nil && n == 1 && pendingCount(t, k.b, cat, "Projector") == 0
		}, waitFor, 5*time.Millisecond)
		assert.Equal(t, []int64{2}, rec.attempts("A"), "second delivery")
		assert.Equal(t, []int64{2}, rec.attempts("B"))
		assert.Equal(t, []int64{3}, rec.attempts("X"), "one more attempt, then the DLQ")
		d := readDLQ(t, k.b, cat+":dlq")
		require.Len(t, d, 1)
		assert.Equal(t, int64(3), d[0].Meta.RetryCount)
		assert.Equal(t, ids[1], d[0].Meta.OriginalID)
	})
}

// A live consumer with a slow handler keeps its entry: a second consumer of
// the same group never runs it.
func TestSlowHandlerKeepsEntry(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat := p + "customer"
		claimIdle := 200 * time.Millisecond
		var starts, done atomic.Int64
		handle := func(ctx context.Context, m *consumer.Message) error {
			starts.Add(1)
			time.Sleep(3 * claimIdle)
			done.Add(1)
			return nil
		}
		startConsumer(t, k.b, consumer.Config{Group: "Projector", Consumer: "a", Primary: cat, ClaimIdle: claimIdle, Handle: handle})
		cb := startConsumer(t, k.b, consumer.Config{Group: "Projector", Consumer: "b", Primary: cat, ClaimIdle: claimIdle, Handle: handle})
		publish(t, k.b, cat, encode(t, "slow", "k", 1))
		require.Eventually(t, func() bool {
			return done.Load() >= 1 && pendingCount(t, k.b, cat, "Projector") == 0
		}, waitFor, 5*time.Millisecond)
		// B kept trying to reclaim while the handler ran.
		require.Eventually(t, func() bool { return cb.Stats().Reads[consumer.ReadClaim] >= 3 }, waitFor, 5*time.Millisecond)
		assert.Equal(t, int64(1), starts.Load(), "handled exactly once")
	})
}

// Graceful Stop during a flood: every entry is either handled and acked or
// left pending with no attempt counted, so the next consumer sees attempt 1.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		ctx := context.Background()
		p := testsvc.Prefix()
		cat := p + "customer"
		const total = 2000
		datas := make([]string, total)
		for i := range datas {
			datas[i] = encode(t, fmt.Sprintf("e%d", i), fmt.Sprintf("k%d", i%50), i)
		}
		publish(t, k.b, cat, datas...)

		var first recorder
		// Handlers past the 300th wait for the stop, so the flood is still
		// on when Stop is called however slowly this goroutine is scheduled.
		stopping := make(chan struct{})
		c1, err := consumer.New(k.b, consumer.Config{
			Group: "Projector", Consumer: "first", Primary: cat, Concurrency: 4, Count: 50, Logger: quietLogger(),
			ClaimIdle: 200 * time.Millisecond,
			Handle: func(ctx context.Context, m *consumer.Message) error {
				if first.add(m) > 300 {
					<-stopping
				}
				time.Sleep(time.Millisecond)
				return nil
			},
		})
		require.NoError(t, err)
		require.NoError(t, c1.Start(ctx))
		require.Eventually(t, func() bool { return first.len() >= 200 }, waitFor, time.Millisecond)
		close(stopping)
		require.NoError(t, c1.Stop(ctx))

		handled := map[string]bool{}
		for _, id := range first.snapshot() {
			handled[id] = true
		}
		pend, err := k.b.Pending(ctx, lanewaybroker.PendingParams{Stream: cat, Group: "Projector", Count: 100000})
		require.NoError(t, err)
		for _, pe := range pend {
			assert.Equal(t, int64(0), pe.Deliveries, "pending entry %s counted as an attempt", pe.ID)
		}
		assert.Less(t, len(handled), total)

		var second recorder
		startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Consumer: "second", Primary: cat, Concurrency: 4, ClaimIdle: 200 * time.Millisecond,
			Handle: func(ctx context.Context, m *consumer.Message) error { second.add(m); return nil },
		})
		require.Eventually(t, func() bool {
			return len(handled)+second.len() >= total && pendingCount(t, k.b, cat, "Projector") == 0
		}, waitFor, 5*time.Millisecond)
		for _, id := range second.snapshot() {
			assert.False(t, handled[id], "%s handled and acked by the first consumer, run again", id)
			assert.Equal(t, []int64{1}, second.attempts(id), "%s: attempt counted across a graceful stop", id)
		}
		assert.Equal(t, total, len(handled)+second.len())
	})
}

// Guarantees 4 and 7: backfill never holds more than BackfillConcurrency
// slots; entries of one aggregate run one at a time, in order.
func TestConcurrencyIsolationAndKeyOrder(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat, bf := p+"customer", p+"customer:backfill"
		const nb, np = 400, 100
		var bdatas, pdatas []string
		for i := range nb {
			bdatas = append(bdatas, encode(t, fmt.Sprintf("b%d", i), fmt.Sprintf("bk%d", i%10), i))
		}
		for i := range np {
			pdatas = append(pdatas, encode(t, fmt.Sprintf("p%d", i), fmt.Sprintf("pk%d", i%10), i))
		}
		publish(t, k.b, bf, bdatas...)
		publish(t, k.b, cat, pdatas...)

		var bfIn, bfMax, total atomic.Int64
		var mu sync.Mutex
		seqs := map[string][]int{}
		running := map[string]bool{}
		var overlap atomic.Int64
		startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, Concurrency: 8, BackfillConcurrency: 2, Count: 50,
			Handle: func(ctx context.Context, m *consumer.Message) error {
				key := m.Envelope.Metadata.Headers.Stream
				var payload struct{ Seq int }
				_ = json.Unmarshal(m.Envelope.Data, &payload)
				mu.Lock()
				if running[key] {
					overlap.Add(1)
				}
				running[key] = true
				seqs[key] = append(seqs[key], payload.Seq)
				mu.Unlock()
				if m.Lane == consumer.Backfill {
					n := bfIn.Add(1)
					for {
						old := bfMax.Load()
						if n <= old || bfMax.CompareAndSwap(old, n) {
							break
						}
					}
					defer bfIn.Add(-1)
				}
				time.Sleep(time.Millisecond)
				mu.Lock()
				running[key] = false
				mu.Unlock()
				total.Add(1)
				return nil
			},
		})
		require.Eventually(t, func() bool { return total.Load() == nb+np }, waitFor, 5*time.Millisecond)
		assert.LessOrEqual(t, bfMax.Load(), int64(2))
		assert.Positive(t, bfMax.Load())
		assert.Zero(t, overlap.Load(), "same aggregate ran concurrently")
		mu.Lock()
		defer mu.Unlock()
		for key, s := range seqs {
			assert.True(t, slices.IsSorted(s), "aggregate %s out of order: %v", key, s)
		}
	})
}

func TestStartFailsFast(t *testing.T) {
	t.Parallel()
	b, err := redisbroker.OpenEmbedded(t.Context(), redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	require.NoError(t, b.Close())
	c, err := consumer.New(b, consumer.Config{Group: "G", Primary: "s", Handle: func(context.Context, *consumer.Message) error { return nil }, Logger: quietLogger()})
	require.NoError(t, err)
	require.Error(t, c.Start(t.Context()))
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	h := func(context.Context, *consumer.Message) error { return nil }
	for _, cfg := range []consumer.Config{
		{Primary: "s", Handle: h},
		{Group: "G", Handle: h},
		{Group: "G", Primary: "s"},
		{Group: "G", Primary: "s", Backfill: "s", Handle: h},
		{Group: "G", Primary: "s", Handle: h, MinBackfillShare: 1},
		{Group: "G", Primary: "s", Handle: h, Concurrency: -1},
	} {
		_, err := consumer.New(&redisbroker.Broker{}, cfg)
		assert.Error(t, err, "%+v", cfg)
	}
}
