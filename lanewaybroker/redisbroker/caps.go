package redisbroker

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
)

// caps lists the Redis 7 behaviours the Broker relies on that the embedded
// server (miniredis v2.40.0, cmd_stream.go) lacks. A false field makes the
// Broker emulate the behaviour with other commands. Real Redis has them all.
//
// Checked and NOT gaps (miniredis matches Redis for what the Broker uses):
// XREADGROUP BLOCK over several streams wakes on whichever stream gets data
// first (every write broadcasts to the blocked readers, which re-run the
// whole read); XPENDING extended form with IDLE and a consumer filter;
// XCLAIM's IDLE, RETRYCOUNT and JUSTID options; XTRIM MINID; XGROUP
// DELCONSUMER; SCAN ... TYPE stream; XGROUP CREATE ... MKSTREAM; Lua
// scripts calling XPENDING and XGROUP (DeleteConsumer).
type caps struct {
	// clientUnblock: CLIENT ID and CLIENT UNBLOCK exist, so a blocked read
	// is cancelled at once when its context ends. miniredis has neither;
	// its blocked reads are cut into slices of embeddedBlockSlice and the
	// context is checked between slices (block.go).
	clientUnblock bool
	// groupLag: XINFO GROUPS reports lag. miniredis reports the stream
	// length as lag (and no entries-read); the Broker counts it instead
	// (countAfter).
	groupLag bool
	// claimMinIdle: XCLAIM honours min-idle-time and drops entries deleted
	// from the stream from the pending list. miniredis parses min-idle-time
	// but ignores it (it claims entries that are not idle, so two claimers
	// both win), and it keeps deleted entries pending forever. The Broker
	// filters the ids with XPENDING IDLE and XRANGE first, under b.emu.
	claimMinIdle bool
	// autoClaimDeleted: XAUTOCLAIM removes pending entries whose stream
	// entry was deleted and reports them (its third reply element, Redis
	// 7.0). miniredis skips them silently and leaves them pending, so they
	// would never be dead-lettered. The Broker emulates XAUTOCLAIM with
	// XPENDING IDLE, XRANGE, XACK (the deleted ones) and XCLAIM, under b.emu.
	autoClaimDeleted bool
	// consumerIdle: XINFO CONSUMERS reports each consumer's idle time.
	// miniredis only updates it on XCLAIM (a consumer that only reads shows
	// -1); the Broker remembers when each consumer last read or claimed
	// through it.
	consumerIdle bool
	// trimMinID: XTRIM MINID costs time in proportion to the entries it
	// removes. miniredis deletes them one at a time, each delete moving the
	// rest of the stream, so trimming 20,000 entries from a 20,000-entry
	// stream held the whole server (every client's reads and writes) for
	// about half a second: a production-lane stall each time the retention
	// trimmer ran after a backfill. The Broker trims in chunks instead
	// (trimMinIDChunked), each an atomic script whose cost is the chunk's.
	// (Real Redis trims fast but still in one command: trimMinIDRedis cuts
	// it into bounded commands too.)
	trimMinID bool
}

func redisCaps() caps {
	return caps{clientUnblock: true, groupLag: true, claimMinIdle: true, autoClaimDeleted: true, consumerIdle: true, trimMinID: true}
}

func miniredisCaps() caps { return caps{} }

// consumerKey names one consumer of one group of one stream.
type consumerKey struct{ stream, group, consumer string }

// touch records that consumer interacted with streams, when the server does
// not track it.
func (b *Broker) touch(streams []string, group, consumer string) {
	if b.caps.consumerIdle {
		return
	}
	now := time.Now()
	b.seenMu.Lock()
	for _, s := range streams {
		b.seen[consumerKey{s, group, consumer}] = now
	}
	b.seenMu.Unlock()
}

// idleOf is the consumer's idle time as tracked by the Broker, or the
// server's value when the Broker never saw the consumer.
func (b *Broker) idleOf(stream, group, consumer string, server time.Duration) time.Duration {
	b.seenMu.Lock()
	t, ok := b.seen[consumerKey{stream, group, consumer}]
	b.seenMu.Unlock()
	if !ok {
		return server
	}
	return time.Since(t)
}

// pendingState is what the emulations learn about one pending id.
type pendingState struct {
	id      string
	pending bool // in the group's pending list and idle at least MinIdle
	exists  bool // still in the stream
}

// inspect looks up ids in one pipelined round trip: whether each is pending
// for at least minIdle (XPENDING IDLE ms id id 1) and still in the stream
// (XRANGE id id).
func (b *Broker) inspect(ctx context.Context, stream, group string, minIdle time.Duration, ids []string) ([]pendingState, error) {
	pcmds := make([]*redis.XPendingExtCmd, len(ids))
	rcmds := make([]*redis.XMessageSliceCmd, len(ids))
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			pcmds[i] = p.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: group, Idle: ceilMs(minIdle), Start: id, End: id, Count: 1})
			rcmds[i] = p.XRangeN(ctx, stream, id, id, 1)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]pendingState, len(ids))
	for i, id := range ids {
		out[i] = pendingState{id: id, pending: len(pcmds[i].Val()) > 0, exists: len(rcmds[i].Val()) > 0}
	}
	return out, nil
}

