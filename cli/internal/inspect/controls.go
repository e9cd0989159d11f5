package inspect

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/internal/lanecontrol"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewayconfig"
)

// Controls is the operator's lane controls of the domain as stored in
// Redis (laneway lanes pause / throttle, and the governor's state), part of
// Status so every view (lanes status --json, watch, the dashboard) shows
// the same.
type Controls struct {
	lanecontrol.Snapshot
	// ConfigRatePerSecond is backfill_rate_per_second from the
	// configuration (0: unlimited), in force wherever no throttle is set.
	ConfigRatePerSecond float64 `json:"config_rate_per_second"`
	// GovernorTargetMS is the configured primary latency target (0: the
	// governor is off).
	GovernorTargetMS int `json:"governor_target_ms"`
}

// LaneControl is one lane's controls, in its LaneStatus.
type LaneControl struct {
	// Paused: every handler of the lane is paused; PausedHandlers lists
	// the handlers paused on their own.
	Paused         bool     `json:"paused"`
	PausedHandlers []string `json:"paused_handlers"`
	// PausedSince is the oldest pause of the lane.
	PausedSince      *time.Time `json:"paused_since,omitempty"`
	PausedForSeconds float64    `json:"paused_for_seconds,omitempty"`
	// RatePerSecond is the backfill rate cap in force (0: unlimited) and
	// RateSource where it comes from: "throttle", "config" or "".
	RatePerSecond float64 `json:"rate_per_second"`
	RateSource    string  `json:"rate_source,omitempty"`
}

// ControlsOf reads the domain's controls; ok is false when the broker keeps
// none (it is not Redis-backed).
func (in *Inspector) ControlsOf(ctx context.Context) (lanecontrol.Snapshot, bool, error) {
	rc, ok := in.broker.(interface{ RedisClient() redis.UniversalClient })
	if !ok {
		return lanecontrol.Snapshot{}, false, nil
	}
	snap, err := lanecontrol.NewStore(rc.RedisClient(), in.topo.Domain).Load(ctx)
	return snap, err == nil, err
}

// addControls puts the controls into st and onto its lanes.
func (in *Inspector) addControls(ctx context.Context, st *Status, cfg *lanewayconfig.Config) error {
	snap, ok, err := in.ControlsOf(ctx)
	if err != nil || !ok {
		return err
	}
	pl := cfg.Server.PriorityLanes
	st.Controls = &Controls{Snapshot: snap, ConfigRatePerSecond: pl.BackfillRatePerSecond, GovernorTargetMS: pl.Governor.PrimaryLatencyTargetMS}
	for ci := range st.Categories {
		for li := range st.Categories[ci].Lanes {
			ls := &st.Categories[ci].Lanes[li]
			lc := &LaneControl{PausedHandlers: []string{}}
			for _, p := range snap.Pauses {
				if p.Stream != ls.Stream {
					continue
				}
				if p.Handler == lanecontrol.AllHandlers {
					lc.Paused = true
				} else {
					lc.PausedHandlers = append(lc.PausedHandlers, p.Handler)
				}
				if lc.PausedSince == nil || p.Since.Before(*lc.PausedSince) {
					since := p.Since
					lc.PausedSince, lc.PausedForSeconds = &since, p.PausedForSeconds
				}
			}
			sort.Strings(lc.PausedHandlers)
			if ls.Lane == lanes.Backfill {
				if t, ok := snap.ThrottleOf(ls.Stream); ok {
					lc.RatePerSecond, lc.RateSource = t.PerSecond, "throttle"
				} else if pl.BackfillRatePerSecond > 0 {
					lc.RatePerSecond, lc.RateSource = pl.BackfillRatePerSecond, "config"
				}
			}
			ls.Control = lc
		}
	}
	return nil
}

// pausedCheck is doctor's WARN for every paused lane: how long, and the
// command that resumes it.
func pausedCheck(st Status, dir string) Check {
	c := Check{ID: "lane_paused", Title: "paused lanes", Status: Pass, Detail: "no lane is paused"}
	if st.Controls == nil {
		c.Detail = "the broker keeps no lane controls"
		return c
	}
	var parts, fixes []string
	for _, p := range st.Controls.Pauses {
		who := "every handler"
		flag := ""
		if p.Handler != lanecontrol.AllHandlers {
			who, flag = "handler "+p.Handler, " --handler "+p.Handler
		}
		parts = append(parts, fmt.Sprintf("%s is paused for %s (%s) since %s", p.Stream, who,
			(time.Duration(p.PausedForSeconds)*time.Second).String(), p.Since.UTC().Format(time.RFC3339)))
		fixes = append(fixes, fmt.Sprintf("laneway lanes resume %s%s --domain %s", p.Stream, flag, dir))
	}
	if len(parts) > 0 {
		c.Status = Warn
		c.Detail = strings.Join(parts, "; ") + ": its entries wait, pending or unread, and nothing new starts on it"
		c.Fix = "when the lane may run again: " + strings.Join(fixes, "; ")
	}
	return c
}

// pausedLane reports whether every handler of the lane is paused.
func pausedLane(ls LaneStatus) bool { return ls.Control != nil && ls.Control.Paused }
