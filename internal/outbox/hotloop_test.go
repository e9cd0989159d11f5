package outbox_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewaystore"
)

// countingBroker counts Publish calls and the rows they carried, below the
// fault injection, so every attempt the relay makes is seen.
type countingBroker struct {
	lanewaybroker.Broker
	calls atomic.Int64
	mu    sync.Mutex
	rows  map[string]int // attempts per message id
}

func (b *countingBroker) Publish(ctx context.Context, pubs []lanewaybroker.Publication) ([]string, error) {
	b.calls.Add(1)
	b.mu.Lock()
	if b.rows == nil {
		b.rows = map[string]int{}
	}
	for _, p := range pubs {
		var env struct {
			Metadata struct {
				Headers struct {
					ID string `json:"id"`
				} `json:"headers"`
			} `json:"metadata"`
		}
		if jsonUnmarshal([]byte(p.Data), &env) == nil {
			b.rows[env.Metadata.Headers.ID]++
		}
	}
	b.mu.Unlock()
	return b.Broker.Publish(ctx, pubs)
}

func (b *countingBroker) attempts() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.rows))
	for k, v := range b.rows {
		out[k] = v
	}
	return out
}

// Publishes failing for the rows (the broker answers) are no hot loop. With
// every publish failing and the clock standing still, the running relay loops
// many times (woken by Notify and its own back-off) yet attempts each row
// once: the row waits out its next_retry_at. Each step of the clock past a
// retry delay buys exactly one more attempt. The log has one line per state
// change.
func TestBrokerDownAtStartNoHotLoop(t *testing.T) {
	for _, sc := range storeCases() {
		for _, bc := range brokerCases() {
			t.Run(sc.name+"/"+bc.name, func(t *testing.T) {
				ctx := context.Background()
				s := sc.open(t)
				b := bc.open(t)
				cat := testsvc.Prefix() + "customer"
				dropStream(t, b, cat)
				// top counts the relay's attempts; counting, under the
				// fault, what reached the broker.
				counting := &countingBroker{Broker: b}
				f := brokertest.NewFaulty(counting)
				top := &countingBroker{Broker: f}
				f.FailPublish(errors.New("WRONGTYPE Operation against a key holding the wrong kind of value"))

				clk := newClock()
				h := &countHandler{}
				retry := outbox.Retry{MaxAttempts: 10, BaseDelay: time.Minute, MaxBackoff: time.Hour}
				r := outbox.New(s, top, outbox.Config{Now: clk.Now, Logger: slog.New(h), Retry: retry,
					TickInterval: time.Millisecond, MaxTickInterval: time.Millisecond})

				var ids []string
				for range 3 {
					row, _ := newRow(t, cat, 0, "down")
					insert(t, s, row)
					ids = append(ids, row.MessageID)
				}
				require.NoError(t, r.Start(ctx))
				defer stop(t, r)

				// Many loop iterations: the relay's own wake-ups plus a
				// writer hammering Notify.
				loops := func() int64 { w := r.Stats().Wakeups; return w.Notify + w.Poll }
				spin := func(n int64) {
					start := loops()
					require.Eventually(t, func() bool { r.Notify(); return loops()-start >= n }, 30*time.Second, time.Millisecond)
				}
				require.Eventually(t, func() bool { return r.Stats().Failed == 3 }, 30*time.Second, time.Millisecond)
				spin(20)

				assert.EqualValues(t, 1, top.calls.Load(), "one publish attempt for the batch while no retry is due")
				for _, id := range ids {
					assert.Equal(t, 1, top.attempts()[id])
				}
				assert.Zero(t, counting.calls.Load(), "nothing reached the broker")
				now := clk.Now()
				for _, id := range ids {
					row := listAll(t, s)[id]
					assert.Equal(t, lanewaystore.StatusFailed, row.Status)
					assert.Equal(t, 1, row.RetryCount)
					require.NotNil(t, row.NextRetryAt)
					assert.True(t, row.NextRetryAt.After(now), "next_retry_at %v is in the future of %v", row.NextRetryAt, now)
					assert.Contains(t, row.LastError, "WRONGTYPE")
				}

				// Past the first delay (1 minute): one more attempt each,
				// then quiet again for the doubled delay.
				clk.Advance(time.Minute + time.Second)
				require.Eventually(t, func() bool { return r.Stats().Failed == 6 }, 30*time.Second, time.Millisecond)
				spin(20)
				assert.EqualValues(t, 2, top.calls.Load())
				for _, id := range ids {
					assert.Equal(t, 2, top.attempts()[id])
					assert.Equal(t, 2, listAll(t, s)[id].RetryCount)
				}
				clk.Advance(time.Minute + time.Second) // less than the second delay (2 minutes)
				spin(20)
				assert.EqualValues(t, 2, top.calls.Load(), "the second delay has not passed")

				assert.Equal(t, 1, h.count(slog.LevelWarn), "one warning for healthy -> failing")
				assert.Zero(t, h.count(slog.LevelError), "nothing abandoned")
				assert.Zero(t, h.count(slog.LevelInfo))

				// The broker comes back: the rows go out on their next due
				// attempt, with one line for the recovery.
				f.Heal()
				clk.Advance(time.Minute)
				require.Eventually(t, func() bool { return r.Stats().Published == 3 }, 30*time.Second, time.Millisecond)
				assert.EqualValues(t, 3, top.calls.Load())
				for _, id := range ids {
					assert.Equal(t, lanewaystore.StatusPublished, listAll(t, s)[id].Status)
				}
				l, err := b.Len(ctx, cat)
				require.NoError(t, err)
				assert.EqualValues(t, 3, l)
				assert.Equal(t, 1, h.count(slog.LevelWarn))
				// The recovery is logged once the batch's mark has ended,
				// which may be just after the count above moved.
				require.Eventually(t, func() bool { return h.count(slog.LevelInfo) >= 1 }, 30*time.Second, time.Millisecond)
				assert.Equal(t, 1, h.count(slog.LevelInfo), "one info for failing -> healthy")
			})
		}
	}
}