// emulatedClaim is XCLAIM for a server that ignores min-idle-time: only ids
// pending for at least MinIdle are claimed, and pending ids whose entry was
// deleted are removed from the pending list (as Redis 7's XCLAIM does,
// whatever their idle time).
func (b *Broker) emulatedClaim(ctx context.Context, p lanewaybroker.ClaimParams) ([]lanewaybroker.Entry, error) {
	b.emu.Lock()
	defer b.emu.Unlock()

	// The deleted check must not depend on idle time, so look up with
	// MinIdle 0 first when a MinIdle is set.
	states, err := b.inspect(ctx, p.Stream, p.Group, 0, p.IDs)
	if err != nil {
		return nil, b.groupErr("claim", p.Stream, p.Group, err)
	}
	var deleted, candidates []string
	for _, s := range states {
		switch {
		case s.pending && !s.exists:
			deleted = append(deleted, s.id)
		case s.pending:
			candidates = append(candidates, s.id)
		}
	}
	if len(deleted) > 0 {
		if err := b.client.XAck(ctx, p.Stream, p.Group, deleted...).Err(); err != nil {
			return nil, b.groupErr("claim", p.Stream, p.Group, err)
		}
	}
	if p.MinIdle > 0 && len(candidates) > 0 {
		states, err := b.inspect(ctx, p.Stream, p.Group, p.MinIdle, candidates)
		if err != nil {
			return nil, b.groupErr("claim", p.Stream, p.Group, err)
		}
		candidates = candidates[:0]
		for _, s := range states {
			if s.pending && s.exists {
				candidates = append(candidates, s.id)
			}
		}
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	msgs, err := b.xclaim(ctx, p, candidates)
	if err != nil {
		return nil, b.groupErr("claim", p.Stream, p.Group, err)
	}
	return toEntries(msgs), nil
}

// emulatedAutoClaim is XAUTOCLAIM for a server that neither reports nor
// removes pending entries whose stream entry was deleted: it lists up to
// Count pending ids idle at least MinIdle from Start (XPENDING IDLE), acks
// the deleted ones and reports them in Deleted, and claims the rest with
// XCLAIM (which, like XAUTOCLAIM, counts a delivery). Next is the id after
// the last one examined, or "0-0" when the pending list is exhausted.
func (b *Broker) emulatedAutoClaim(ctx context.Context, p lanewaybroker.AutoClaimParams) (lanewaybroker.AutoClaimResult, error) {
	b.emu.Lock()
	defer b.emu.Unlock()

	pend, err := b.client.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: p.Stream,
		Group:  p.Group,
		Idle:   ceilMs(p.MinIdle),
		Start:  p.Start,
		End:    "+",
		Count:  int64(p.Count),
	}).Result()
	if err != nil {
		return lanewaybroker.AutoClaimResult{}, b.groupErr("autoclaim", p.Stream, p.Group, err)
	}
	res := lanewaybroker.AutoClaimResult{Next: "0-0"}
	if len(pend) == 0 {
		return res, nil
	}
	if len(pend) == p.Count {
		res.Next = lanes.NextID(pend[len(pend)-1].ID)
	}
	ids := make([]string, len(pend))
	for i, e := range pend {
		ids[i] = e.ID
	}
	states, err := b.inspect(ctx, p.Stream, p.Group, 0, ids)
	if err != nil {
		return lanewaybroker.AutoClaimResult{}, b.groupErr("autoclaim", p.Stream, p.Group, err)
	}
	var claim []string
	for _, s := range states {
		switch {
		case !s.pending:
			// acked since XPENDING listed it
		case !s.exists:
			res.Deleted = append(res.Deleted, s.id)
		default:
			claim = append(claim, s.id)
		}
	}
	if len(res.Deleted) > 0 {
		if err := b.client.XAck(ctx, p.Stream, p.Group, res.Deleted...).Err(); err != nil {
			return lanewaybroker.AutoClaimResult{}, b.groupErr("autoclaim", p.Stream, p.Group, err)
		}
	}
	if len(claim) > 0 {
		msgs, err := b.xclaim(ctx, lanewaybroker.ClaimParams{
			Stream:     p.Stream,
			Group:      p.Group,
			Consumer:   p.Consumer,
			MinIdle:    p.MinIdle,
			RetryCount: -1,
			Idle:       -1,
		}, claim)
		if err != nil {
			return lanewaybroker.AutoClaimResult{}, b.groupErr("autoclaim", p.Stream, p.Group, err)
		}
		res.Entries = toEntries(msgs)
	}
	return res, nil
}
