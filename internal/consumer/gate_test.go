package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/testsvc"
)

// TestGatePrimaryBeforeBackfillAcrossConsumers: three consumers of one group
// share a gate, as the partitions of one category do in an engine. One has
// only backfill waiting, one only primary (more than one COUNT of it), one
// nothing. Every primary entry starts before the first backfill entry, and
// everything is handled. Without the gate the backfill consumer starts at
// once, beside the primary one.
//
// On the cluster the three partitions are three slots, as in the engine.
func TestGatePrimaryBeforeBackfillAcrossConsumers(t *testing.T) {
	eachBrokerAndCluster(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		var parts, backfills [3]string
		for i, name := range []string{p + "part", p + "part.1", p + "part.2"} {
			parts[i], backfills[i] = k.lanes(name)
		}
		const nBackfill, nPrimary = 60, 35
		var bf, pr []string
		for i := range nBackfill {
			bf = append(bf, encode(t, fmt.Sprintf("b%d", i), fmt.Sprintf("thing-b%d", i), 1))
		}
		for i := range nPrimary {
			pr = append(pr, encode(t, fmt.Sprintf("p%d", i), fmt.Sprintf("thing-p%d", i), 1))
		}
		publish(t, k.b, backfills[0], bf...)
		publish(t, k.b, parts[1], pr...)

		rec := &recorder{}
		startGated(t, k, parts[:], backfills[:], consumer.Config{Group: "g", Count: 10,
			Handle: func(_ context.Context, m *consumer.Message) error { rec.add(m); return nil }})
		require.Eventually(t, func() bool { return rec.len() >= nBackfill+nPrimary }, waitFor, 5*time.Millisecond)
		order := rec.snapshot()
		assert.Len(t, order, nBackfill+nPrimary)
		firstB, lastP := -1, -1
		for i, id := range order {
			if id[0] == 'p' {
				lastP = i
			} else if firstB < 0 {
				firstB = i
			}
		}
		require.Less(t, lastP, firstB, "order: %v", order)
	})
}

// TestGatePreemptionAcrossConsumers: while one partition's backfill drains
// (10 ms a message), a burst of primary entries arrives in another
// partition. The gate holds the backfill consumer from the burst's first
// start to its last: at most one backfill entry starts in between (one the
// backfill consumer had checked the gate for just before the burst was
// read). Without the gate the two consumers run side by side, and about
// one backfill entry starts per five primary ones.
func TestGatePreemptionAcrossConsumers(t *testing.T) {
	eachBrokerAndCluster(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		var parts, backfills [2]string
		for i, name := range []string{p + "part", p + "part.1"} {
			parts[i], backfills[i] = k.lanes(name)
		}
		const nBackfill, nPrimary = 3000, 40
		bf := make([]string, nBackfill)
		for i := range bf {
			bf[i] = encode(t, fmt.Sprintf("b%d", i), fmt.Sprintf("thing-b%d", i), 1)
		}
		publish(t, k.b, backfills[0], bf...)

		rec := &recorder{}
		startGated(t, k, parts[:], backfills[:], consumer.Config{Group: "g", PrimaryReader: true,
			Handle: func(_ context.Context, m *consumer.Message) error {
				rec.add(m)
				if m.Lane == consumer.Backfill {
					time.Sleep(backfillHandlerSleep)
				} else {
					time.Sleep(2 * time.Millisecond)
				}
				return nil
			}})
		require.Eventually(t, func() bool { return rec.len() >= 20 }, waitFor, time.Millisecond)

		burst := make([]string, nPrimary)
		for i := range burst {
			burst[i] = encode(t, fmt.Sprintf("p%02d", i), fmt.Sprintf("thing-p%d", i), 1)
		}
		publish(t, k.b, parts[1], burst...)
		last := fmt.Sprintf("p%02d", nPrimary-1)
		require.Eventually(t, func() bool { return rec.index(last) >= 0 }, waitFor, time.Millisecond)

		order := rec.snapshot()
		first := rec.index("p00")
		require.GreaterOrEqual(t, first, 0)
		between := 0
		for _, id := range order[first:rec.index(last)] {
			if id[0] == 'b' {
				between++
			}
		}
		assert.LessOrEqual(t, between, 1, "backfill entries started during the primary burst: %v", order[first:rec.index(last)+1])
		assert.Less(t, rec.index(last), nBackfill, "the burst was handled before the backfill drained")
	})
}

// startGated starts one consumer per partition, sharing a gate as the
// partitions of one category do in an engine; cfg gives the rest of each
// member's configuration. Every member joins (New) before any starts, as in
// the engine.
func startGated(t *testing.T, k brokerKit, primaries, backfills []string, cfg consumer.Config) {
	t.Helper()
	gate := consumer.NewGate()
	var members []*consumer.Consumer
	for i := range primaries {
		c := cfg
		c.Primary, c.Backfill, c.Gate, c.Logger = primaries[i], backfills[i], gate, quietLogger()
		m, err := consumer.New(k.b, c)
		require.NoError(t, err)
		members = append(members, m)
	}
	for _, m := range members {
		require.NoError(t, m.Start(t.Context()))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = m.Stop(ctx)
		})
	}
}
