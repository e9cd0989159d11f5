// Package latency summarises measured durations (percentiles in
// milliseconds) for `laneway demo` and `lanebench`, so both report the same
// numbers the same way.
package latency

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Summary is a latency distribution in milliseconds. The JSON names are part
// of the demo's and lanebench's output contract.
type Summary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize sorts a copy of d and takes nearest-rank percentiles, so every
// reported value is one that was actually measured.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return Summary{
		Count: len(s),
		P50:   Round3(MS(Percentile(s, 0.50))),
		P90:   Round3(MS(Percentile(s, 0.90))),
		P99:   Round3(MS(Percentile(s, 0.99))),
		Max:   Round3(MS(s[len(s)-1])),
	}
}

// Percentile is the nearest-rank q-quantile (0 < q <= 1) of sorted, which
// must be sorted ascending; 0 when it is empty.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Ratio is a/b rounded to three decimals, 0 when b is not positive (no
// meaningful ratio rather than an infinity in the JSON).
func Ratio(a, b float64) float64 {
	if b <= 0 || math.IsNaN(a) || math.IsNaN(b) {
		return 0
	}
	return Round3(a / b)
}

// MS is d in milliseconds.
func MS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Round3 rounds to three decimals (microseconds, for values in ms).
func Round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// Recorder collects durations from many goroutines.
type Recorder struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one duration.
func (r *Recorder) Add(d time.Duration) {
	r.mu.Lock()
	r.d = append(r.d, d)
	r.mu.Unlock()
}

// Len is the number of durations recorded.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.d)
}

// Summary summarises what was recorded so far.
func (r *Recorder) Summary() Summary {
	r.mu.Lock()
	d := slices.Clone(r.d)
	r.mu.Unlock()
	return Summarize(d)
}
