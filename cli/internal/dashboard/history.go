package dashboard

import (
	"context"
	"sync"
	"time"

	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/internal/lanes"
)

// history keeps the lanes' backlog samples for the charts, the latest
// snapshot for the lanes page, and each lane's drain progress.
type history struct {
	keep time.Duration

	mu      sync.Mutex
	samples []sample
	latest  inspect.Status
	drains  map[string]inspect.Drain
	err     error     // the last sample's failure, nil once one succeeds
	errAt   time.Time // when it failed
	tracker *inspect.DrainTracker
}

// sample is every lane's unhandled backlog at one time.
type sample struct {
	at        time.Time
	unhandled map[string]int64
}

func newHistory(keep time.Duration) *history {
	return &history{keep: keep, drains: map[string]inspect.Drain{}, tracker: inspect.NewDrainTracker()}
}

func (h *history) record(st inspect.Status) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := sample{at: st.TakenAt, unhandled: map[string]int64{}}
	ds := h.tracker.Observe(st)
	k := 0
	for _, cs := range st.Categories {
		for _, l := range cs.Lanes {
			s.unhandled[l.Stream] = l.Unhandled
			h.drains[l.Stream] = ds[k]
			k++
		}
	}
	h.samples = append(h.samples, s)
	cut := 0
	for cut < len(h.samples) && st.TakenAt.Sub(h.samples[cut].at) > h.keep {
		cut++
	}
	h.samples = h.samples[cut:]
	h.latest, h.err = st, nil
}

func (h *history) fail(err error, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err, h.errAt = err, at
}

// snapshot returns the latest status (zero TakenAt before the first
// sample), the drains and the last error.
func (h *history) snapshot() (inspect.Status, map[string]inspect.Drain, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	drains := make(map[string]inspect.Drain, len(h.drains))
	for k, v := range h.drains {
		drains[k] = v
	}
	return h.latest, drains, h.err
}

// History is the JSON of /ui/api/lanes/history: the backlog samples in the
// column layout the charts draw (Times and one column per stream), and
// each lane's drain progress.
type History struct {
	IntervalSeconds float64 `json:"interval_seconds"`
	KeepSeconds     float64 `json:"keep_seconds"`
	// Times are the samples' Unix times in seconds.
	Times []float64 `json:"times"`
	// Unhandled holds, per lane stream, its unhandled backlog at each of
	// Times (null where the stream was not sampled).
	Unhandled map[string][]*int64 `json:"unhandled"`
	Drains    []DrainJSON         `json:"drains"`
	// Error is why the last sample failed ("" when it succeeded).
	Error string `json:"error,omitempty"`
}

// DrainJSON is one lane's drain progress since its backlog peaked.
type DrainJSON struct {
	Stream     string     `json:"stream"`
	Lane       lanes.Lane `json:"lane"`
	Unhandled  int64      `json:"unhandled"`
	Peak       int64      `json:"peak"`
	Done       float64    `json:"done"` // 0 to 1
	RatePerS   float64    `json:"rate_per_s"`
	ETASeconds float64    `json:"eta_seconds"` // 0 when unknown
}

func (h *history) json(interval time.Duration) History {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := History{IntervalSeconds: interval.Seconds(), KeepSeconds: h.keep.Seconds(), Times: []float64{}, Unhandled: map[string][]*int64{}, Drains: []DrainJSON{}}
	for _, cs := range h.latest.Categories {
		for _, l := range cs.Lanes {
			out.Unhandled[l.Stream] = make([]*int64, 0, len(h.samples))
		}
	}
	for _, s := range h.samples {
		out.Times = append(out.Times, float64(s.at.UnixMilli())/1000)
		for stream, col := range out.Unhandled {
			if v, ok := s.unhandled[stream]; ok {
				out.Unhandled[stream] = append(col, &v)
			} else {
				out.Unhandled[stream] = append(col, nil)
			}
		}
	}
	for _, cs := range h.latest.Categories {
		for _, l := range cs.Lanes {
			d := h.drains[l.Stream]
			out.Drains = append(out.Drains, DrainJSON{
				Stream: l.Stream, Lane: l.Lane, Unhandled: d.Unhandled, Peak: d.Peak, Done: d.Done(),
				RatePerS: d.Rate, ETASeconds: d.ETA.Seconds(),
			})
		}
	}
	if h.err != nil {
		out.Error = h.err.Error()
	}
	return out
}

// sampleLoop takes a snapshot every Interval until ctx ends.
func (d *Dashboard) sampleLoop(ctx context.Context) {
	t := time.NewTicker(d.p.Interval)
	defer t.Stop()
	for {
		d.sampleOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Dashboard) sampleOnce(parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, max(d.p.Interval, 5*time.Second))
	defer cancel()
	in, err := d.inspector(ctx)
	if err == nil {
		var st inspect.Status
		if st, err = in.Status(ctx, d.p.Config); err == nil {
			d.hist.record(st)
			return
		}
	}
	if parent.Err() == nil { // a failure, not the dashboard stopping
		d.hist.fail(err, time.Now())
	}
}
