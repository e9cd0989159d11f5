package lanecontrol

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// This file holds the governor's decisions and the latency histogram, pure
// functions of their inputs; share.go moves their inputs and outputs
// through Redis.

// Governor defaults.
const (
	// DecreaseFactorDefault multiplies the allowance when the fleet's
	// primary p99 is over the target, or target/p99 when that is smaller
	// (a p99 four times the target cuts to a quarter at once), but never
	// less than MaxCutDefault.
	DecreaseFactorDefault = 0.5
	// MaxCutDefault bounds one cut, so a single slow second (a pause of
	// the database) does not throw the backfill to its floor.
	MaxCutDefault = 0.25
	// IncreaseStepDefault is added to the allowance after each interval
	// the p99 stays within HeadroomDefault of the target.
	IncreaseStepDefault = 0.05
	// FloorDefault is the least allowance: the backfill keeps at least one
	// slot per consumer and this share of its rate, so it always moves.
	FloorDefault = 0.05
	// HeadroomDefault: the allowance grows only while the p99 is at most
	// this share of the target; between it and the target it holds. A
	// backfill that already brings production near its target has found
	// its level, and pushing it further would cross the target.
	HeadroomDefault = 0.8
	// CeilingMarginDefault: after a cut from allowance C (the ceiling, a
	// level known to hurt), the allowance grows by full steps up to this
	// share of C and by ProbeStepShare of a step above it, so it comes
	// back to a level that hurt slowly: latency rises while the database
	// saturates, and small steps notice it before it is far over the
	// target. The ceiling is forgotten once the allowance passes it
	// within the target (whatever hurt has gone).
	CeilingMarginDefault = 0.8
	// ProbeStepShare is the share of a step taken above CeilingMargin.
	ProbeStepShare = 0.25
	// MinCutSamples is how many primary messages a window needs before a
	// p99 up to SevereFactor × the target cuts. The p99 of a second at a
	// hundred messages is its slowest message: one database hiccup would
	// cut a backfill that production bears well, and each such cut leaves a
	// ceiling the allowance then approaches slowly. Below it the decision
	// waits for a longer window, up to WindowSeconds.
	MinCutSamples = 200
	// SevereFactor: a p99 beyond this many times the target cuts at once,
	// whatever the number of samples (a real overload).
	SevereFactor = 2.0
	// WindowSeconds is the longest window a decision waits for.
	WindowSeconds = 5
	// MinRatePerSecond is the least rate the governor leaves a throttled
	// backfill lane, whatever its cap.
	MinRatePerSecond = 1.0
)

// Governor decides the backfill allowance from the primary lane's latency:
// multiplicative decrease while the fleet's p99 is over Target, additive
// increase while it is well within. The allowance is a fraction of the
// configured caps (backfill_concurrency and the backfill rate) in
// [Floor, 1].
type Governor struct {
	Target   time.Duration
	Decrease float64 // Defaults to DecreaseFactorDefault.
	Step     float64 // Defaults to IncreaseStepDefault.
	Floor    float64 // Defaults to FloorDefault.
	Headroom float64 // Defaults to HeadroomDefault.
	Margin   float64 // Defaults to CeilingMarginDefault.
}

func (g Governor) withDefaults() Governor {
	if g.Decrease <= 0 || g.Decrease >= 1 {
		g.Decrease = DecreaseFactorDefault
	}
	if g.Step <= 0 {
		g.Step = IncreaseStepDefault
	}
	if g.Floor <= 0 || g.Floor > 1 {
		g.Floor = FloorDefault
	}
	if g.Headroom <= 0 || g.Headroom > 1 {
		g.Headroom = HeadroomDefault
	}
	if g.Margin <= 0 || g.Margin > 1 {
		g.Margin = CeilingMarginDefault
	}
	return g
}

// Observation is what one governor step knows: the allowance in force and
// what the fleet's primary lane did under it.
type Observation struct {
	Allowance float64
	// Ceiling is the allowance of the last cut (0: none, or forgotten).
	Ceiling float64
	// LastCut: the previous decision cut, after seeing LastP99.
	LastCut bool
	LastP99 time.Duration
	// P99 of Samples primary messages since the previous decision.
	P99     time.Duration
	Samples int64
	// Seconds is how many seconds the window spans (0: unknown, decide on
	// what there is).
	Seconds int
}

// Decision is the outcome of one governor step.
type Decision struct {
	Allowance float64
	Ceiling   float64
	// Cut: this decision lowered the allowance; Grace: it held an
	// allowance just cut although the p99 is still over the target.
	Cut, Grace bool
	// Wait: too few samples to judge a moderate excess; look again with a
	// longer window (the state is not stored).
	Wait    bool
	Changed bool
	Reason  string
}

