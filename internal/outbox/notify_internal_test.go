package outbox

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/lanes"
)

// woken reports, per claim loop, whether a wake-up is pending, and takes
// it.
func woken(r *Relay) map[string]bool {
	out := map[string]bool{}
	for _, w := range r.workers {
		select {
		case <-w.notifyCh:
			out[w.name] = true
		default:
			out[w.name] = false
		}
	}
	return out
}

// A commit wakes the claim loops that claim the priorities it wrote, and
// only those: a production command's commit does not send the backfill
// loop to claim nothing (on SQLite that claim took the one writer from the
// production loop's), nor a migration's commit the production loop.
func TestNotifyPrioritiesWakesTheLoopsThatClaimThem(t *testing.T) {
	r := New(nil, nil, Config{Lanes: lanes.Config{Enabled: true, Threshold: 0}})
	require.Len(t, r.workers, 2)
	for _, c := range []struct {
		lo, hi     int
		prod, back bool
	}{
		{0, 0, true, false},
		{5, 100, true, false},
		{-50, -50, false, true},
		{-100, -1, false, true},
		{-50, 0, true, true},
		{-1, 20, true, true},
	} {
		r.NotifyPriorities(c.lo, c.hi)
		assert.Equal(t, map[string]bool{"production": c.prod, "backfill": c.back}, woken(r), "priorities %d..%d", c.lo, c.hi)
	}

	r.Notify()
	assert.Equal(t, map[string]bool{"production": true, "backfill": true}, woken(r), "Notify wakes every loop")

	off := New(nil, nil, Config{})
	require.Len(t, off.workers, 1)
	for _, p := range []int{-50, 0, 50} {
		off.NotifyPriorities(p, p)
		assert.Equal(t, map[string]bool{"all": true}, woken(off), "lanes off, priority %d", p)
	}
}
