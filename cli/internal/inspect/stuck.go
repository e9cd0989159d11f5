package inspect

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// StuckEntry is the oldest entry of one consumer group on one lane stream
// that has been pending longer than a live Laneway consumer would let it:
// a consumer of the group reclaims entries idle ClaimIdle, so an entry idle
// far beyond that has nobody taking it over (a group of another service,
// whose consumers never reclaim, or a group no engine runs). It keeps the
// stream's retention trimmer below its id, so the stream grows.
type StuckEntry struct {
	Stream     string        `json:"stream"`
	Group      string        `json:"group"`
	ID         string        `json:"id"`
	Consumer   string        `json:"consumer"`
	Idle       time.Duration `json:"idle_ns"`
	Deliveries int64         `json:"deliveries"`
	// Stuck counts the group's entries idle that long (at most
	// stuckScan; More says there may be others).
	Stuck int  `json:"stuck"`
	More  bool `json:"more,omitempty"`
}

// stuckScan bounds the pending entries read per group.
const stuckScan = 100

// StuckIdle is how long an entry may stay pending before the doctor calls
// it stuck: twice claim_idle_seconds, which leaves a live consumer of the
// group a full reclaim cycle (it scans every claim_idle/2, at most every
// 5 s) to take it over first.
func StuckIdle(cfg *lanewayconfig.Config) time.Duration {
	return 2 * cfg.Server.StreamSubscription.ClaimIdle()
}

// StuckPending lists, for every group of every existing lane stream of the
// topology (primary and backfill, whether lanes are enabled or not, and
// groups of other services too), the oldest entry pending at least minIdle.
func (in *Inspector) StuckPending(ctx context.Context, minIdle time.Duration) ([]StuckEntry, error) {
	var out []StuckEntry
	for _, c := range in.topo.Categories {
		for _, stream := range []string{c.Name, in.topo.Backfill(c.Name)} {
			groups, err := in.broker.Groups(ctx, stream)
			if err != nil {
				return nil, fmt.Errorf("consumer groups of %s: %w", stream, err)
			}
			for _, g := range groups {
				if g.Pending == 0 {
					continue
				}
				ps, err := in.broker.Pending(ctx, lanewaybroker.PendingParams{
					Stream: stream, Group: g.Name, Start: "-", End: "+", Count: stuckScan, MinIdle: minIdle,
				})
				if err != nil {
					return nil, fmt.Errorf("pending entries of %s on %s: %w", g.Name, stream, err)
				}
				if len(ps) == 0 {
					continue
				}
				p := ps[0] // XPENDING lists by id: the oldest, the one retention stops at
				out = append(out, StuckEntry{Stream: stream, Group: g.Name, ID: p.ID, Consumer: p.Consumer,
					Idle: p.Idle, Deliveries: p.Deliveries, Stuck: len(ps), More: len(ps) == stuckScan})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Stream != out[j].Stream {
			return out[i].Stream < out[j].Stream
		}
		return out[i].Group < out[j].Group
	})
	return out, nil
}

// stuckCheck turns StuckPending into a doctor check.
func stuckCheck(stuck []StuckEntry, minIdle time.Duration) Check {
	c := Check{ID: "stuck_pending", Title: "pending entries nobody takes over"}
	if len(stuck) == 0 {
		c.Status = Pass
		c.Detail = fmt.Sprintf("no consumer group has an entry pending longer than %s (twice claim_idle_seconds)", minIdle)
		return c
	}
	var found, fixes []string
	for _, s := range stuck {
		n := fmt.Sprint(s.Stuck)
		if s.More {
			n += "+"
		}
		found = append(found, fmt.Sprintf("group %s on %s: entry %s pending on consumer %s for %s (delivery count %d; %s idle that long in the group)",
			s.Group, s.Stream, s.ID, s.Consumer, s.Idle.Round(time.Second), s.Deliveries, n))
		fixes = append(fixes,
			fmt.Sprintf("redis-cli XACK %s %s %s", s.Stream, s.Group, s.ID),
			fmt.Sprintf("redis-cli XCLAIM %s %s <live consumer> %d %s", s.Stream, s.Group, minIdle.Milliseconds(), s.ID))
	}
	c.Status = Warn
	c.Detail = strings.Join(found, "; ") + ". No live consumer of these groups reclaims them (Laneway's would have after claim_idle_seconds), " +
		"and retention trimming stops at the oldest of them, so the stream grows"
	c.Fix = "if the entry was handled or can never be (an entry another service could not decode), acknowledge it: " +
		strings.Join(everyOther(fixes, 0), "; ") + "; to have it handled, give it to a live consumer of the group: " +
		strings.Join(everyOther(fixes, 1), "; ") + " (or start a Laneway handler in that group: it reclaims it)"
	return c
}

func everyOther(ss []string, from int) []string {
	var out []string
	for i := from; i < len(ss); i += 2 {
		out = append(out, ss[i])
	}
	return out
}
