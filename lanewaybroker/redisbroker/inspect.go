package redisbroker

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
)

// Groups is XINFO GROUPS, sorted by name; empty for a missing stream. Lag is
// the server's when it reports one, else counted (countAfter).
func (b *Broker) Groups(ctx context.Context, stream string) ([]lanewaybroker.GroupInfo, error) {
	res, err := b.client.XInfoGroups(ctx, stream).Result()
	if err != nil {
		if isNoSuchKey(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("redisbroker: XINFO GROUPS %q: %w", stream, err)
	}
	out := make([]lanewaybroker.GroupInfo, 0, len(res))
	for _, g := range res {
		last := lanes.NormalizeID(g.LastDeliveredID)
		lag := g.Lag
		if !b.caps.groupLag || lag < 0 {
			// Redis reports no lag when it cannot compute it (deletions past
			// the group's position); miniredis reports XLEN. Count instead.
			if lag, err = b.countAfter(ctx, stream, last); err != nil {
				return nil, err
			}
		}
		out = append(out, lanewaybroker.GroupInfo{
			Name:            g.Name,
			Consumers:       g.Consumers,
			Pending:         g.Pending,
			LastDeliveredID: last,
			Lag:             lag,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// countAfterPage is the XRANGE page size of countAfter.
const countAfterPage = 1000

// countAfter counts the entries of stream with an id above last. It pages
// from both ends at once (entries above last forward, entries up to last from
// the start) and stops when either side is exhausted, so its cost follows
// the smaller side: a caught-up group and a trimmed stream are both cheap.
func (b *Broker) countAfter(ctx context.Context, stream, last string) (int64, error) {
	total, err := b.Len(ctx, stream)
	if err != nil || total == 0 || last == "0-0" {
		return total, err
	}
	var after, before int64
	fwd, bwd := "("+last, "-"
	for {
		msgs, err := b.client.XRangeN(ctx, stream, fwd, "+", countAfterPage).Result()
		if err != nil {
			return 0, fmt.Errorf("redisbroker: count lag of %q: %w", stream, err)
		}
		after += int64(len(msgs))
		if len(msgs) < countAfterPage {
			return after, nil
		}
		fwd = "(" + msgs[len(msgs)-1].ID

		msgs, err = b.client.XRangeN(ctx, stream, bwd, last, countAfterPage).Result()
		if err != nil {
			return 0, fmt.Errorf("redisbroker: count lag of %q: %w", stream, err)
		}
		before += int64(len(msgs))
		if len(msgs) < countAfterPage {
			return max(total-before, 0), nil
		}
		bwd = "(" + msgs[len(msgs)-1].ID
	}
}

// Consumers is XINFO CONSUMERS, sorted by name.
func (b *Broker) Consumers(ctx context.Context, stream, group string) ([]lanewaybroker.ConsumerInfo, error) {
	res, err := b.client.XInfoConsumers(ctx, stream, group).Result()
	if err != nil {
		return nil, b.groupErr("consumers", stream, group, err)
	}
	out := make([]lanewaybroker.ConsumerInfo, len(res))
	for i, c := range res {
		idle := c.Idle
		if !b.caps.consumerIdle {
			idle = b.idleOf(stream, group, c.Name, idle)
		}
		out[i] = lanewaybroker.ConsumerInfo{Name: c.Name, Pending: c.Pending, Idle: max(idle, 0)}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// deleteConsumerScript removes a consumer only when it has no pending
// entries, atomically: XGROUP DELCONSUMER drops the consumer's pending
// entries, so a check followed by a separate delete could lose entries
// delivered in between. Returns {-1, pending} when it refuses, {0, n} when
// done.
var deleteConsumerScript = redis.NewScript(`
local s = redis.call('XPENDING', KEYS[1], ARGV[1])
local cons = s[4]
if cons then
  for _, c in ipairs(cons) do
    if c[1] == ARGV[2] then
      return {-1, tonumber(c[2])}
    end
  end
end
return {0, redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])}
`)

// DeleteConsumer removes consumer from group. It refuses, with an error
// naming the pending count, while the consumer still has pending entries.
// A missing consumer is success.
func (b *Broker) DeleteConsumer(ctx context.Context, stream, group, consumer string) error {
	res, err := deleteConsumerScript.Run(ctx, b.client, []string{stream}, group, consumer).Int64Slice()
	if err != nil {
		return b.groupErr("delete consumer", stream, group, err)
	}
	if len(res) == 2 && res[0] < 0 {
		return fmt.Errorf("redisbroker: consumer %q of group %q on %q still has %d pending entries; claim or ack them first", consumer, group, stream, res[1])
	}
	b.seenMu.Lock()
	delete(b.seen, consumerKey{stream, group, consumer})
	b.seenMu.Unlock()
	return nil
}

// scanCount is the COUNT hint of SCAN.
const scanCount = 1000

// Streams lists the stream keys matching pattern (SCAN MATCH pattern TYPE
// stream), sorted.
func (b *Broker) Streams(ctx context.Context, pattern string) ([]string, error) {
	keys, err := b.scan(ctx, pattern, "stream")
	if err != nil {
		return nil, fmt.Errorf("redisbroker: list streams %q: %w", pattern, err)
	}
	return keys, nil
}

// scan is SCAN MATCH pattern TYPE typ on the server, or on every master of
// a cluster (a node's SCAN sees only the keys of its own slots).
func (b *Broker) scan(ctx context.Context, pattern, typ string) ([]string, error) {
	var mu sync.Mutex
	seen := map[string]struct{}{}
	err := b.forEachNode(ctx, func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.ScanType(ctx, cursor, pattern, scanCount, typ).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			for _, k := range keys {
				seen[k] = struct{}{}
			}
			mu.Unlock()
			if next == 0 {
				return nil
			}
			cursor = next
		}
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}
