package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/testsvc"
)

// Guarantees 2 and 3: primary first, and a primary event published while
// backfill drains waits at most one backfill handler execution.
//
// Bound asserted: between the moment Publish of a primary event returned and
// the start of its handler, at most ONE backfill handler starts (the one
// dispatched right after a probe that just missed the event). The backfill
// handler sleeps backfillHandlerSleep, longer than ProbeInterval (2 ms), so
// the probe always fires between two backfill messages.
func TestPreemption(t *testing.T) {
	t.Parallel()
	eachBrokerAndCluster(t, func(t *testing.T, k brokerKit) {
		cat, bf := backfillBacklog(t, k, 10000)
		var rec recorder
		c := startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf,
			Handle: sleepingOnBackfill(&rec),
		})
		require.Eventually(t, func() bool { return rec.len() >= 40 }, waitFor, time.Millisecond)

		publishPrimaryDuringBackfill(t, k, cat, &rec)
		st := c.Stats()
		assert.Zero(t, st.Reads[consumer.ReadBackfill], "never read backfill alone")
		assert.Positive(t, st.Reads[consumer.ReadProbe])
		// FIFO within the backfill lane at Concurrency 1.
		var bseq []int
		for _, x := range rec.snapshot() {
			if strings.HasPrefix(x, "b") {
				var n int
				_, _ = fmt.Sscanf(x, "b%d", &n)
				bseq = append(bseq, n)
			}
		}
		assert.True(t, slices.IsSorted(bseq), "backfill handled in FIFO order")
	})
}

// backfillHandlerSleep is the backfill handler of the preemption tests. A
// primary entry must start within one of them: long enough that a loaded
// machine's scheduling delays (a read reply, the dispatcher, a worker, each
// waiting for a CPU) do not let a second one start first.
const backfillHandlerSleep = 25 * time.Millisecond

// publishPrimaryDuringBackfill publishes five primary entries one at a
// time while a backfill of 10,000 is being handled and asserts that at most
// one backfill handler started between the publish of each and its start
// (the one already dispatched when it arrived).
func publishPrimaryDuringBackfill(t *testing.T, k brokerKit, cat string, rec *recorder) {
	t.Helper()
	for i := range 5 {
		id := fmt.Sprintf("p%d", i)
		publish(t, k.b, cat, encode(t, id, "p-"+id, i))
		published := rec.len()
		require.Eventually(t, func() bool { return rec.index(id) >= 0 }, waitFor, time.Millisecond)
		order := rec.snapshot()
		at := slices.Index(order, id)
		between := 0
		// at < published: it started before the snapshot was taken, so no
		// backfill started in between.
		for _, x := range order[min(published, at):at] {
			if strings.HasPrefix(x, "b") {
				between++
			}
		}
		assert.LessOrEqual(t, between, 1, "backfill handlers started between publish of %s and its handling", id)
		require.Less(t, at, 10000, "primary %s handled before the backfill lane drained", id)
	}
}

// With the primary reader, primary is never probed: a blocking read of it
// stays outstanding beside the backfill read-ahead, a primary entry waits
// for at most the backfill handler already running, primary entries are
// handled in stream order, and the backfill in FIFO order.
func TestPrimaryReaderPreemption(t *testing.T) {
	t.Parallel()
	eachBrokerAndCluster(t, func(t *testing.T, k brokerKit) {
		cat, bf := backfillBacklog(t, k, 10000)
		var rec recorder
		c := startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, PrimaryReader: true,
			Handle: sleepingOnBackfill(&rec),
		})
		require.Eventually(t, func() bool { return rec.len() >= 40 }, waitFor, time.Millisecond)

		publishPrimaryDuringBackfill(t, k, cat, &rec)
		burst := make([]string, 50)
		for i := range burst {
			burst[i] = encode(t, fmt.Sprintf("q%02d", i), fmt.Sprintf("q-%d", i), i)
		}
		publish(t, k.b, cat, burst...)
		require.Eventually(t, func() bool { return rec.index("q49") >= 0 }, waitFor, time.Millisecond)

		st := c.Stats()
		assert.Zero(t, st.Reads[consumer.ReadProbe], "primary is never probed")
		assert.Zero(t, st.Reads[consumer.ReadBlockingBoth], "primary is read by its own reader alone")
		assert.Positive(t, st.Reads[consumer.ReadBlockingPrimary])
		assert.Positive(t, st.Reads[consumer.ReadBackfill])
		var bseq []int
		var qs []string
		for _, x := range rec.snapshot() {
			switch {
			case strings.HasPrefix(x, "b"):
				var n int
				_, _ = fmt.Sscanf(x, "b%d", &n)
				bseq = append(bseq, n)
			case strings.HasPrefix(x, "q"):
				qs = append(qs, x)
			}
		}
		assert.True(t, slices.IsSorted(bseq), "backfill handled in FIFO order")
		assert.Len(t, qs, 50)
		assert.True(t, slices.IsSorted(qs), "primary handled in stream order")
		assert.Less(t, rec.index("q49"), 10000, "primary handled before the backfill lane drained")
	})
}