// An unreachable broker (publish refused, ping unanswered) pauses the relay:
// after the publish that found it down, nothing is claimed or published
// until it answers again, the rows keep retry_count 0 and status pending
// however long it lasts, /readyz's flag is set, and the log has one WARN
// and one INFO.
func TestUnreachableBrokerPausesRelay(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	b := openEmbedded(t)
	cat := testsvc.Prefix() + "customer"
	f := brokertest.NewFaulty(b)
	top := &countingBroker{Broker: f}
	down := errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	f.FailPublish(down)
	f.FailPing(down)
	h := &countHandler{}
	r := outbox.New(s, top, outbox.Config{Logger: slog.New(h), Retry: outbox.Retry{MaxAttempts: 1, BaseDelay: time.Millisecond},
		TickInterval: time.Millisecond, MaxTickInterval: time.Millisecond})
	var ids []string
	for range 3 {
		row, _ := newRow(t, cat, 0, "down")
		insert(t, s, row)
		ids = append(ids, row.MessageID)
	}
	require.NoError(t, r.Start(ctx))
	defer stop(t, r)
	require.Eventually(t, r.BrokerUnreachable, 30*time.Second, time.Millisecond)
	// Pings go on; publishes do not.
	pings := f.Injected()
	require.Eventually(t, func() bool { r.Notify(); return f.Injected() >= pings+5 }, 30*time.Second, time.Millisecond)
	assert.EqualValues(t, 1, top.calls.Load(), "published while the broker did not answer")
	for _, id := range ids {
		row := listAll(t, s)[id]
		assert.Equal(t, lanewaystore.StatusPending, row.Status, "MaxAttempts 1 would have abandoned it")
		assert.Zero(t, row.RetryCount)
		assert.Contains(t, row.LastError, "connection refused")
	}
	assert.Zero(t, r.Stats().Abandoned+r.Stats().Failed)

	f.Heal()
	require.Eventually(t, func() bool { return r.Stats().Published == 3 }, 30*time.Second, time.Millisecond)
	assert.False(t, r.BrokerUnreachable())
	assert.Equal(t, 1, h.count(slog.LevelWarn), "one WARN for the outage")
	require.Eventually(t, func() bool { return h.count(slog.LevelInfo) == 1 }, 30*time.Second, time.Millisecond, "one INFO for its end")
	assert.Zero(t, h.count(slog.LevelError))
}
