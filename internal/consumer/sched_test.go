package consumer

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestBackfillCap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ conc, bf, want int }{
		{1, 1, 1}, {1, 5, 1}, {8, 2, 2}, {8, 8, 7}, {8, 20, 7}, {2, 1, 1}, {2, 2, 1},
	} {
		require.Equal(t, tc.want, backfillCap(tc.conc, tc.bf), "conc=%d bf=%d", tc.conc, tc.bf)
	}
}

func TestSlotsCanStart(t *testing.T) {
	t.Parallel()
	s := slots{Concurrency: 4, BackfillCap: 2, BackfillInflight: 2, PrimaryInflight: 1}
	require.True(t, s.canStart(Primary))
	require.False(t, s.canStart(Backfill), "backfill at its cap")
	s.PrimaryInflight = 2
	require.False(t, s.canStart(Primary), "all slots taken")
}

// Property: with BackfillCap < Concurrency, however the scheduler grants
// slots through canStart, backfill never exceeds its cap and a primary slot
// is always left while backfill alone runs.
func TestSlotsProperty(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		conc := rapid.IntRange(1, 16).Draw(rt, "conc")
		bfc := rapid.IntRange(1, 20).Draw(rt, "bfc")
		s := slots{Concurrency: conc, BackfillCap: backfillCap(conc, bfc)}
		for range rapid.IntRange(0, 200).Draw(rt, "steps") {
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0:
				if s.canStart(Primary) {
					s.PrimaryInflight++
				}
			case 1:
				if s.canStart(Backfill) {
					s.BackfillInflight++
				}
			case 2:
				if s.PrimaryInflight > 0 {
					s.PrimaryInflight--
				}
			case 3:
				if s.BackfillInflight > s.Lent {
					s.BackfillInflight--
				}
			case 4: // a pausing backfill worker's slot lent to primary (lend.go)
				if conc == 1 && s.BackfillInflight == 1 && s.Lent == 0 {
					s.Lent++
				}
			case 5: // the lent run comes back
				if s.Lent > 0 {
					s.Lent--
					s.BackfillInflight--
				}
			}
			if s.BackfillInflight > s.BackfillCap || s.free() < 0 {
				rt.Fatalf("bad slots %+v", s)
			}
			if s.PrimaryInflight+s.BackfillInflight-s.Lent > conc {
				rt.Fatalf("more handlers than slots: %+v", s)
			}
			if conc > 1 && s.PrimaryInflight == 0 && !s.canStart(Primary) {
				rt.Fatalf("primary has no slot: %+v", s)
			}
		}
	})
}

func TestPickStrictPriority(t *testing.T) {
	t.Parallel()
	var c shareCredit
	for range 100 {
		l, ok := c.pick(true, true)
		require.True(t, ok)
		require.Equal(t, Primary, l)
	}
	l, ok := c.pick(false, true)
	require.True(t, ok)
	require.Equal(t, Backfill, l)
	_, ok = c.pick(false, false)
	require.False(t, ok)
}

// Property: with both lanes always ready, backfill gets MinBackfillShare of
// the started messages, within one message.
func TestPickShare(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		share := rapid.Float64Range(0.01, 0.9).Draw(rt, "share")
		n := rapid.IntRange(50, 2000).Draw(rt, "n")
		c := shareCredit{Share: share}
		bf := 0
		for range n {
			if l, _ := c.pick(true, true); l == Backfill {
				bf++
			}
		}
		if math.Abs(float64(bf)-share*float64(n)) > 2 {
			rt.Fatalf("share %v over %d: backfill got %d", share, n, bf)
		}
	})
}

