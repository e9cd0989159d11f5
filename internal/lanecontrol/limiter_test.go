package lanecontrol

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
)

// Every rate keeps granting: with a burst of 1, rates whose interval is not
// exact in binary (9/s) were once refused forever by a rounding error.
func TestLimiterKeepsGranting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, rate := range []float64{4, 9, 18, 0.7} {
		c := New(Params{Client: redisClient(t), Domain: "Lim" + testsvc.RandomSuffix(4), Engine: "e", RatePerSecond: rate})
		ctl := c.Consumer("H", "c", "c:backfill", 1)
		require.NoError(t, c.Start(ctx))
		got := 0
		for deadline := time.Now().Add(30 * time.Second); got < 3 && time.Now().Before(deadline); {
			n, wait := ctl.TakeBackfill(ctx, 1)
			got += n
			if n == 0 {
				require.Positive(t, wait)
				time.Sleep(wait)
			}
		}
		c.Stop()
		assert.Equal(t, 3, got, "rate %v", rate)
	}
}
