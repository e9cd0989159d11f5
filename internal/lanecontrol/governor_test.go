package lanecontrol

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGovernorDecide(t *testing.T) {
	t.Parallel()
	g := Governor{Target: 50 * time.Millisecond}
	ms := time.Millisecond
	cases := []struct {
		name      string
		allowance float64
		p99       time.Duration
		samples   int64
		want      float64
		changed   bool
	}{
		{"slightly over target halves", 1, 80 * ms, 100, 0.5, true},
		{"over target again", 0.5, 80 * ms, 100, 0.25, true},
		{"three times the target cuts to a third", 0.9, 150 * ms, 100, 0.3, true},
		{"far over target cuts to a quarter at most", 1, 5000 * ms, 100, 0.25, true},
		{"never below the floor", 0.08, 900 * ms, 100, FloorDefault, true},
		{"at the floor stays", FloorDefault, 900 * ms, 100, FloorDefault, false},
		{"well within target adds a step", 0.25, 20 * ms, 100, 0.3, true},
		{"at the headroom still adds a step", 0.5, 40 * ms, 100, 0.55, true},
		{"between headroom and target holds", 0.5, 45 * ms, 100, 0.5, false},
		{"exactly the target holds", 0.5, 50 * ms, 100, 0.5, false},
		{"never above full", 0.98, 10 * ms, 100, 1, true},
		{"full stays full", 1, 10 * ms, 100, 1, false},
		{"idle primary grows back", 0.3, 0, 0, 0.35, true},
		{"a stored value out of range is clamped first", 7, 80 * ms, 10, 0.5, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := g.Decide(Observation{Allowance: tc.allowance, P99: tc.p99, Samples: tc.samples})
			assert.InDelta(t, tc.want, d.Allowance, 1e-9)
			assert.Equal(t, tc.changed, d.Changed)
			assert.NotEmpty(t, d.Reason)
		})
	}
}

// A moderate excess on few messages is not yet a reason to cut: the
// decision waits for a longer window, up to WindowSeconds; a severe one
// cuts at once.
func TestGovernorWaitsForEvidence(t *testing.T) {
	t.Parallel()
	g := Governor{Target: 50 * time.Millisecond}
	ms := time.Millisecond
	d := g.Decide(Observation{Allowance: 0.6, P99: 60 * ms, Samples: 100, Seconds: 1})
	assert.True(t, d.Wait, "one second of 100 messages: its p99 is its slowest message")
	assert.False(t, d.Changed)
	assert.InDelta(t, 0.6, d.Allowance, 1e-9)

	d = g.Decide(Observation{Allowance: 0.6, P99: 60 * ms, Samples: MinCutSamples, Seconds: 2})
	assert.False(t, d.Wait)
	assert.True(t, d.Cut, "enough messages")

	d = g.Decide(Observation{Allowance: 0.6, P99: 60 * ms, Samples: 30, Seconds: WindowSeconds})
	assert.True(t, d.Cut, "the longest window decides on what it has")

	d = g.Decide(Observation{Allowance: 0.6, P99: 150 * ms, Samples: 20, Seconds: 1})
	assert.True(t, d.Cut, "three times the target is an overload: no waiting")
	assert.InDelta(t, 0.2, d.Allowance, 1e-9)

	d = g.Decide(Observation{Allowance: 0.6, P99: 20 * ms, Samples: 20, Seconds: 1})
	assert.False(t, d.Wait, "growth needs no more evidence: the slowest message was within")
	assert.InDelta(t, 0.65, d.Allowance, 1e-9)
}

