package consumer_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

// threadNice is the calling OS thread's nice value (the raw getpriority
// result is 20 - nice).
func threadNice(t *testing.T) int {
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	require.NoError(t, err)
	return 20 - raw
}

// Backfill handlers run on threads BackfillNice levels below the process's
// priority; primary handlers, and whatever runs after a backfill handler
// on other goroutines, keep the process's.
func TestBackfillHandlersRunAtLowerPriority(t *testing.T) {
	t.Parallel()
	base, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	require.NoError(t, err)
	want := map[string]int{"primary": 20 - base, "backfill": min(20-base+3, 19)}
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat, bf := p+"customer", p+"customer:backfill"
		var mu sync.Mutex
		seen := map[string][]int{}
		startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, Block: 50 * time.Millisecond,
			Concurrency: 2, BackfillConcurrency: 1, BackfillNice: 3,
			Handle: func(ctx context.Context, m *consumer.Message) error {
				lane := "primary"
				if m.Lane == consumer.Backfill {
					lane = "backfill"
				}
				n := threadNice(t)
				mu.Lock()
				seen[lane] = append(seen[lane], n)
				mu.Unlock()
				return nil
			},
		})
		for i := range 20 {
			publish(t, k.b, bf, encode(t, "b"+string(rune('a'+i)), "kb", i))
			publish(t, k.b, cat, encode(t, "p"+string(rune('a'+i)), "kp", i))
		}
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen["primary"]) == 20 && len(seen["backfill"]) == 20
		}, waitFor, time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		for lane, ns := range seen {
			for _, n := range ns {
				require.Equal(t, want[lane], n, "%s handler's thread nice value (all: %v)", lane, ns)
			}
		}
	})
}

// A lowered thread outlives the consumer that used it: ending it would kill
// any child process started from it with a parent-death signal. The next
// consumer's backfill worker borrows the same thread.
func TestLoweredThreadsOutliveTheirConsumer(t *testing.T) {
	b, err := redisbroker.OpenEmbedded(t.Context(), redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	tidOnce := func(nice int) int {
		p := testsvc.Prefix()
		cat, bf := p+"customer", p+"customer:backfill"
		tids := make(chan int, 1)
		c := startConsumer(t, b, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, Block: 50 * time.Millisecond, BackfillNice: nice,
			Handle: func(ctx context.Context, m *consumer.Message) error {
				select {
				case tids <- syscall.Gettid():
				default:
				}
				return nil
			},
		})
		publish(t, b, bf, encode(t, "b1", "k", 1))
		var tid int
		select {
		case tid = <-tids:
		case <-time.After(waitFor):
			t.Fatal("the backfill entry was not handled")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, c.Stop(ctx))
		return tid
	}
	// A nice increment no other test uses: its pool holds one thread.
	first := tidOnce(7)
	_, err = os.Stat(fmt.Sprintf("/proc/self/task/%d", first))
	require.NoError(t, err, "the lowered thread ended with its consumer")
	assert.Equal(t, first, tidOnce(7), "the next consumer's backfill worker did not borrow the pooled thread")
}
