package inspect

import "time"

// Drain is the progress of one lane's backlog across snapshots.
type Drain struct {
	Stream    string
	Unhandled int64
	// Peak is the largest backlog seen since tracking began: the 100% of
	// the progress bar.
	Peak int64
	// Rate is entries handled per second, smoothed; negative while the
	// backlog grows.
	Rate float64
	// ETA is the time left at Rate; 0 when unknown (no progress yet, or
	// growing).
	ETA time.Duration
}

// Done is the handled share of Peak, from 0 to 1.
func (d Drain) Done() float64 {
	if d.Peak <= 0 {
		return 1
	}
	return float64(d.Peak-d.Unhandled) / float64(d.Peak)
}

// DrainTracker follows every lane's backlog over successive snapshots.
// Not safe for concurrent use.
type DrainTracker struct {
	last  map[string]Drain
	times map[string]time.Time
}

// NewDrainTracker returns an empty tracker.
func NewDrainTracker() *DrainTracker {
	return &DrainTracker{last: map[string]Drain{}, times: map[string]time.Time{}}
}

// drainSmoothing is the weight of the newest interval in Rate: enough
// smoothing that one slow interval does not swing the ETA, yet a real
// change shows within a few refreshes.
const drainSmoothing = 0.5

// Observe records a snapshot and returns each lane's progress, in the
// snapshot's order.
func (t *DrainTracker) Observe(st Status) []Drain {
	var out []Drain
	for _, cs := range st.Categories {
		for _, l := range cs.Lanes {
			d := t.observe(l.Stream, l.Unhandled, st.TakenAt)
			out = append(out, d)
		}
	}
	return out
}

func (t *DrainTracker) observe(stream string, unhandled int64, at time.Time) Drain {
	prev, seen := t.last[stream]
	d := Drain{Stream: stream, Unhandled: unhandled, Peak: max(prev.Peak, unhandled), Rate: prev.Rate}
	if unhandled == 0 {
		d.Peak = 0 // drained: the next batch starts a new bar
	}
	if seen {
		if dt := at.Sub(t.times[stream]).Seconds(); dt > 0 {
			r := float64(prev.Unhandled-unhandled) / dt
			if prev.Rate == 0 {
				d.Rate = r
			} else {
				d.Rate = drainSmoothing*r + (1-drainSmoothing)*prev.Rate
			}
		}
	}
	if d.Rate > 0 && unhandled > 0 {
		d.ETA = time.Duration(float64(unhandled) / d.Rate * float64(time.Second))
	}
	t.last[stream], t.times[stream] = d, at
	return d
}
