package consumer

import (
	"sync"
	"sync/atomic"
	"time"
)

// Gate extends primary-before-backfill over several consumers of one
// engine: the consumers of one handler on the partitions of one category.
// Each partition has its own consumer (its two lanes are one slot on a
// cluster, so one blocking read covers them, but two partitions' lanes are
// not), and each schedules its own lanes; the gate makes a consumer start no
// backfill message while another member has primary work: primary entries
// queued (or in flight, at concurrency 1), or possibly waiting in Redis
// (before its first read of primary, and after a read that filled its
// COUNT with primary entries).
//
// The gate holds backfill only: primary never waits for it, so members
// cannot wait on each other in a circle. A member whose primary lane is
// paused has no primary work. Build one with NewGate and pass it, in
// Config.Gate, to every member before any starts.
type Gate struct {
	mu      sync.Mutex
	busy    atomic.Int64 // members with primary work
	members map[*gateMember]struct{}
}

// NewGate returns a gate with no members.
func NewGate() *Gate { return &Gate{members: map[*gateMember]struct{}{}} }

// gateMember is one consumer's place in a Gate.
type gateMember struct {
	g    *Gate
	busy atomic.Bool
	// wake is signalled (never blocking) when another member's primary
	// work ended, so a consumer holding backfill looks again.
	wake chan struct{}
}

// join adds a member with primary work: until its first read of primary
// it does not know that it has none.
func (g *Gate) join() *gateMember {
	m := &gateMember{g: g, wake: make(chan struct{}, 1)}
	m.busy.Store(true)
	g.mu.Lock()
	g.members[m] = struct{}{}
	g.busy.Add(1)
	g.mu.Unlock()
	return m
}

// set records whether the member has primary work; when its work ends
// the others are woken.
func (m *gateMember) set(busy bool) {
	if m.busy.Load() == busy {
		return
	}
	g := m.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, in := g.members[m]; !in || m.busy.Load() == busy {
		return
	}
	m.busy.Store(busy)
	if busy {
		g.busy.Add(1)
		return
	}
	g.busy.Add(-1)
	for o := range g.members {
		if o != m {
			select {
			case o.wake <- struct{}{}:
			default:
			}
		}
	}
}

// leave removes the member (its consumer stopped): it holds no one.
func (m *gateMember) leave() {
	m.set(false)
	m.g.mu.Lock()
	delete(m.g.members, m)
	m.g.mu.Unlock()
}

// held reports whether another member has primary work. It is safe to
// call from any goroutine (the workers check it between backfill messages).
func (m *gateMember) held() bool {
	n := m.g.busy.Load()
	if m.busy.Load() {
		n--
	}
	return n > 0
}

// gateHeld is held for the consumer's member, false without a gate.
func (c *Consumer) gateHeld() bool { return c.gate != nil && c.gate.held() }

// gateWake is the member's wake channel, or nil (never ready).
func (c *Consumer) gateWake() <-chan struct{} {
	if c.gate == nil {
		return nil
	}
	return c.gate.wake
}

// reportGate tells the gate whether this consumer has primary work now:
// the rule one consumer applies to its own lanes, stretched over the
// gate. Queued primary entries hold backfill; primary in flight holds it
// only at concurrency 1, where it holds the one slot (above it, backfill
// runs beside primary in flight, on the slots it may use).
func (c *Consumer) reportGate() {
	if c.gate == nil {
		return
	}
	busy := !c.paused(Primary) && (c.primaryUnknown || c.pDecoding > 0 || len(c.queue[Primary]) > 0 ||
		(c.cfg.Concurrency <= 1 && c.sl.PrimaryInflight > 0))
	c.gate.set(busy)
}

// sawPrimary records a completed read of primary that returned n primary
// entries of a batch of count: a full batch may have more behind it.
func (c *Consumer) sawPrimary(n, count int) {
	c.primaryUnknown = n >= count
}

// readBlock is the BLOCK of the next read: none while a gated consumer
// does not know whether primary entries wait, so the other members learn
// it within a round trip rather than after a BLOCK on empty lanes.
func (c *Consumer) readBlock() time.Duration {
	if c.gate != nil && c.primaryUnknown {
		return 0
	}
	return c.cfg.Block
}
