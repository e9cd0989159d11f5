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
//
// The primary lane's entries are production events: the first survivor to
// see them takes them all, so none waits for another survivor's check.
// The backfill lane's are split: on first sight a survivor takes only its
// share, what brings its own backlog up to the average of the live
// consumers' backlogs once the dead one's entries are counted in (an idle
// or just restarted engine takes most, a survivor already holding a long
// backlog little or nothing). Taking all of it made the first survivor to
// look the bottleneck of the drain while its peers sat idle; whatever the
// shares leave (a peer that did not take its part) is taken whole by the
// next check after takeoverShareFor.

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
	// takeoverShareFor is how long after a dead consumer is first seen a
	// survivor takes only its share of its backfill entries: long enough
	// for every survivor's check (takeoverEvery) to have run once.
	takeoverShareFor = 2*takeoverEvery + takeoverEvery/2
)

// takeoverState is the dispatcher's takeover bookkeeping.
type takeoverState struct {
	last  time.Time // last check
	after time.Time // no takeover before (grace after the start or a broker outage)
	// reclaimAfter is the same for the ClaimIdle reclaim.
	reclaimAfter time.Time
	taken        atomic.Int64
	// seen is when each dead consumer (by stream and name) was first seen,
	// for takeoverShareFor.
	seen map[string]time.Time
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
	seen := map[string]time.Time{}
	defer func() { c.tk.seen = seen }()
	now := time.Now()
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
		if !slices.ContainsFunc(infos, func(i lanewaybroker.ConsumerInfo) bool {
			return i.Name != c.cfg.Consumer && i.Idle >= takeoverMinIdle
		}) {
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
		var dead []lanewaybroker.ConsumerInfo
		for _, info := range infos {
			if info.Name != c.cfg.Consumer && info.Idle >= takeoverMinIdle && !alive(info.Name) {
				dead = append(dead, info)
			}
		}
		quota := c.takeoverQuota(infos, alive, dead)
		for _, info := range dead {
			key := stream + "\x00" + info.Name
			first, ok := c.tk.seen[key]
			if !ok {
				first = now
			}
			seen[key] = first
			limit := -1 // all of them
			if l == Backfill && now.Sub(first) < takeoverShareFor {
				limit = quota
			}
			if info.Pending > 0 {
				n, emptied := c.claimFrom(l, info.Name, limit)
				quota -= n
				if !emptied {
					continue // its share taken, more than this consumer may hold, or a broker error
				}
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

// takeoverQuota is how many of the dead consumers' entries on the lane infos describes this
// consumer takes on first sight: what brings its backlog (its pending
// entries) to the average of the live consumers' once the dead ones'
// entries are shared among them.
func (c *Consumer) takeoverQuota(infos []lanewaybroker.ConsumerInfo, alive func(string) bool, dead []lanewaybroker.ConsumerInfo) int {
	var total, mine int64
	live := 1 // this consumer, listed or not
	for _, info := range infos {
		switch {
		case info.Name == c.cfg.Consumer:
			mine = info.Pending
			total += info.Pending
		case alive(info.Name):
			live++
			total += info.Pending
		}
	}
	for _, d := range dead {
		total += d.Pending
	}
	share := (total + int64(live) - 1) / int64(live) // rounded up, so the shares cover it all
	return int(max(share-mine, 0))
}
func (c *Consumer) laneList() []Lane {
	if c.lanes {
		return []Lane{Primary, Backfill}
	}
	return []Lane{Primary}
}

// claimFrom claims dead's pending entries on lane's stream, page by page,
// until it holds none, limit entries are claimed (limit < 0: no limit) or
// this consumer holds holdLimit entries. It returns how many it claimed and
// whether dead was emptied. Claimed entries are queued ahead of the lane's
// queue: they are older than what this consumer read itself.
func (c *Consumer) claimFrom(l Lane, dead string, limit int) (claimed int, emptied bool) {
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
		if limit >= 0 {
			room = min(room, limit-total)
		}
		if room <= 0 {
			return total, false
		}
		ctx, cancel := c.op()
		pend, err := c.b.Pending(ctx, lanewaybroker.PendingParams{Stream: stream, Group: c.cfg.Group,
			Start: "-", End: "+", Count: min(room, takeoverPage), Consumer: dead})
		cancel()
		if err != nil {
			c.brokerFailed("pending", err)
			return total, false
		}
		if len(pend) == 0 {
			return total, true
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
			return total, false
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
			return total, false
		}
	}
}
