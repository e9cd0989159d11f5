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
func TestGatePrimaryBeforeBackfillAcrossConsumers(t *testing.T) {
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		parts := [3]string{p + "part", p + "part.1", p + "part.2"}
		const nBackfill, nPrimary = 60, 35
		var bf, pr []string
		for i := range nBackfill {
			bf = append(bf, encode(t, fmt.Sprintf("b%d", i), fmt.Sprintf("thing-b%d", i), 1))
		}
		for i := range nPrimary {
			pr = append(pr, encode(t, fmt.Sprintf("p%d", i), fmt.Sprintf("thing-p%d", i), 1))
		}
		publish(t, k.b, parts[0]+":backfill", bf...)
		publish(t, k.b, parts[1], pr...)

		rec := &recorder{}
		gate := consumer.NewGate()
		cs := make([]consumer.Config, len(parts))
		for i, s := range parts {
			cs[i] = consumer.Config{Group: "g", Primary: s, Backfill: s + ":backfill", Count: 10, Gate: gate,
				Handle: func(_ context.Context, m *consumer.Message) error { rec.add(m); return nil }}
		}
		// Every member joins (New) before any starts, as in the engine.
		var started []*consumer.Consumer
		for _, cfg := range cs {
			cfg.Logger = quietLogger()
			c, err := consumer.New(k.b, cfg)
			require.NoError(t, err)
			started = append(started, c)
		}
		for _, c := range started {
			require.NoError(t, c.Start(t.Context()))
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = c.Stop(ctx)
			})
		}
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