func TestPlanRead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		s      slots
		qp, qb int
		lanes  bool
		want   readPlan
	}{
		{"c1 idle lanes on", slots{Concurrency: 1, BackfillCap: 1}, 0, 0, true, readPlan{ReadBlockingBoth, 100}},
		{"c1 idle lanes off", slots{Concurrency: 1, BackfillCap: 1}, 0, 0, false, readPlan{ReadBlockingPrimary, 100}},
		{"c1 primary busy: read ahead", slots{Concurrency: 1, BackfillCap: 1, PrimaryInflight: 1}, 0, 0, true, readPlan{ReadBlockingBoth, 100}},
		{"c1 primary queued: read ahead", slots{Concurrency: 1, BackfillCap: 1}, 100, 0, true, readPlan{ReadBlockingBoth, 100}},
		{"c1 lanes off busy: read ahead", slots{Concurrency: 1, BackfillCap: 1, PrimaryInflight: 1}, 5, 0, false, readPlan{ReadBlockingPrimary, 100}},
		{"c1 read-ahead above a batch", slots{Concurrency: 1, BackfillCap: 1, PrimaryInflight: 1}, 101, 0, true, readPlan{}},
		{"c1 backfill busy: no read-ahead", slots{Concurrency: 1, BackfillCap: 1, BackfillInflight: 1}, 0, 0, true, readPlan{}},
		{"c1 backfill queued: no read-ahead", slots{Concurrency: 1, BackfillCap: 1}, 0, 5, true, readPlan{}},
		{"c8 free capacity", slots{Concurrency: 8, BackfillCap: 2, PrimaryInflight: 3}, 1, 0, true, readPlan{ReadBlockingBoth, 100}},
		{"c8 all slots busy: still read ahead", slots{Concurrency: 8, BackfillCap: 2, PrimaryInflight: 6, BackfillInflight: 2}, 0, 6, true, readPlan{ReadBlockingBoth, 100}},
		{"c8 backfill fills the read-ahead at cap: primary only", slots{Concurrency: 8, BackfillCap: 2, BackfillInflight: 2}, 0, 101, true, readPlan{ReadBlockingPrimary, 100}},
		{"c8 backfill fills the read-ahead, primary queued", slots{Concurrency: 8, BackfillCap: 2, BackfillInflight: 2}, 1, 101, true, readPlan{}},
		{"c8 backfill fills the read-ahead, no slot", slots{Concurrency: 8, BackfillCap: 2, PrimaryInflight: 6, BackfillInflight: 2}, 0, 101, true, readPlan{}},
		{"c8 lanes off", slots{Concurrency: 8, BackfillCap: 2}, 0, 0, false, readPlan{ReadBlockingPrimary, 100}},
		{"c8 lanes off, read-ahead above a batch", slots{Concurrency: 8, BackfillCap: 2}, 101, 0, false, readPlan{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, planRead(tc.s, tc.qp, tc.qb, 100, tc.lanes))
		})
	}
}

func TestRetryHeapProperty(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		base := time.Unix(1000, 0)
		var h retryHeap
		offs := rapid.SliceOf(rapid.IntRange(0, 1000)).Draw(rt, "offs")
		for i, o := range offs {
			h.add(retryItem{due: base.Add(time.Duration(o) * time.Millisecond), key: string(rune('a' + i%26))})
		}
		cut := rapid.IntRange(0, 1000).Draw(rt, "cut")
		due := h.popDue(base.Add(time.Duration(cut) * time.Millisecond))
		want := 0
		for _, o := range offs {
			if o <= cut {
				want++
			}
		}
		if len(due) != want || h.Len() != len(offs)-want {
			rt.Fatalf("popDue: got %d due, %d left; want %d", len(due), h.Len(), want)
		}
		if !slices.IsSortedFunc(due, func(a, b retryItem) int { return a.due.Compare(b.due) }) {
			rt.Fatalf("not in due order")
		}
		if n, ok := h.next(); ok && !n.After(base.Add(time.Duration(cut)*time.Millisecond)) {
			rt.Fatalf("left a due item")
		}
	})
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	var last time.Duration
	for range 20 {
		last = b.next(0.999)
		require.LessOrEqual(t, last, 5*time.Second)
	}
	require.GreaterOrEqual(t, last, 2500*time.Millisecond, "capped near Max")
	b.reset()
	require.LessOrEqual(t, b.next(0.999), 100*time.Millisecond)
}