// With the primary reader, entries waiting in both lanes when a consumer
// starts are served primary first: backfill waits until a primary read has
// come back with less than a full batch.
func TestPrimaryReaderPrimaryFirstAtStart(t *testing.T) {
	t.Parallel()
	eachBrokerAndCluster(t, func(t *testing.T, k brokerKit) {
		cat, bf := k.lanes(testsvc.Prefix() + "customer")
		var bs, ps []string
		for i := range 30 {
			bs = append(bs, encode(t, fmt.Sprintf("b%02d", i), fmt.Sprintf("b-%d", i), i))
			ps = append(ps, encode(t, fmt.Sprintf("p%02d", i), fmt.Sprintf("p-%d", i), i))
		}
		publish(t, k.b, bf, bs...)
		publish(t, k.b, cat, ps...)
		var rec recorder
		startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, PrimaryReader: true, Count: 10,
			Handle: func(ctx context.Context, m *consumer.Message) error { rec.add(m); return nil },
		})
		require.Eventually(t, func() bool { return rec.len() == 60 }, waitFor, time.Millisecond)
		order := rec.snapshot()
		for i, id := range order[:30] {
			assert.True(t, strings.HasPrefix(id, "p"), "position %d: %s before every primary entry (%v)", i, id, order)
		}
	})
}

// Guarantee 1: an idle consumer blocks on both lanes in one read and wakes
// on a primary entry through that read.
func TestIdlePrimaryThroughBlockingBoth(t *testing.T) {
	t.Parallel()
	eachBrokerAndCluster(t, func(t *testing.T, k brokerKit) {
		cat, bf := k.lanes(testsvc.Prefix() + "customer")
		var rec recorder
		c := startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, Block: 200 * time.Millisecond,
			Handle: func(ctx context.Context, m *consumer.Message) error { rec.add(m); return nil },
		})
		// Idle: at least one blocking read over both lanes has timed out.
		require.Eventually(t, func() bool { return c.Stats().Reads[consumer.ReadBlockingBoth] >= 1 }, waitFor, time.Millisecond)
		publish(t, k.b, cat, encode(t, "p1", "k", 1))
		// Handled is counted when the handler has returned.
		require.Eventually(t, func() bool { return c.Stats().Handled[consumer.Primary] == 1 }, waitFor, time.Millisecond)
		st := c.Stats()
		assert.Equal(t, int64(1), st.Entries[consumer.ReadBlockingBoth], "%+v", st)
		assert.Zero(t, st.Reads[consumer.ReadBackfill])
		assert.Zero(t, st.Reads[consumer.ReadBlockingPrimary])
		assert.Zero(t, st.Entries[consumer.ReadProbe])
		assert.Equal(t, int64(1), st.Handled[consumer.Primary])
	})
}

type dlqEntry struct {
	Meta envelope.DLQMetadata `json:"_dlq_metadata"`
	Raw  *string              `json:"raw"`
}

// backfillBacklog names fresh lanes and writes n entries, each of its own
// aggregate, to the backfill one.
func backfillBacklog(t *testing.T, k brokerKit, n int) (primary, backfill string) {
	t.Helper()
	primary, backfill = k.lanes(testsvc.Prefix() + "customer")
	datas := make([]string, n)
	for i := range datas {
		datas[i] = encode(t, fmt.Sprintf("b%d", i), fmt.Sprintf("c-%d", i), i)
	}
	publish(t, k.b, backfill, datas...)
	return primary, backfill
}

// sleepingOnBackfill records every message and sleeps
// backfillHandlerSleep in each backfill one.
func sleepingOnBackfill(rec *recorder) func(context.Context, *consumer.Message) error {
	return func(_ context.Context, m *consumer.Message) error {
		rec.add(m)
		if m.Lane == consumer.Backfill {
			time.Sleep(backfillHandlerSleep)
		}
		return nil
	}
}

// At concurrency 1 a production entry may take the slot of a backfill
// worker pausing to give way (BackfillYield), but never runs beside a
// backfill handler: one handler at a time, every entry handled once, each
// lane in order. The backfill handlers use the CPU for 2 ms each, so the
// worker pauses between them while production flows, and production
// entries keep arriving during those pauses.
func TestLentSlotOneHandlerAtATime(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		cat, bf := backfillBacklog(t, k, 60)
		var inFlight, most atomic.Int32
		var rec recorder
		startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Primary: cat, Backfill: bf, Concurrency: 1,
			BackfillYield: true, PrimaryReader: true,
			Handle: func(ctx context.Context, m *consumer.Message) error {
				n := inFlight.Add(1)
				defer inFlight.Add(-1)
				for cur := most.Load(); n > cur && !most.CompareAndSwap(cur, n); cur = most.Load() {
				}
				id := m.Envelope.Metadata.Headers.ID
				if strings.HasPrefix(id, "b") {
					for began := time.Now(); time.Since(began) < 2*time.Millisecond; {
					}
				}
				rec.add(m)
				return nil
			},
		})
		const production = 40
		for i := range production {
			publish(t, k.b, cat, encode(t, fmt.Sprintf("p%d", i), fmt.Sprintf("c-p%d", i), i))
			time.Sleep(time.Millisecond)
		}
		require.Eventually(t, func() bool { return rec.len() >= 60+production }, waitFor, time.Millisecond)
		assert.Equal(t, int32(1), most.Load(), "two handlers ran at once at concurrency 1")
		seen := map[string]int{}
		var pseq, bseq []int
		for _, id := range rec.snapshot() {
			seen[id]++
			var n int
			if _, err := fmt.Sscanf(id[1:], "%d", &n); err == nil {
				if id[0] == 'p' {
					pseq = append(pseq, n)
				} else {
					bseq = append(bseq, n)
				}
			}
		}
		for id, n := range seen {
			assert.Equal(t, 1, n, "%s handled %d times", id, n)
		}
		assert.Len(t, seen, 60+production)
		assert.True(t, slices.IsSorted(pseq), "production handled in order: %v", pseq)
		assert.True(t, slices.IsSorted(bseq), "backfill handled in order: %v", bseq)
	})
}
