package lanecontrol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// GovernorState is the fleet's governor state, one per domain in Redis.
// Every engine may take the next decision; a compare-and-set on the stored
// value lets exactly one of them win each step.
type GovernorState struct {
	TargetMS float64 `json:"target_ms"`
	// Allowance is the fraction of the backfill caps in use, in
	// [floor, 1].
	Allowance    float64 `json:"allowance"`
	PrimaryP99MS float64 `json:"primary_p99_ms"`
	// Samples is the number of primary messages the last decision saw.
	Samples   int64     `json:"samples"`
	Reason    string    `json:"reason"`
	DecidedAt time.Time `json:"decided_at"`
	ChangedAt time.Time `json:"changed_at"`
	// DecidedSecond is the last second measured; ChangedSecond the second
	// of the last change (the next decision only looks at seconds after
	// it, so it measures the new allowance).
	DecidedSecond int64 `json:"decided_second"`
	ChangedSecond int64 `json:"changed_second"`
	// WindowFrom is the first second the next decision measures: the
	// second after a change or a grace hold, so each decision judges the
	// allowance in force (0 in a state stored before it: ChangedSecond+1).
	WindowFrom int64 `json:"window_from,omitempty"`
	// Ceiling is the allowance of the last cut, approached slowly (see
	// CeilingMarginDefault); 0 none. LastCut: the last decision cut.
	Ceiling float64 `json:"ceiling,omitempty"`
	LastCut bool    `json:"last_cut,omitempty"`
	// References are the drain rates ("<stream>|<handler>": messages per
	// second, fleet-wide) of backfill lanes without a rate cap, learnt in
	// the first window after the allowance dropped below 1 (see
	// learnReferences) and forgotten when it is back at 1: the allowance of
	// such a lane is a share of that rate.
	References map[string]float64 `json:"reference_rates,omitempty"`
	// FullPeaks are the busiest seconds of each lane seen at the full
	// allowance (scaled like the references): the least a reference can be.
	FullPeaks map[string]float64 `json:"full_peaks,omitempty"`
}

// secondStats is what one engine saw in one second.
type secondStats struct {
	Primary  Histogram        `json:"p"`
	Backfill map[string]int64 `json:"b,omitempty"` // "<stream>|<handler>": handled
}

