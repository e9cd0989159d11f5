//go:build linux

package consumer_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/testsvc"
)

// shortSlice is the slice the consumer gives a backfill handler while
// production flows: the smallest the kernel accepts.
const shortSlice = 100_000 // ns

// sliceOf is the calling thread's time slice as the kernel reports it.
func sliceOf(t *testing.T) uint64 {
	attr, err := unix.SchedGetAttr(0, 0)
	require.NoError(t, err)
	return attr.Runtime
}

// customSlices says whether this kernel keeps a custom time slice (Linux
// 6.12+): set on a thread of its own, then read back.
func customSlices() bool {
	ok := make(chan bool)
	go func() {
		// Never unlocked: the thread ends with the goroutine, and its
		// slice with it.
		runtime.LockOSThread()
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			ok <- false
			return
		}
		attr.Size = unix.SizeofSchedAttr
		attr.Runtime = shortSlice
		if unix.SchedSetAttr(0, attr, 0) != nil {
			ok <- false
			return
		}
		got, err := unix.SchedGetAttr(0, 0)
		ok <- err == nil && got.Runtime == shortSlice
	}()
	return <-ok
}

// While production flows, backfill handlers run on the shortest time slice
// the kernel accepts (where it accepts one), and production handlers on
// the default; with the option off, or with no production entry arriving,
// backfill handlers run on the default too.
func TestBackfillShortSliceWhileProductionFlows(t *testing.T) {
	t.Parallel()
	supported := customSlices()
	type seen struct {
		backfill, primary []uint64
	}
	run := func(t *testing.T, k brokerKit, on, withPrimary bool) seen {
		cat, bf := k.lanes(testsvc.Prefix() + "slice")
		const n = 20
		datas := make([]string, n)
		for i := range datas {
			datas[i] = encode(t, fmt.Sprintf("b%d", i), fmt.Sprintf("c-%d", i), i)
		}
		publish(t, k.b, bf, datas...)
		if withPrimary {
			publish(t, k.b, cat, encode(t, "p0", "c-p", 0))
		}
		var mu sync.Mutex
		var s seen
		done := make(chan struct{})
		startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, BackfillShortSlice: on, PrimaryReader: true,
			Handle: func(ctx context.Context, m *consumer.Message) error {
				slice := sliceOf(t)
				mu.Lock()
				defer mu.Unlock()
				if strings.HasPrefix(m.Envelope.Metadata.Headers.ID, "p") {
					s.primary = append(s.primary, slice)
					return nil
				}
				if s.backfill = append(s.backfill, slice); len(s.backfill) == n {
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
		return s
	}
	eachBroker(t, func(t *testing.T, k brokerKit) {
		s := run(t, k, true, true)
		require.Len(t, s.primary, 1)
		assert.NotEqualValues(t, shortSlice, s.primary[0], "a production handler ran on the short slice")
		if supported {
			// A handler's goroutine may move to another thread between the
			// slice being set and the handler starting: most, not all.
			short := 0
			for _, v := range s.backfill {
				if v == shortSlice {
					short++
				}
			}
			assert.Greater(t, short, len(s.backfill)/2, "backfill handlers on the short slice while production flows: %v", s.backfill)
		} else {
			assert.NotContains(t, s.backfill, uint64(shortSlice), "a kernel without custom slices")
		}
		assert.NotContains(t, run(t, k, false, true).backfill, uint64(shortSlice), "the option is off")
		assert.NotContains(t, run(t, k, true, false).backfill, uint64(shortSlice), "no production entry arrived")
	})
}
