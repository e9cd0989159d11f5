package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/lanewaybroker"
)

// Publish appends every publication with XADD <stream> * data <Data> in one
// pipelined round trip and returns the ids in order. On error no ids are
// returned; some entries may have been appended.
func (b *Broker) Publish(ctx context.Context, pubs []lanewaybroker.Publication) ([]string, error) {
	if len(pubs) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(pubs))
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, pub := range pubs {
			cmds[i] = p.XAdd(ctx, &redis.XAddArgs{Stream: pub.Stream, ID: "*", Values: []string{"data", pub.Data}})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisbroker: publish %d entries: %w", len(pubs), err)
	}
	ids := make([]string, len(cmds))
	for i, c := range cmds {
		ids[i] = c.Val()
	}
	return ids, nil
}

// EnsureGroup is XGROUP CREATE stream group 0 MKSTREAM; an existing group
// (BUSYGROUP) is success.
func (b *Broker) EnsureGroup(ctx context.Context, stream, group string) error {
	err := b.client.XGroupCreateMkStream(ctx, stream, group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("redisbroker: create group %q on %q: %w", group, stream, err)
	}
	return nil
}

// ReadGroup is one XREADGROUP GROUP g c [COUNT n] [BLOCK ms] STREAMS s1..sn
// > .. >. Block 0 sends no BLOCK argument (BLOCK 0 would wait forever); a
// Block below one millisecond is rounded up to 1 ms for the same reason.
//
// A blocked read returns promptly when ctx is done: with ctx's error when it
// read nothing, or with the entries it did read (they are pending on the
// consumer now, so they are returned rather than stranded).
func (b *Broker) ReadGroup(ctx context.Context, p lanewaybroker.ReadParams) ([]lanewaybroker.StreamEntries, error) {
	if len(p.Streams) == 0 {
		return nil, errors.New("redisbroker: ReadGroup needs at least one stream")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	streams := make([]string, 0, 2*len(p.Streams))
	streams = append(streams, p.Streams...)
	for range p.Streams {
		streams = append(streams, ">")
	}
	args := &redis.XReadGroupArgs{
		Group:    p.Group,
		Consumer: p.Consumer,
		Streams:  streams,
		Count:    int64(max(p.Count, 0)),
		Block:    -1, // go-redis: negative omits BLOCK
	}
	b.touch(p.Streams, p.Group, p.Consumer)

	var res []redis.XStream
	var err error
	if p.Batches > 1 {
		if p.Block > 0 {
			return nil, errors.New("redisbroker: ReadGroup with Batches cannot block")
		}
		res, err = b.readPipelined(ctx, args, p.Batches)
	} else {
		res, err = b.readGroup(ctx, args, p.Block)
	}
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	if err != nil {
		if ctx.Err() != nil && len(res) == 0 {
			return nil, ctx.Err()
		}
		if isNoGroup(err) {
			return nil, fmt.Errorf("redisbroker: read group %q on %v: %w: %w", p.Group, p.Streams, lanewaybroker.ErrNoGroup, err)
		}
		return nil, fmt.Errorf("redisbroker: read group %q on %v: %w", p.Group, p.Streams, err)
	}
	out := make([]lanewaybroker.StreamEntries, 0, len(res))
	for _, s := range res {
		if len(s.Messages) == 0 {
			continue
		}
		out = append(out, lanewaybroker.StreamEntries{Stream: s.Stream, Entries: toEntries(s.Messages)})
	}
	if len(out) == 0 {
		out = nil
		if err := ctx.Err(); err != nil && p.Block > 0 {
			return nil, err
		}
	}
	return out, nil
}

// readPipelined sends n non-blocking XREADGROUPs of args in one pipeline
// and joins their replies per stream, in order. A read that found nothing
// answers nil (redis.Nil), which is not an error here.
func (b *Broker) readPipelined(ctx context.Context, args *redis.XReadGroupArgs, n int) ([]redis.XStream, error) {
	cmds := make([]*redis.XStreamSliceCmd, n)
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = p.XReadGroup(ctx, args)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var out []redis.XStream
	for _, c := range cmds {
		res, cerr := c.Result()
		if errors.Is(cerr, redis.Nil) {
			continue
		}
		if cerr != nil {
			return nil, cerr
		}
		for _, s := range res {
			if i := slices.IndexFunc(out, func(o redis.XStream) bool { return o.Stream == s.Stream }); i >= 0 {
				out[i].Messages = append(out[i].Messages, s.Messages...)
			} else {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// Ack sends one XACK per AckParams in one round trip (pipelined when there
// are several).
func (b *Broker) Ack(ctx context.Context, acks []lanewaybroker.AckParams) error {
	n := 0
	for _, a := range acks {
		if len(a.IDs) > 0 {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if n == 1 {
		// The usual case, one stream's batch: a plain command costs the
		// same round trip without the pipeline's own bookkeeping.
		for _, a := range acks {
			if len(a.IDs) > 0 {
				if err := b.client.XAck(ctx, a.Stream, a.Group, a.IDs...).Err(); err != nil {
					return fmt.Errorf("redisbroker: ack (1 stream): %w", err)
				}
			}
		}
		return nil
	}
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, a := range acks {
			if len(a.IDs) > 0 {
				p.XAck(ctx, a.Stream, a.Group, a.IDs...)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisbroker: ack (%d streams): %w", n, err)
	}
	return nil
}

// Pending is XPENDING stream group [IDLE ms] start end count [consumer].
// Start and End default to "-" and "+", Count to PendingCountDefault.
func (b *Broker) Pending(ctx context.Context, p lanewaybroker.PendingParams) ([]lanewaybroker.PendingEntry, error) {
	res, err := b.client.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream:   p.Stream,
		Group:    p.Group,
		Idle:     ceilMs(p.MinIdle),
		Start:    orDefault(p.Start, "-"),
		End:      orDefault(p.End, "+"),
		Count:    int64(countOr(p.Count, PendingCountDefault)),
		Consumer: p.Consumer,
	}).Result()
	if err != nil {
		return nil, b.groupErr("pending", p.Stream, p.Group, err)
	}
	out := make([]lanewaybroker.PendingEntry, len(res))
	for i, e := range res {
		out[i] = lanewaybroker.PendingEntry{ID: e.ID, Consumer: e.Consumer, Idle: e.Idle, Deliveries: e.RetryCount}
	}
	return out, nil
}

// Claim is XCLAIM stream group consumer min-idle ids... [IDLE ms]
// [RETRYCOUNT n]. IDLE is sent when p.Idle >= 0 and RETRYCOUNT when
// p.RetryCount >= 0: note that the zero ClaimParams therefore sets both to 0;
// pass -1 to leave them alone (the delivery count is then incremented and the
// idle time reset, as for any delivery). Entries deleted from the stream are
// not returned (Redis 7 drops them from the pending list).
func (b *Broker) Claim(ctx context.Context, p lanewaybroker.ClaimParams) ([]lanewaybroker.Entry, error) {
	if len(p.IDs) == 0 {
		return nil, nil
	}
	b.touch([]string{p.Stream}, p.Group, p.Consumer)
	if !b.caps.claimMinIdle {
		return b.emulatedClaim(ctx, p)
	}
	msgs, err := b.xclaim(ctx, p, p.IDs)
	if err != nil {
		return nil, b.groupErr("claim", p.Stream, p.Group, err)
	}
	return toEntries(msgs), nil
}

func (b *Broker) xclaim(ctx context.Context, p lanewaybroker.ClaimParams, ids []string) ([]redis.XMessage, error) {
	args := make([]any, 0, 9+len(ids))
	args = append(args, "xclaim", p.Stream, p.Group, p.Consumer, ceilMs(p.MinIdle).Milliseconds())
	for _, id := range ids {
		args = append(args, id)
	}
	if p.Idle >= 0 {
		args = append(args, "idle", p.Idle.Milliseconds())
	}
	if p.RetryCount >= 0 {
		args = append(args, "retrycount", p.RetryCount)
	}
	cmd := redis.NewXMessageSliceCmd(ctx, args...)
	_ = b.client.Process(ctx, cmd)
	return cmd.Result()
}

// AutoClaim is XAUTOCLAIM stream group consumer min-idle start COUNT n.
// Start defaults to "0-0", Count to AutoClaimCountDefault.
func (b *Broker) AutoClaim(ctx context.Context, p lanewaybroker.AutoClaimParams) (lanewaybroker.AutoClaimResult, error) {
	p.Start = orDefault(p.Start, "0-0")
	p.Count = countOr(p.Count, AutoClaimCountDefault)
	b.touch([]string{p.Stream}, p.Group, p.Consumer)
	if !b.caps.autoClaimDeleted {
		return b.emulatedAutoClaim(ctx, p)
	}
	msgs, next, deleted, err := b.client.XAutoClaimWithDeleted(ctx, &redis.XAutoClaimArgs{
		Stream:   p.Stream,
		Group:    p.Group,
		Consumer: p.Consumer,
		MinIdle:  ceilMs(p.MinIdle),
		Start:    p.Start,
		Count:    int64(p.Count),
	}).Result()
	if err != nil {
		return lanewaybroker.AutoClaimResult{}, b.groupErr("autoclaim", p.Stream, p.Group, err)
	}
	return lanewaybroker.AutoClaimResult{Entries: toEntries(msgs), Next: next, Deleted: deleted}, nil
}
