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
	// the p99 stays within the target.
	IncreaseStepDefault = 0.05
	// FloorDefault is the least allowance: the backfill keeps at least one
	// slot per consumer and this share of its rate, so it always moves.
	FloorDefault = 0.05
	// MinRatePerSecond is the least rate the governor leaves a throttled
	// backfill lane, whatever its cap.
	MinRatePerSecond = 1.0
)

// Governor decides the backfill allowance from the primary lane's latency:
// multiplicative decrease while the fleet's p99 is over Target, additive
// increase while it is within. The allowance is a fraction of the
// configured caps (backfill_concurrency and the backfill rate) in
// [Floor, 1].
type Governor struct {
	Target   time.Duration
	Decrease float64 // Defaults to DecreaseFactorDefault.
	Step     float64 // Defaults to IncreaseStepDefault.
	Floor    float64 // Defaults to FloorDefault.
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
	return g
}

// Decision is the outcome of one governor step.
type Decision struct {
	Allowance float64
	Changed   bool
	Reason    string
}

// Decide returns the allowance after an interval in which the fleet handled
// samples primary messages with p99 latency p99. With no samples the
// primary lane was idle: there is nothing to protect, so the allowance
// grows back.
func (g Governor) Decide(allowance float64, p99 time.Duration, samples int64) Decision {
	g = g.withDefaults()
	a := math.Min(math.Max(allowance, g.Floor), 1)
	var next float64
	var why string
	switch {
	case samples > 0 && p99 > g.Target:
		f := math.Max(math.Min(g.Decrease, float64(g.Target)/float64(p99)), math.Min(MaxCutDefault, g.Decrease))
		next = math.Max(a*f, g.Floor)
		why = fmt.Sprintf("primary p99 %s over target %s", roundDur(p99), g.Target)
	case samples == 0:
		next = math.Min(a+g.Step, 1)
		why = "primary idle"
	default:
		next = math.Min(a+g.Step, 1)
		why = fmt.Sprintf("primary p99 %s within target %s", roundDur(p99), g.Target)
	}
	next = math.Round(next*1000) / 1000
	return Decision{Allowance: next, Changed: next != allowance, Reason: why}
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
