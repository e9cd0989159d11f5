// Package lanesexp is the lanes off/on experiment that `laneway demo` and
// lanebench both run: the same workload twice, priority lanes off and then
// on, with production traffic offered at a fixed rate while a backfill
// drains, and the production latency of the two runs compared. The demo
// and lanebench differ in their domains and reports; the order of the runs,
// the production driver, the waits and the comparison are written here once.
package lanesexp

import (
	"context"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/tools/latency"
)

// Label names a run: "off" or "on".
func Label(lanes bool) string {
	if lanes {
		return "on"
	}
	return "off"
}

// OffOn runs the experiment: run with lanes off, then with lanes on. The
// off run goes first so the on run cannot profit from a warmed-up machine
// the off run did not have.
func OffOn[R any](ctx context.Context, run func(ctx context.Context, lanes bool) (R, error)) (off, on R, err error) {
	if off, err = run(ctx, false); err != nil {
		return off, on, err
	}
	on, err = run(ctx, true)
	return off, on, err
}

// Ratio is how many times worse the lanes-off figure is than the lanes-on
// one (0 when the lanes-on figure is 0), rounded for reports.
func Ratio(off, on float64) float64 { return latency.Ratio(off, on) }

// Producer offers production traffic: Rate calls of Send per second from
// one goroutine. A slow Send is caught up on the next tick rather than
// dropping the calls owed, so the offered load is the rate asked for.
type Producer struct {
	Rate float64
	// End stops the traffic at this time; zero means no end.
	End time.Time
	// Stop stops the traffic when closed; nil means never.
	Stop <-chan struct{}
	// Send makes production call n (0, 1, ...); an error counts as not sent.
	Send func(ctx context.Context, n int) error
	// Failed, when set, is told every error of Send.
	Failed func(error)
}

// tickCap bounds the producer's tick, so high rates are spread over the
// second instead of sent in bursts.
const tickCap = 5 * time.Millisecond

// Run sends until End, Stop or ctx, and returns the calls that succeeded.
func (p Producer) Run(ctx context.Context) (sent int) {
	tick := time.NewTicker(min(time.Duration(float64(time.Second)/p.Rate), tickCap))
	defer tick.Stop()
	begin := time.Now()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return sent
		case <-p.Stop:
			return sent
		case now := <-tick.C:
			if !p.End.IsZero() && now.After(p.End) {
				return sent
			}
			due := int(now.Sub(begin).Seconds()*p.Rate) + 1
			for ; n < due && ctx.Err() == nil && !closed(p.Stop); n++ {
				if err := p.Send(ctx, n); err != nil {
					if p.Failed != nil {
						p.Failed(err)
					}
					continue
				}
				sent++
			}
		}
	}
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// pollEvery is how often WaitFor checks its condition.
const pollEvery = 5 * time.Millisecond

// WaitFor polls cond until it holds (true), until deadline (false), or until
// ctx is done (its error).
func WaitFor(ctx context.Context, deadline time.Time, cond func() bool) (bool, error) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
		}
	}
	return true, nil
}

// StopEngine stops eng gracefully with its own deadline, also when ctx is
// already cancelled (an interrupted run still leaves nothing running).
func StopEngine(ctx context.Context, eng *laneway.Engine) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	return eng.Stop(sctx)
}

// stopTimeout exceeds the engine's default shutdown timeout (30s), so the
// engine's own bound applies first.
const stopTimeout = 40 * time.Second
