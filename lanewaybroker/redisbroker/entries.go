package redisbroker

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/lanewaybroker"
)

// Len is XLEN (0 for a missing stream).
func (b *Broker) Len(ctx context.Context, stream string) (int64, error) {
	n, err := b.client.XLen(ctx, stream).Result()
	if err != nil {
		return 0, fmt.Errorf("redisbroker: XLEN %q: %w", stream, err)
	}
	return n, nil
}

// Range is XRANGE stream start end [COUNT count].
func (b *Broker) Range(ctx context.Context, stream, start, end string, count int) ([]lanewaybroker.Entry, error) {
	var msgs []redis.XMessage
	var err error
	if count > 0 {
		msgs, err = b.client.XRangeN(ctx, stream, start, end, int64(count)).Result()
	} else {
		msgs, err = b.client.XRange(ctx, stream, start, end).Result()
	}
	if err != nil {
		return nil, fmt.Errorf("redisbroker: XRANGE %q %s %s: %w", stream, start, end, err)
	}
	return toEntries(msgs), nil
}

// Delete is XDEL.
func (b *Broker) Delete(ctx context.Context, stream string, ids ...string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := b.client.XDel(ctx, stream, ids...).Result()
	if err != nil {
		return 0, fmt.Errorf("redisbroker: XDEL %q: %w", stream, err)
	}
	return n, nil
}

// TrimMinID is XTRIM stream MINID = minID: it removes the entries whose id
// is below minID and returns how many.
func (b *Broker) TrimMinID(ctx context.Context, stream, minID string) (int64, error) {
	var n int64
	var err error
	if b.caps.trimMinID {
		n, err = b.trimMinIDRedis(ctx, stream, minID)
	} else {
		n, err = b.trimMinIDChunked(ctx, stream, minID)
	}
	if err != nil {
		return n, fmt.Errorf("redisbroker: XTRIM %q MINID %s: %w", stream, minID, err)
	}
	return n, nil
}

// trimChunk bounds the entries one trimMinIDScript run removes, and so how
// long it holds the embedded server.
const trimChunk = 500

// trimChunkRedis bounds the entries one approximate XTRIM removes on Redis
// (~0.1 µs each): Redis runs one command at a time, and one exact trim of a
// drained 100,000-entry backfill held it for ~12 ms, delaying every
// production read and write meanwhile; in chunks no command takes 1 ms.
const trimChunkRedis = 5000

// trimMinIDRedis removes the entries below minID on Redis: approximate
// trims (`~`, whole stream nodes, at most trimChunkRedis entries each) until
// one removes nothing, then one exact trim for the few left in the first
// node. Entries from minID on are never removed, as with one exact trim.
func (b *Broker) trimMinIDRedis(ctx context.Context, stream, minID string) (int64, error) {
	var total int64
	for {
		n, err := b.client.XTrimMinIDApprox(ctx, stream, minID, trimChunkRedis).Result()
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			break
		}
	}
	n, err := b.client.XTrimMinID(ctx, stream, minID).Result()
	return total + n, err
}

// trimMinIDScript removes at most ARGV[2] of the oldest entries below
// ARGV[1] and returns how many it removed. It finds them with XRANGE (the
// cost of the chunk) and cuts them with XTRIM MAXLEN, which the embedded
// server does in constant time. Atomic: no entry can be added or deleted
// between the count and the cut, so exactly the entries below ARGV[1] go.
var trimMinIDScript = redis.NewScript(`
local old = redis.call('XRANGE', KEYS[1], '-', '(' .. ARGV[1], 'COUNT', ARGV[2])
local n = #old
if n > 0 then
  local len = redis.call('XLEN', KEYS[1])
  redis.call('XTRIM', KEYS[1], 'MAXLEN', string.format('%d', len - n))
end
return n
`)

// trimMinIDChunked is TrimMinID for the embedded server (caps.trimMinID),
// in chunks of trimChunk entries, so other clients run between them.
func (b *Broker) trimMinIDChunked(ctx context.Context, stream, minID string) (int64, error) {
	var total int64
	for {
		n, err := trimMinIDScript.Run(ctx, b.client, []string{stream}, minID, trimChunk).Int64()
		total += n
		if err != nil || n < trimChunk {
			return total, err
		}
	}
}