// Decide returns the next allowance. With no samples the primary lane was
// idle: there is nothing to protect, so the allowance grows back.
//
// One second after a cut the p99 is often still over the target: the
// messages that queued while the backfill was too fast finish late. If it
// is lower than the p99 that caused the cut, the cut is working and the
// decision holds once (Grace) instead of cutting again for the same
// overload, which would throw the backfill far below what production
// bears.
func (g Governor) Decide(o Observation) Decision {
	g = g.withDefaults()
	a := math.Min(math.Max(o.Allowance, g.Floor), 1)
	d := Decision{Allowance: a, Ceiling: o.Ceiling}
	target := g.Target
	switch {
	case o.Samples == 0:
		d.Allowance = g.grow(a, o.Ceiling)
		d.Reason = "primary idle"
	case o.P99 > target && o.LastCut && o.P99 < o.LastP99:
		d.Grace = true
		d.Reason = fmt.Sprintf("primary p99 %s over target %s, falling since the cut", roundDur(o.P99), target)
	case o.P99 > target && float64(o.P99) <= SevereFactor*float64(target) &&
		o.Samples < MinCutSamples && o.Seconds > 0 && o.Seconds < WindowSeconds:
		d.Wait = true
		d.Reason = fmt.Sprintf("primary p99 %s over target %s on %d messages; waiting for more", roundDur(o.P99), target, o.Samples)
	case o.P99 > target:
		f := math.Max(math.Min(g.Decrease, float64(target)/float64(o.P99)), math.Min(MaxCutDefault, g.Decrease))
		d.Allowance = math.Max(a*f, g.Floor)
		d.Cut = d.Allowance < a
		if d.Cut {
			d.Ceiling = a
		}
		d.Reason = fmt.Sprintf("primary p99 %s over target %s", roundDur(o.P99), target)
	case float64(o.P99) > g.Headroom*float64(target):
		d.Reason = fmt.Sprintf("primary p99 %s near target %s", roundDur(o.P99), target)
	default:
		d.Allowance = g.grow(a, o.Ceiling)
		d.Reason = fmt.Sprintf("primary p99 %s within target %s", roundDur(o.P99), target)
	}
	d.Allowance = math.Round(d.Allowance*1e4) / 1e4
	if d.Ceiling > 0 && (d.Allowance >= 1 || (!d.Cut && d.Allowance > d.Ceiling)) {
		d.Ceiling = 0
	}
	d.Changed = d.Allowance != o.Allowance
	return d
}

// grow is a after one additive step: a full step, or ProbeStepShare of one
// near (above Margin of) the ceiling.
func (g Governor) grow(a, ceiling float64) float64 {
	step := g.Step
	if ceiling > 0 && a+step > g.Margin*ceiling {
		step = math.Max(math.Min(step, g.Margin*ceiling-a), step*ProbeStepShare)
	}
	return math.Min(a+step, 1)
}

// BackfillConcurrency is the backfill slot limit of a consumer configured
// with capacity slots, at allowance a: never below one slot.
func BackfillConcurrency(capacity int, a float64) int {
	return max(1, min(capacity, int(math.Round(float64(capacity)*a))))
}

// BackfillRate is a lane's rate at allowance a, given its cap (0 =
// unlimited) and, for an unlimited lane, the rate it drained at when the
// governor first cut it (0 = unknown). It returns 0 for unlimited.
func BackfillRate(capPerSecond, reference, a float64) float64 {
	base := capPerSecond
	if base <= 0 {
		if a >= 1 || reference <= 0 {
			return 0
		}
		base = reference
	}
	if a >= 1 {
		return base
	}
	return math.Max(base*a, MinRatePerSecond)
}

func roundDur(d time.Duration) time.Duration {
	if d >= 10*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}

// Histogram counts latencies in logarithmic buckets: bucket i holds
// latencies up to histBase*histGrowth^i, so a quantile read from it is at
// most 10% above the true value.
type Histogram map[int]int64

const (
	histBase    = 100 * time.Microsecond
	histGrowth  = 1.1
	histBuckets = 160 // the last bucket takes everything above ~4 minutes
)

func bucketOf(d time.Duration) int {
	if d <= histBase {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/float64(histBase)) / math.Log(histGrowth)))
	return min(i, histBuckets-1)
}

func bucketUpper(i int) time.Duration {
	return time.Duration(float64(histBase) * math.Pow(histGrowth, float64(i)))
}

// Add counts one latency.
func (h Histogram) Add(d time.Duration) { h[bucketOf(d)]++ }

// Merge adds o's counts.
func (h Histogram) Merge(o Histogram) {
	for i, n := range o {
		if i >= 0 && i < histBuckets && n > 0 {
			h[i] += n
		}
	}
}

// Count is the number of latencies counted.
func (h Histogram) Count() int64 {
	var n int64
	for _, c := range h {
		n += c
	}
	return n
}

// Quantile returns the upper bound of the bucket holding quantile q (0 for
// an empty histogram).
func (h Histogram) Quantile(q float64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	idx := make([]int, 0, len(h))
	for i := range h {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for _, i := range idx {
		seen += h[i]
		if seen >= rank {
			return bucketUpper(i)
		}
	}
	return bucketUpper(idx[len(idx)-1])
}
