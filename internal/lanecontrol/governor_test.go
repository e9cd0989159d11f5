package lanecontrol

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
		{"within target adds a step", 0.25, 20 * ms, 100, 0.3, true},
		{"exactly the target is within", 0.5, 50 * ms, 100, 0.55, true},
		{"never above full", 0.98, 10 * ms, 100, 1, true},
		{"full stays full", 1, 10 * ms, 100, 1, false},
		{"idle primary grows back", 0.3, 0, 0, 0.35, true},
		{"a stored value out of range is clamped first", 7, 80 * ms, 10, 0.5, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := g.Decide(tc.allowance, tc.p99, tc.samples)
			assert.InDelta(t, tc.want, d.Allowance, 1e-9)
			assert.Equal(t, tc.changed, d.Changed)
			assert.NotEmpty(t, d.Reason)
		})
	}
}

func TestGovernorCustomFactors(t *testing.T) {
	t.Parallel()
	g := Governor{Target: time.Second, Decrease: 0.7, Step: 0.2, Floor: 0.1}
	assert.InDelta(t, 0.7, g.Decide(1, 1200*time.Millisecond, 5).Allowance, 1e-9)
	assert.InDelta(t, 0.5, g.Decide(1, 2*time.Second, 5).Allowance, 1e-9, "p99 twice the target: cut to half")
	assert.InDelta(t, 0.1, g.Decide(0.12, 2*time.Second, 5).Allowance, 1e-9)
	assert.InDelta(t, 0.5, g.Decide(0.3, time.Millisecond, 5).Allowance, 1e-9)
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
