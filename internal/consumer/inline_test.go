package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
)

// inlineConsumer starts a consumer as the engine runs it by default:
// concurrency 1, lanes on, a primary reader.
func inlineConsumer(t *testing.T, b lanewaybroker.Broker, cfg consumer.Config) *consumer.Consumer {
	t.Helper()
	cfg.Group, cfg.Concurrency, cfg.PrimaryReader = "Projector", 1, true
	return startConsumer(t, b, cfg)
}

// waitArmed waits until c's dispatcher has armed the inline start.
func waitArmed(t *testing.T, c *consumer.Consumer) {
	t.Helper()
	require.Eventually(t, c.InlineArmed, waitFor, 50*time.Microsecond, "an idle consumer arms the inline start")
}

func publishIDs(t *testing.T, b lanewaybroker.Broker, stream string, ids ...string) {
	t.Helper()
	datas := make([]string, len(ids))
	for i, id := range ids {
		datas[i] = encode(t, id, "thing-"+id, i)
	}
	publish(t, b, stream, datas...)
}

// An entry that reaches an idle consumer is started by the primary reader
// itself, and settled (counted, acked) like any other.
func TestInlineStartsIdleEntries(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		cat := testsvc.Prefix() + "thing"
		var mu sync.Mutex
		var got []consumer.Message
		c := inlineConsumer(t, k.b, consumer.Config{Primary: cat, Backfill: cat + ":backfill",
			Handle: func(_ context.Context, m *consumer.Message) error {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, *m)
				return nil
			}})
		const n = 10
		for i := range n {
			waitArmed(t, c)
			publishIDs(t, k.b, cat, fmt.Sprintf("e%d", i))
			require.Eventually(t, func() bool { return c.Stats().Handled[consumer.Primary] == int64(i+1) }, waitFor, 100*time.Microsecond)
		}
		assert.Equal(t, int64(n), c.Stats().Inline, "every entry that found the consumer idle started inline")
		mu.Lock()
		for i, m := range got {
			assert.Equal(t, fmt.Sprintf("e%d", i), m.Envelope.Metadata.Headers.ID)
			assert.Equal(t, cat, m.Stream)
			assert.Equal(t, consumer.Primary, m.Lane)
			assert.Equal(t, int64(1), m.Attempt)
			assert.NotEmpty(t, m.EntryID)
		}
		mu.Unlock()
		require.Eventually(t, func() bool { return pendingCount(t, k.b, cat, "Projector") == 0 }, waitFor, time.Millisecond,
			"the inline entries are acked")
	})
}

// At concurrency 1 a handler never runs beside another, also while the
// primary reader starts entries inline and backfill entries keep arriving:
// a dispatcher that finds the slot taken starts nothing.
func TestInlineNeverBesideAnotherHandler(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		cat := testsvc.Prefix() + "thing"
		bf := cat + ":backfill"
		var mu sync.Mutex
		running, most := 0, 0
		seen := map[string]int{}
		c := inlineConsumer(t, k.b, consumer.Config{Primary: cat, Backfill: bf,
			Handle: func(_ context.Context, m *consumer.Message) error {
				mu.Lock()
				running++
				most = max(most, running)
				seen[m.Envelope.Metadata.Headers.ID]++
				mu.Unlock()
				defer func() { mu.Lock(); running--; mu.Unlock() }()
				time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
				return nil
			}})
		primary, backfill := 0, 0
		for i := range 150 {
			if i%3 == 0 {
				waitArmed(t, c)
			}
			publishIDs(t, k.b, cat, fmt.Sprintf("p%d", i))
			primary++
			for j := range rand.IntN(4) {
				time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
				publishIDs(t, k.b, bf, fmt.Sprintf("b%d-%d", i, j))
				backfill++
			}
		}
		require.Eventually(t, func() bool {
			st := c.Stats()
			return st.Handled[consumer.Primary] == int64(primary) && st.Handled[consumer.Backfill] == int64(backfill)
		}, waitFor, time.Millisecond)
		assert.Positive(t, c.Stats().Inline)
		mu.Lock()
		assert.Equal(t, 1, most, "two handlers ran at once at concurrency 1")
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
	eachBroker(t, func(t *testing.T, k brokerKit) {
		cat := testsvc.Prefix() + "thing"
		started, release := make(chan struct{}), make(chan struct{})
		c := inlineConsumer(t, k.b, consumer.Config{Primary: cat, Backfill: cat + ":backfill",
			Handle: func(context.Context, *consumer.Message) error {
				close(started)
				<-release
				return nil
			}})
		waitArmed(t, c)
		publishIDs(t, k.b, cat, "e0")
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
		assert.Equal(t, int64(1), st.Handled[consumer.Primary])
		assert.Zero(t, pendingCount(t, k.b, cat, "Projector"), "the inline entry is acked at stop")
	})
}

// An inline handler's failure is retried the usual way.
func TestInlineFailureRetries(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		cat := testsvc.Prefix() + "thing"
		var attempts []int64
		var mu sync.Mutex
		c := inlineConsumer(t, k.b, consumer.Config{Primary: cat, Backfill: cat + ":backfill", RetryDelay: time.Millisecond,
			Handle: func(_ context.Context, m *consumer.Message) error {
				mu.Lock()
				defer mu.Unlock()
				attempts = append(attempts, m.Attempt)
				if m.Attempt == 1 {
					return errors.New("first attempt fails")
				}
				return nil
			}})
		waitArmed(t, c)
		publishIDs(t, k.b, cat, "e0")
		require.Eventually(t, func() bool { return c.Stats().Handled[consumer.Primary] == 1 }, waitFor, time.Millisecond)
		st := c.Stats()
		assert.Equal(t, int64(1), st.Inline, "the first attempt started inline")
		assert.Equal(t, int64(1), st.Retries)
		mu.Lock()
		assert.Equal(t, []int64{1, 2}, attempts)
		mu.Unlock()
		require.Eventually(t, func() bool { return pendingCount(t, k.b, cat, "Projector") == 0 }, waitFor, time.Millisecond)
	})
}
