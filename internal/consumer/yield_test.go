//go:build linux

package consumer_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/testsvc"
)

// threadCPU is the calling thread's id and CPU time (RUSAGE_THREAD).
func threadCPU(t *testing.T) (int, time.Duration) {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(1, &ru))
	return syscall.Gettid(), time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// While production flows (a primary entry was queued within the last
// second), the backfill worker pauses before each backfill message for at
// least as long as the last one used the CPU, so a CPU-bound backfill takes
// at most half of its slot's time. The gaps are lower bounds: a slow
// machine only widens them. Without the yield the next backfill message
// starts right after the last.
func TestBackfillYieldsWhileProductionFlows(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		cat, bf := k.lanes(testsvc.Prefix() + "yield")
		const n = 12
		datas := make([]string, n)
		for i := range datas {
			datas[i] = encode(t, fmt.Sprintf("b%d", i), fmt.Sprintf("c-%d", i), i)
		}
		publish(t, k.b, bf, datas...)
		publish(t, k.b, cat, encode(t, "p0", "c-p", 0))

		type span struct {
			start, end time.Time
			cpu        time.Duration
			oneThread  bool
		}
		var mu sync.Mutex
		var spans []span
		done := make(chan struct{})
		startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, BackfillYield: true, PrimaryReader: true,
			Handle: func(ctx context.Context, m *consumer.Message) error {
				if !strings.HasPrefix(m.Envelope.Metadata.Headers.ID, "b") {
					return nil
				}
				s := span{start: time.Now()}
				tid, cpu := threadCPU(t)
				for time.Since(s.start) < 3*time.Millisecond {
				}
				tid2, cpu2 := threadCPU(t)
				s.end, s.cpu, s.oneThread = time.Now(), cpu2-cpu, tid == tid2
				mu.Lock()
				defer mu.Unlock()
				if spans = append(spans, s); len(spans) == n {
					close(done)
				}
				return nil
			},
		})
		select {
		case <-done:
		case <-time.After(waitFor):
			require.Fail(t, "the backfill was not handled")
		}
		mu.Lock()
		defer mu.Unlock()
		var checked int
		var short []string
		for i := 1; i < n; i++ {
			prev := spans[i-1]
			if !prev.oneThread || prev.cpu < time.Millisecond {
				continue // moved threads or descheduled: its debt is not known here
			}
			checked++
			if gap := spans[i].start.Sub(prev.end); gap < prev.cpu {
				short = append(short, fmt.Sprintf("message %d started %s after message %d ended, which used %s of CPU", i, gap, i-1, prev.cpu))
			}
		}
		require.GreaterOrEqual(t, checked, 4, "too few messages stayed on one thread to check")
		// The engine's meter starts before the handler is called and reads
		// its thread's time: a goroutine moved to another thread in
		// between (a loaded machine, the race detector) leaves that one
		// message without a debt, which this handler cannot see. Without
		// the yield every gap is short.
		assert.LessOrEqual(t, len(short), checked/4, "backfill did not pause for its CPU time:\n%s", strings.Join(short, "\n"))
	})
}
