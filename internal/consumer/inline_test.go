package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

const inlineWait = 30 * time.Second

// inlineBrokers runs fn against the embedded broker and against real Redis.
func inlineBrokers(t *testing.T, fn func(t *testing.T, b lanewaybroker.Broker)) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		b, err := redisbroker.OpenEmbedded(t.Context(), redisbroker.EmbeddedOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		fn(t, b)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		b, err := redisbroker.Open(t.Context(), testsvc.RedisURL(t), redisbroker.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		fn(t, b)
	})
}

// inlineConsumer starts a consumer as the engine runs it by default:
// concurrency 1, lanes on, a primary reader.
func inlineConsumer(t *testing.T, b lanewaybroker.Broker, cfg Config) *Consumer {
	t.Helper()
	cfg.Group, cfg.Concurrency, cfg.PrimaryReader = "Projector", 1, true
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 10}))
	c, err := New(b, cfg)
	require.NoError(t, err)
	require.True(t, c.inlines)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), inlineWait)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c
}

func inlineEntry(t *testing.T, id string) string {
	t.Helper()
	b, err := envelope.Encode(envelope.Envelope{
		Data: json.RawMessage(`{"n":1}`),
		Metadata: envelope.Metadata{
			Headers: envelope.Headers{ID: id, Type: "Test.Thing.v1", Stream: "thing-" + id, Time: "2026-01-01T00:00:00Z"},
			Domain:  envelope.Domain{Class: envelope.ClassEvent, StreamCategory: "thing", Version: 1},
		},
	})
	require.NoError(t, err)
	return string(b)
}

func inlinePublish(t *testing.T, b lanewaybroker.Broker, stream string, ids ...string) {
	t.Helper()
	pubs := make([]lanewaybroker.Publication, len(ids))
	for i, id := range ids {
		pubs[i] = lanewaybroker.Publication{Stream: stream, Data: inlineEntry(t, id)}
	}
	_, err := b.Publish(context.Background(), pubs)
	require.NoError(t, err)
}

func inlinePending(t *testing.T, b lanewaybroker.Broker, stream string) int {
	t.Helper()
	p, err := b.Pending(context.Background(), lanewaybroker.PendingParams{Stream: stream, Group: "Projector", Count: 1000})
	require.NoError(t, err)
	return len(p)
}

// An entry that reaches an idle consumer is started by the primary reader
// itself, and settled (counted, acked) like any other.
func TestInlineStartsIdleEntries(t *testing.T) {
	t.Parallel()
	inlineBrokers(t, func(t *testing.T, b lanewaybroker.Broker) {
		cat := testsvc.Prefix() + "thing"
		var mu sync.Mutex
		var got []Message
		c := inlineConsumer(t, b, Config{Primary: cat, Backfill: cat + ":backfill",
			Handle: func(_ context.Context, m *Message) error {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, *m)
				return nil
			}})
		const n = 10
		for i := range n {
			require.Eventually(t, func() bool { return c.inline.Load() == inlineArmed }, inlineWait, 100*time.Microsecond,
				"an idle consumer arms the inline start")
			inlinePublish(t, b, cat, fmt.Sprintf("e%d", i))
			require.Eventually(t, func() bool { return c.Stats().Handled[Primary] == int64(i+1) }, inlineWait, 100*time.Microsecond)
		}
		assert.Equal(t, int64(n), c.Stats().Inline, "every entry that found the consumer idle started inline")
		mu.Lock()
		for i, m := range got {
			assert.Equal(t, fmt.Sprintf("e%d", i), m.Envelope.Metadata.Headers.ID)
			assert.Equal(t, cat, m.Stream)
			assert.Equal(t, Primary, m.Lane)
			assert.Equal(t, int64(1), m.Attempt)
			assert.NotEmpty(t, m.EntryID)
		}
		mu.Unlock()
		require.Eventually(t, func() bool { return inlinePending(t, b, cat) == 0 }, inlineWait, time.Millisecond,
			"the inline entries are acked")
	})
}