// A cut remembers the allowance it cut from (the ceiling); the allowance
// grows back by full steps up to CeilingMarginDefault of it and by a
// quarter step above, and forgets it once past it within the target.
func TestGovernorCeiling(t *testing.T) {
	t.Parallel()
	g := Governor{Target: 100 * time.Millisecond}
	ms := time.Millisecond
	d := g.Decide(Observation{Allowance: 0.6, P99: 150 * ms, Samples: 100})
	require.True(t, d.Cut)
	assert.InDelta(t, 0.3, d.Allowance, 1e-9)
	assert.InDelta(t, 0.6, d.Ceiling, 1e-9, "the cut remembers where it hurt")

	within := func(a, ceiling float64) Decision {
		return g.Decide(Observation{Allowance: a, Ceiling: ceiling, P99: 20 * ms, Samples: 100})
	}
	assert.InDelta(t, 0.35, within(0.3, 0.6).Allowance, 1e-9, "a full step, far below the ceiling")
	assert.InDelta(t, 0.48, within(0.45, 0.6).Allowance, 1e-9, "up to 80% of the ceiling, not past it")
	assert.InDelta(t, 0.4925, within(0.48, 0.6).Allowance, 1e-9, "a quarter step above 80% of the ceiling")
	assert.InDelta(t, 0.6, within(0.58, 0.6).Ceiling, 1e-9, "still below it: remembered")
	d = within(0.595, 0.6)
	assert.InDelta(t, 0.6075, d.Allowance, 1e-9)
	assert.Zero(t, d.Ceiling, "past the ceiling within the target: forgotten")
	assert.InDelta(t, 0.7, within(0.65, 0).Allowance, 1e-9, "full steps again without a ceiling")

	d = g.Decide(Observation{Allowance: 0.3, Ceiling: 0.6, P99: 400 * ms, Samples: 100})
	assert.InDelta(t, 0.3, d.Ceiling, 1e-9, "a new cut sets the ceiling where it now hurt")
	assert.InDelta(t, 0.075, d.Allowance, 1e-9)
	d = g.Decide(Observation{Allowance: 0.995, Ceiling: 0.999, Samples: 0})
	assert.InDelta(t, 1, d.Allowance, 1e-9)
	assert.Zero(t, d.Ceiling, "full allowance: no ceiling")
}

// The decision after a cut holds once while the p99 is still over the
// target but lower than the one that caused the cut; it cuts when the p99
// did not fall, or when the previous decision was not a cut.
func TestGovernorGraceAfterCut(t *testing.T) {
	t.Parallel()
	g := Governor{Target: 100 * time.Millisecond}
	ms := time.Millisecond
	d := g.Decide(Observation{Allowance: 0.5, Ceiling: 1, LastCut: true, LastP99: 300 * ms, P99: 180 * ms, Samples: 100})
	assert.True(t, d.Grace)
	assert.False(t, d.Cut)
	assert.False(t, d.Changed)
	assert.InDelta(t, 0.5, d.Allowance, 1e-9)
	assert.Contains(t, d.Reason, "falling")

	d = g.Decide(Observation{Allowance: 0.5, LastCut: true, LastP99: 300 * ms, P99: 320 * ms, Samples: 100})
	assert.True(t, d.Cut, "not falling: cut again")
	d = g.Decide(Observation{Allowance: 0.5, LastCut: false, LastP99: 300 * ms, P99: 180 * ms, Samples: 100})
	assert.True(t, d.Cut, "no grace twice in a row")
	assert.InDelta(t, 0.25, d.Allowance, 1e-9)
}

func TestGovernorCustomFactors(t *testing.T) {
	t.Parallel()
	g := Governor{Target: time.Second, Decrease: 0.7, Step: 0.2, Floor: 0.1, Headroom: 0.5}
	decide := func(a float64, p99 time.Duration) float64 {
		return g.Decide(Observation{Allowance: a, P99: p99, Samples: 5}).Allowance
	}
	assert.InDelta(t, 0.7, decide(1, 1200*time.Millisecond), 1e-9)
	assert.InDelta(t, 0.5, decide(1, 2*time.Second), 1e-9, "p99 twice the target: cut to half")
	assert.InDelta(t, 0.1, decide(0.12, 2*time.Second), 1e-9)
	assert.InDelta(t, 0.5, decide(0.3, time.Millisecond), 1e-9)
	assert.InDelta(t, 0.3, decide(0.3, 600*time.Millisecond), 1e-9, "above a headroom of half the target: hold")
}

func TestBackfillConcurrencyAndRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		capacity int
		a        float64
		want     int
	}{{8, 1, 8}, {8, 0.5, 4}, {8, 0.05, 1}, {1, 0.05, 1}, {3, 0.5, 2}, {8, 0.0, 1}} {
		assert.Equal(t, tc.want, BackfillConcurrency(tc.capacity, tc.a), "%d × %v", tc.capacity, tc.a)
	}
	for _, tc := range []struct {
		name            string
		capRate, ref, a float64
		want            float64
	}{
		{"unlimited at full", 0, 300, 1, 0},
		{"unlimited, cut: a share of the measured rate", 0, 300, 0.5, 150},
		{"unlimited, nothing measured: concurrency only", 0, 0, 0.5, 0},
		{"capped at full", 500, 0, 1, 500},
		{"capped, cut", 500, 900, 0.25, 125},
		{"never below one a second", 10, 0, 0.05, MinRatePerSecond},
	} {
		assert.InDelta(t, tc.want, BackfillRate(tc.capRate, tc.ref, tc.a), 1e-9, tc.name)
	}
}

func TestHistogramQuantile(t *testing.T) {
	t.Parallel()
	h := Histogram{}
	assert.Zero(t, h.Quantile(0.99))
	for range 990 {
		h.Add(2 * time.Millisecond)
	}
	for range 10 {
		h.Add(300 * time.Millisecond)
	}
	p50, p99, p999 := h.Quantile(0.5), h.Quantile(0.99), h.Quantile(0.999)
	// A bucket's upper bound is at most 10% above what it holds.
	assert.GreaterOrEqual(t, p50, 2*time.Millisecond)
	assert.LessOrEqual(t, p50, 2200*time.Microsecond)
	assert.Equal(t, p50, p99, "the 990th of 1000 is still a 2 ms one")
	assert.GreaterOrEqual(t, p999, 300*time.Millisecond)
	assert.LessOrEqual(t, p999, 330*time.Millisecond)

	o := Histogram{}
	o.Add(time.Hour) // past the last bucket: counted there
	o.Add(0)
	h.Merge(o)
	assert.EqualValues(t, 1002, h.Count())
	assert.Greater(t, h.Quantile(1), 3*time.Minute)
	h.Merge(Histogram{-1: 5, histBuckets: 5}) // out-of-range buckets from a bad peer are ignored
	assert.EqualValues(t, 1002, h.Count())
}

func TestLimitOf(t *testing.T) {
	t.Parallel()
	l := limitOf(500)
	assert.Equal(t, 500, l.Rate)
	assert.Equal(t, time.Second, l.Period)
	assert.Equal(t, 50, l.Burst)
	l = limitOf(2.5)
	assert.Equal(t, 150, l.Rate)
	assert.Equal(t, time.Minute, l.Period)
	assert.Equal(t, 2, l.Burst)
}

// A reference is learnt after the first cut, never below the busiest second
// seen at the full allowance, and only once.
func TestLearnReferences(t *testing.T) {
	t.Parallel()
	st := GovernorState{Allowance: 1}
	st.learnReferences(map[string]float64{"b|H": 120})
	st.learnReferences(map[string]float64{"b|H": 90})
	assert.Nil(t, st.References, "nothing learnt at the full allowance")
	assert.Equal(t, map[string]float64{"b|H": 120}, st.FullPeaks)

	st.Allowance = 0.25
	st.learnReferences(map[string]float64{"b|H": 4, "b|Other": 30})
	assert.Equal(t, map[string]float64{"b|H": 120, "b|Other": 30}, st.References,
		"a nearly empty window after the cut does not set the reference below what the lane did at full")
	st.learnReferences(map[string]float64{"b|H": 500})
	assert.Equal(t, 120.0, st.References["b|H"], "learnt once")
}
