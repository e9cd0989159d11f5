package consumer

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/laneway/laneway/lanewaybroker"
)

// Takeover of a dead engine's entries.
//
// The ClaimIdle reclaim cannot tell a dead consumer from a slow one, so it
// has to wait long (ClaimIdle) and then takes entries a page per tick. When
// Config.Alive is set the consumer instead asks, once per takeoverEvery,
// which other consumers of its group have no running engine behind them
// (their engine's heartbeat key expired or was deleted at a graceful stop)
// and claims all of their pending entries in the same tick, primary lane
// first, up to holdLimit entries held. A consumer whose engine is alive is
// never touched, however idle: ClaimIdle stays the only rescue for a live
// but stuck one.

const (
	// takeoverEvery is how often the consumers of the group are checked.
	takeoverEvery = time.Second
	// takeoverMinIdle guards the claim: an entry some consumer read or
	// claimed within it is left alone. It keeps two survivors from taking
	// the same entries from each other (the first claim resets the idle
	// time), and a consumer whose engine has not written its first
	// heartbeat yet from being taken for dead.
	takeoverMinIdle = 2 * time.Second
	// takeoverPage is the most entries listed and claimed per command.
	takeoverPage = 1000
)

// takeoverState is the dispatcher's takeover bookkeeping.
type takeoverState struct {
	last  time.Time // last check
	after time.Time // no takeover before (grace after a broker outage)
	taken atomic.Int64
}

// holdLimit bounds the entries one consumer holds after a takeover: a
// survivor takes a dead peer's whole backlog in one tick up to it, and the
// rest on the next ticks as it works through what it took.
func (c *Consumer) holdLimit() int { return max(100*c.cfg.Count, 2*takeoverPage) }

// TakenOver is the number of entries claimed from dead consumers since New.
func (c *Consumer) TakenOver() int64 { return c.tk.taken.Load() }

func (c *Consumer) maybeTakeover(now time.Time) {
	// Not while the broker is failing, nor until it has answered this
	// consumer again (brokerOK starts the grace): right after an outage the
	// live engines' heartbeats may have expired and not been written yet,
	// and a takeover then would take a live engine's entries.
	if c.cfg.Alive == nil || c.stopping || c.down || now.Sub(c.tk.last) < takeoverEvery ||
		now.Before(c.tk.after) || now.Before(c.retryAt) {
		return
	}
	c.tk.last = now
	c.takeover()
}

// takeover claims the entries of the group's dead consumers, primary lane
// first, and deletes the dead consumers that hold nothing any more.
func (c *Consumer) takeover() {
	var alive func(string) bool
	for _, l := range c.laneList() {
		if c.paused(l) {
			continue // a paused lane's entries stay with the dead consumer until resume
		}
		stream := c.stream(l)
		ctx, cancel := c.op()
		infos, err := c.b.Consumers(ctx, stream, c.cfg.Group)
		cancel()
		if err != nil {
			c.brokerFailed("list consumers", err)
			return
		}
		for _, info := range infos {
			if info.Name == c.cfg.Consumer || info.Idle < takeoverMinIdle {
				continue
			}
			if alive == nil {
				ctx, cancel := c.op()
				alive, err = c.cfg.Alive(ctx)
				cancel()
				if err != nil {
					c.brokerFailed("list engines", err)
					return
				}
			}
			if alive(info.Name) {
				continue
			}
			if info.Pending > 0 && !c.claimFrom(l, info.Name) {
				continue // more than this consumer may hold now, or a broker error
			}
			ctx, cancel := c.op()
			err := c.b.DeleteConsumer(ctx, stream, c.cfg.Group, info.Name)
			cancel()
			if err == nil {
				c.cfg.Logger.Info("deleted the consumer of a stopped engine", "group", c.cfg.Group, "stream", stream, "consumer", info.Name)
			}
		}
	}
}

func (c *Consumer) laneList() []Lane {
	if c.lanes {
		return []Lane{Primary, Backfill}
	}
	return []Lane{Primary}
}

// claimFrom claims dead's pending entries on lane's stream, page by page,
// until it holds none or this consumer holds holdLimit entries. It reports
// whether dead was emptied. Claimed entries are queued ahead of the lane's
// queue: they are older than what this consumer read itself.
func (c *Consumer) claimFrom(l Lane, dead string) bool {
	stream := c.stream(l)
	total := 0
	defer func() {
		if total > 0 {
			c.tk.taken.Add(int64(total))
			c.cfg.Logger.Info("took over the entries of a stopped engine's consumer", "group", c.cfg.Group, "stream", stream, "from", dead, "n", total)
		}
	}()
	for {
		room := c.holdLimit() - len(c.owned)
		if room <= 0 {
			return false
		}
		ctx, cancel := c.op()
		pend, err := c.b.Pending(ctx, lanewaybroker.PendingParams{Stream: stream, Group: c.cfg.Group,
			Start: "-", End: "+", Count: min(room, takeoverPage), Consumer: dead})
		cancel()
		if err != nil {
			c.brokerFailed("pending", err)
			return false
		}
		if len(pend) == 0 {
			return true
		}
		ids := make([]string, len(pend))
		deliveries := make(map[string]int64, len(pend))
		for i, p := range pend {
			ids[i] = p.ID
			deliveries[p.ID] = p.Deliveries + 1 // the claim counts a delivery
		}
		ctx, cancel = c.op()
		got, err := c.b.Claim(ctx, lanewaybroker.ClaimParams{Stream: stream, Group: c.cfg.Group, Consumer: c.cfg.Consumer,
			MinIdle: takeoverMinIdle, IDs: ids, RetryCount: -1, Idle: -1})
		cancel()
		if err != nil {
			c.brokerFailed("claim from dead consumer", err)
			return false
		}
		c.countRead(ReadClaim, len(got))
		total += len(got)
		before := len(c.queue[l])
		c.addStreams([]lanewaybroker.StreamEntries{{Stream: stream, Entries: got}}, deliveries)
		if n := len(c.queue[l]) - before; n > 0 && before > 0 {
			q := c.queue[l]
			c.queue[l] = append(slices.Clone(q[before:]), q[:before]...)
		}
		if len(got) == 0 {
			// Listed but not claimed: another survivor took them first, or
			// their stream entries were trimmed (XCLAIM drops those from
			// the pending list). The next check sees what is left.
			return false
		}
	}
}