// publishSeconds writes an engine's finished seconds (each key expires
// after latencyTTL).
func (s *Store) publishSeconds(ctx context.Context, engine string, secs map[int64]*secondStats) error {
	if len(secs) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for sec, st := range secs {
		v, _ := json.Marshal(st)
		k := s.latencyKey(sec)
		pipe.HSet(ctx, k, engine, string(v))
		pipe.Expire(ctx, k, latencyTTL)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// latencyTTL keeps a few windows of per-second stats.
const latencyTTL = 30 * time.Second

// readSeconds merges every engine's stats of seconds from..to (inclusive):
// the primary histogram, and per lane and handler the most handled in one
// second.
func (s *Store) readSeconds(ctx context.Context, from, to int64) (Histogram, map[string]float64, error) {
	h := Histogram{}
	peak := map[string]float64{}
	if to < from {
		return h, peak, nil
	}
	pipe := s.rdb.Pipeline()
	var cmds []*redis.MapStringStringCmd
	for sec := from; sec <= to; sec++ {
		cmds = append(cmds, pipe.HGetAll(ctx, s.latencyKey(sec)))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, err
	}
	for _, c := range cmds {
		sum := map[string]float64{}
		for _, v := range c.Val() {
			var st secondStats
			if json.Unmarshal([]byte(v), &st) != nil {
				continue
			}
			h.Merge(st.Primary)
			for k, n := range st.Backfill {
				sum[k] += float64(n)
			}
		}
		for k, n := range sum {
			peak[k] = max(peak[k], n)
		}
	}
	return h, peak, nil
}

// casScript replaces KEYS[1] with ARGV[2] only if it still holds ARGV[1]
// ("" standing for a missing key).
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0`)

// swapGovernor stores next if the stored state is still old (old "" for
// none). It reports whether this call won.
func (s *Store) swapGovernor(ctx context.Context, old string, next GovernorState) (bool, error) {
	v, _ := json.Marshal(next)
	n, err := casScript.Run(ctx, s.rdb, []string{s.governorKey()}, old, string(v)).Int()
	if err != nil {
		return false, fmt.Errorf("store governor state: %w", err)
	}
	return n == 1, nil
}

// rawGovernor reads the stored governor state as stored ("" for none).
func (s *Store) rawGovernor(ctx context.Context) (string, error) {
	v, err := s.rdb.Get(ctx, s.governorKey()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// ResetGovernor removes the governor's state, so the next decision starts
// again from the full allowance (tests, and an operator who changed the
// target).
func (s *Store) ResetGovernor(ctx context.Context) error {
	return s.rdb.Del(ctx, s.governorKey()).Err()
}

// govWindow is how many seconds back a decision looks at most.
const govWindow = WindowSeconds

// publishLag is how long after a second ends its stats are taken as
// complete: every engine publishes within one poll interval.
const publishLag = 500 * time.Millisecond

// stepGovernor takes the next governor decision if one is due at now, and
// stores it. It returns the state (stored or new), whether this call
// changed the allowance, and any error.
func (s *Store) stepGovernor(ctx context.Context, g Governor, now time.Time) (GovernorState, bool, error) {
	raw, err := s.rawGovernor(ctx)
	if err != nil {
		return GovernorState{}, false, err
	}
	last := now.Add(-publishLag).Unix() - 1 // the last complete second
	var st GovernorState
	if raw == "" || json.Unmarshal([]byte(raw), &st) != nil {
		st = GovernorState{Allowance: 1, ChangedSecond: last, DecidedSecond: last, ChangedAt: now.UTC(), DecidedAt: now.UTC(), Reason: "start"}
	} else {
		if st.WindowFrom == 0 {
			st.WindowFrom = st.ChangedSecond + 1
		}
		if last <= st.DecidedSecond || last < st.WindowFrom {
			return st, false, nil
		}
		from := max(st.WindowFrom, last-govWindow+1)
		h, peaks, err := s.readSeconds(ctx, from, last)
		if err != nil {
			return st, false, fmt.Errorf("read primary latencies: %w", err)
		}
		p99 := h.Quantile(0.99)
		d := g.Decide(Observation{
			Allowance: st.Allowance, Ceiling: st.Ceiling, LastCut: st.LastCut,
			LastP99: time.Duration(st.PrimaryP99MS * float64(time.Millisecond)), P99: p99, Samples: h.Count(),
			Seconds: int(last - from + 1),
		})
		if d.Wait {
			return st, false, nil // the next second widens the window
		}
		st.learnReferences(peaks)
		st.PrimaryP99MS = float64(p99) / float64(time.Millisecond)
		st.Samples = h.Count()
		st.Reason = d.Reason
		st.DecidedSecond, st.DecidedAt = last, now.UTC()
		st.Ceiling, st.LastCut = d.Ceiling, d.Cut
		if d.Grace {
			st.WindowFrom = last + 1
		}
		if d.Changed {
			st.Allowance = d.Allowance
			st.ChangedSecond, st.ChangedAt = now.Unix(), now.UTC()
			st.WindowFrom = now.Unix() + 1
			if d.Allowance >= 1 {
				st.References, st.FullPeaks = nil, nil
			}
		}
	}
	st.TargetMS = float64(g.Target) / float64(time.Millisecond)
	won, err := s.swapGovernor(ctx, raw, st)
	if err != nil || !won {
		return st, false, err
	}
	var prev GovernorState
	changed := raw != "" && json.Unmarshal([]byte(raw), &prev) == nil && prev.Allowance != st.Allowance
	return st, changed, nil
}

// learnReferences sets the reference rate of each lane that has none from
// the window just judged, where the allowance in force was constant: its
// busiest second. Not at the full allowance: the first seconds of a drain
// (engines starting, connections opening) are far below its pace, and a cut
// judged on them would make every later rate a share of that. After a cut
// the lane runs on its reduced concurrency alone (no rate limit without a
// reference) for one window, and its drain there is what the allowance is a
// share of. It is not scaled up by the slots the cut took: on a contended
// database the drain grows far less than the slots (one engine drained 568
// messages/s on 2 of 8 slots and 684 on all 8; two engines 120 on one slot
// each and 157 on all), and scaling made the floor's rate more than
// production bore.
//
// Nor is it ever below the busiest second seen at the full allowance: a
// window after a cut can be nearly empty (two engines' backfill handlers
// deadlocking on each other, a lane just paused), and a reference of a few
// messages a second would hold the lane there until the allowance is back
// at 1.
func (st *GovernorState) learnReferences(peaks map[string]float64) {
	if st.Allowance >= 1 {
		for k, p := range peaks {
			if p > st.FullPeaks[k] {
				if st.FullPeaks == nil {
					st.FullPeaks = map[string]float64{}
				}
				st.FullPeaks[k] = p
			}
		}
		return
	}
	for k, p := range peaks {
		if p <= 0 || st.References[k] > 0 {
			continue
		}
		if st.References == nil {
			st.References = map[string]float64{}
		}
		st.References[k] = max(p, st.FullPeaks[k])
	}
}

// formatAllowance is "40%".
func formatAllowance(a float64) string {
	return strconv.FormatFloat(a*100, 'f', -1, 64) + "%"
}
