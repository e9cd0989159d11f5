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
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
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
// 6.12+): set on a locked thread, read back, then the default restored.
// The thread must not end locked: a child process some test started from
// it with a parent-death signal (the test Redis servers) would die with it.
func customSlices() bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return false
	}
	attr.Size = unix.SizeofSchedAttr
	attr.Runtime = shortSlice
	if unix.SchedSetAttr(0, attr, 0) != nil {
		return false
	}
	got, err := unix.SchedGetAttr(0, 0)
	attr.Runtime = 0 // the default
	if unix.SchedSetAttr(0, attr, 0) != nil {
		panic("cannot restore the test thread's default time slice")
	}
	return err == nil && got.Runtime == shortSlice
}

// burn keeps the calling thread on the CPU for d.
func burn(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// While production flows, a CPU-bound backfill handler's successor runs on
// the shortest time slice the kernel accepts (where it accepts one), while
// production handlers, handlers that wait, and every handler with the
// option off or no production entry arriving run on the default.
func TestBackfillShortSliceWhileProductionFlows(t *testing.T) {
	supported := customSlices()
	type seen struct {
		backfill, primary []uint64
	}
	// run drains n backfill entries whose handlers do work, behind one
	// primary entry if withPrimary, and reports each handler's slice.
	run := func(t *testing.T, k brokerKit, on, withPrimary bool, work func()) seen {
		cat, bf := k.lanes(testsvc.Prefix() + "slice")
		const n = 30
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
				if strings.HasPrefix(m.Envelope.Metadata.Headers.ID, "p") {
					mu.Lock()
					defer mu.Unlock()
					s.primary = append(s.primary, slice)
					return nil
				}
				work()
				mu.Lock()
				defer mu.Unlock()
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
	cpu := func() { burn(2 * time.Millisecond) }
	wait := func() { time.Sleep(2 * time.Millisecond) }
	check := func(t *testing.T, k brokerKit) {
		// The default-slice cases first: while a handler is off the CPU,
		// the runtime may run other goroutines on its shortened thread.
		assert.NotContains(t, run(t, k, true, true, wait).backfill, uint64(shortSlice), "handlers that wait")
		assert.NotContains(t, run(t, k, false, true, cpu).backfill, uint64(shortSlice), "the option is off")
		assert.NotContains(t, run(t, k, true, false, cpu).backfill, uint64(shortSlice), "no production entry arrived")
		s := run(t, k, true, true, cpu)
		require.Len(t, s.primary, 1)
		assert.NotEqualValues(t, shortSlice, s.primary[0], "a production handler ran on the short slice")
		if supported {
			// Which handlers count as CPU-bound depends on what else the
			// machine runs, and a handler's goroutine may move to another
			// thread after its slice was set: some, not all.
			assert.Contains(t, s.backfill, uint64(shortSlice), "no CPU-bound backfill handler ran on the short slice while production flowed")
		} else {
			assert.NotContains(t, s.backfill, uint64(shortSlice), "a kernel without custom slices")
		}
	}
	// Not in parallel, not even with each other: another test's shortened
	// thread may run this one's handlers.
	t.Run("embedded", func(t *testing.T) {
		b, err := redisbroker.OpenEmbedded(t.Context(), redisbroker.EmbeddedOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		check(t, brokerKit{b: b})
	})
	t.Run("redis", func(t *testing.T) {
		b, err := redisbroker.Open(t.Context(), testsvc.RedisURL(t), redisbroker.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		check(t, brokerKit{b: b})
	})
}
