package consumer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A pause is for the worker's debt, ends at once when the consumer stops
// or (without lending) a primary entry is queued, and happens only while
// production flows.
func TestBackfillYieldPauses(t *testing.T) {
	t.Run("no production, no pause and no debt kept", func(t *testing.T) {
		var c Consumer
		left, paused, _ := c.backfillYield(time.Hour)
		assert.False(t, paused)
		assert.Zero(t, left)
	})
	t.Run("a debt below minYield waits for more", func(t *testing.T) {
		var c Consumer
		c.yield.primaryQueued(time.Now())
		left, paused, _ := c.backfillYield(minYield / 2)
		assert.False(t, paused)
		assert.Equal(t, minYield/2, left)
	})
	t.Run("the full debt is paused", func(t *testing.T) {
		var c Consumer
		c.yield.primaryQueued(time.Now())
		began := time.Now()
		left, paused, _ := c.backfillYield(3 * time.Millisecond)
		assert.True(t, paused)
		assert.Zero(t, left)
		assert.GreaterOrEqual(t, time.Since(began), 3*time.Millisecond, "a timer never fires early")
	})
	// An hour's pause must end long before the hour: the test's deadline
	// is the proof.
	wake := map[string]func(c *Consumer){
		"a primary entry ends the pause (no lending)": func(c *Consumer) {
			c.preempt.Store(true)
			c.yield.primaryQueued(time.Now())
			c.yield.wakeAll()
		},
		"stopping ends the pause": func(c *Consumer) {
			c.halt.Store(true)
			c.yield.wakeAll()
		},
	}
	for name, ends := range wake {
		t.Run(name, func(t *testing.T) {
			var c Consumer
			c.yield.primaryQueued(time.Now())
			type out struct {
				left   time.Duration
				paused bool
			}
			done := make(chan out, 1)
			go func() {
				left, paused, _ := c.backfillYield(time.Hour)
				done <- out{left, paused}
			}()
			time.Sleep(10 * time.Millisecond) // usually in its pause by now; either way it must not sleep the hour
			ends(&c)
			select {
			case o := <-done:
				assert.Positive(t, o.left, "the debt not paused is kept")
			case <-time.After(30 * time.Second):
				require.Fail(t, "the pause did not end")
			}
		})
	}
}