// At concurrency 1 a handler never runs beside another, also while the
// primary reader starts entries inline and backfill entries keep arriving:
// a dispatcher that finds the slot taken starts nothing.
func TestInlineNeverBesideAnotherHandler(t *testing.T) {
	t.Parallel()
	inlineBrokers(t, func(t *testing.T, b lanewaybroker.Broker) {
		cat := testsvc.Prefix() + "thing"
		bf := cat + ":backfill"
		var running, most atomic.Int32
		var mu sync.Mutex
		seen := map[string]int{}
		c := inlineConsumer(t, b, Config{Primary: cat, Backfill: bf,
			Handle: func(_ context.Context, m *Message) error {
				now := running.Add(1)
				defer running.Add(-1)
				for {
					old := most.Load()
					if now <= old || most.CompareAndSwap(old, now) {
						break
					}
				}
				mu.Lock()
				seen[m.Envelope.Metadata.Headers.ID]++
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
				return nil
			}})
		primary, backfill := 0, 0
		for i := range 150 {
			if i%3 == 0 {
				require.Eventually(t, func() bool { return c.inline.Load() == inlineArmed }, inlineWait, 50*time.Microsecond)
			}
			inlinePublish(t, b, cat, fmt.Sprintf("p%d", i))
			primary++
			for j := range rand.IntN(4) {
				time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
				inlinePublish(t, b, bf, fmt.Sprintf("b%d-%d", i, j))
				backfill++
			}
		}
		require.Eventually(t, func() bool {
			st := c.Stats()
			return st.Handled[Primary] == int64(primary) && st.Handled[Backfill] == int64(backfill)
		}, inlineWait, time.Millisecond)
		assert.Equal(t, int32(1), most.Load(), "two handlers ran at once at concurrency 1")
		assert.Positive(t, c.Stats().Inline)
		mu.Lock()
		assert.Len(t, seen, primary+backfill)
		for id, k := range seen {
			assert.Equal(t, 1, k, "%s handled %d times", id, k)
		}
		mu.Unlock()
	})
}

// Stop waits for an inline handler as for a worker's, and the entry is
// acked, not handed back.
func TestInlineRunFinishesAtStop(t *testing.T) {
	t.Parallel()
	inlineBrokers(t, func(t *testing.T, b lanewaybroker.Broker) {
		cat := testsvc.Prefix() + "thing"
		started, release := make(chan struct{}), make(chan struct{})
		c := inlineConsumer(t, b, Config{Primary: cat, Backfill: cat + ":backfill",
			Handle: func(context.Context, *Message) error {
				close(started)
				<-release
				return nil
			}})
		require.Eventually(t, func() bool { return c.inline.Load() == inlineArmed }, inlineWait, 100*time.Microsecond)
		inlinePublish(t, b, cat, "e0")
		<-started
		stopped := make(chan error, 1)
		go func() { stopped <- c.Stop(context.Background()) }()
		select {
		case err := <-stopped:
			t.Fatalf("Stop returned while the inline handler ran: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		close(release)
		require.NoError(t, <-stopped)
		st := c.Stats()
		assert.Equal(t, int64(1), st.Inline)
		assert.Equal(t, int64(1), st.Handled[Primary])
		assert.Zero(t, inlinePending(t, b, cat), "the inline entry is acked at stop")
	})
}

// An inline handler's failure is retried the usual way.
func TestInlineFailureRetries(t *testing.T) {
	t.Parallel()
	inlineBrokers(t, func(t *testing.T, b lanewaybroker.Broker) {
		cat := testsvc.Prefix() + "thing"
		var attempts []int64
		var mu sync.Mutex
		c := inlineConsumer(t, b, Config{Primary: cat, Backfill: cat + ":backfill", RetryDelay: time.Millisecond,
			Handle: func(_ context.Context, m *Message) error {
				mu.Lock()
				defer mu.Unlock()
				attempts = append(attempts, m.Attempt)
				if m.Attempt == 1 {
					return errors.New("first attempt fails")
				}
				return nil
			}})
		require.Eventually(t, func() bool { return c.inline.Load() == inlineArmed }, inlineWait, 100*time.Microsecond)
		inlinePublish(t, b, cat, "e0")
		require.Eventually(t, func() bool { return c.Stats().Handled[Primary] == 1 }, inlineWait, time.Millisecond)
		st := c.Stats()
		assert.Equal(t, int64(1), st.Inline, "the first attempt started inline")
		assert.Equal(t, int64(1), st.Retries)
		mu.Lock()
		assert.Equal(t, []int64{1, 2}, attempts)
		mu.Unlock()
		require.Eventually(t, func() bool { return inlinePending(t, b, cat) == 0 }, inlineWait, time.Millisecond)
	})
}
