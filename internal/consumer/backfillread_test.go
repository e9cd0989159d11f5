package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
)

// backfillReads records the Count of every read of the backfill lane alone,
// and whether production was flowing (as the test sees it) when it was asked.
type backfillReads struct {
	lanewaybroker.Broker
	backfill string
	flowing  atomic.Bool
	mu       sync.Mutex
	quiet    []int
	during   []int
}

func (r *backfillReads) ReadGroup(ctx context.Context, p lanewaybroker.ReadParams) ([]lanewaybroker.StreamEntries, error) {
	if slices.Equal(p.Streams, []string{r.backfill}) {
		r.mu.Lock()
		if r.flowing.Load() {
			r.during = append(r.during, p.Count)
		} else {
			r.quiet = append(r.quiet, p.Count)
		}
		r.mu.Unlock()
	}
	return r.Broker.ReadGroup(ctx, p)
}

func (r *backfillReads) counts() (quiet, during []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.quiet), slices.Clone(r.during)
}

// While production flows, the backfill lane is read 25 entries at a time
// (a long read holds Redis, and its decode a core, while a production entry
// waits); with production quiet, messages_per_tick at a time.
func TestBackfillReadsSmallWhileProductionFlows(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat, bf := p+"customer", p+"customer:backfill"
		rb := &backfillReads{Broker: k.b, backfill: bf}
		backfill := func(from, n int) {
			datas := make([]string, n)
			for i := range datas {
				datas[i] = encode(t, fmt.Sprintf("b%d", from+i), fmt.Sprintf("k%d", from+i), from+i)
			}
			publish(t, k.b, bf, datas...)
		}
		backfill(0, 300)
		var rec recorder
		startConsumer(t, rb, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, PrimaryReader: true, Count: 100,
			Handle: func(_ context.Context, m *consumer.Message) error { rec.add(m); return nil },
		})
		require.Eventually(t, func() bool { return rec.len() == 300 }, waitFor, time.Millisecond)
		quiet, _ := rb.counts()
		require.NotEmpty(t, quiet)
		for _, n := range quiet {
			assert.Equal(t, 100, n, "production quiet: messages_per_tick per read")
		}

		// Production flows: a primary entry every 20 ms until the end.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				publish(t, k.b, cat, encode(t, fmt.Sprintf("p%d", i), fmt.Sprintf("pk%d", i), i))
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		defer func() { close(stop); wg.Wait() }()
		require.Eventually(t, func() bool { return rec.index("p0") >= 0 }, waitFor, time.Millisecond)
		rb.flowing.Store(true)
		backfill(300, 300)
		require.Eventually(t, func() bool { return rec.index("b599") >= 0 }, waitFor, time.Millisecond)
		_, during := rb.counts()
		require.NotEmpty(t, during)
		for _, n := range during {
			assert.Equal(t, 25, n, "production flowing: 25 per read")
		}
	})
}
