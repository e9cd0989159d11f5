package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// SetKey is SET key value PX ttl (no expiry when ttl <= 0).
func (b *Broker) SetKey(ctx context.Context, key, value string, ttl time.Duration) error {
	if ttl < 0 {
		ttl = 0
	}
	if err := b.client.Set(ctx, key, value, ttl).Err(); err != nil {
		return fmt.Errorf("redisbroker: SET %q: %w", key, err)
	}
	return nil
}

// mgetBatch is the number of keys per MGET in GetKeys.
const mgetBatch = 500

// GetKeys returns the string keys matching pattern with their values (SCAN
// then MGET; on a cluster, pipelined GETs, as MGET refuses keys of several
// slots); keys that expire in between are left out.
func (b *Broker) GetKeys(ctx context.Context, pattern string) (map[string]string, error) {
	keys, err := b.scan(ctx, pattern, "string")
	if err != nil {
		return nil, fmt.Errorf("redisbroker: scan keys %q: %w", pattern, err)
	}
	out := make(map[string]string, len(keys))
	for len(keys) > 0 {
		n := min(len(keys), mgetBatch)
		vals, err := b.mget(ctx, keys[:n])
		if err != nil {
			return nil, fmt.Errorf("redisbroker: MGET %q: %w", pattern, err)
		}
		for i, v := range vals {
			if s, ok := v.(string); ok {
				out[keys[i]] = s
			}
		}
		keys = keys[n:]
	}
	return out, nil
}

// DeleteKey is DEL key.
func (b *Broker) DeleteKey(ctx context.Context, key string) error {
	if err := b.client.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("redisbroker: DEL %q: %w", key, err)
	}
	return nil
}

func (b *Broker) mget(ctx context.Context, keys []string) ([]any, error) {
	if b.cluster == nil {
		return b.client.MGet(ctx, keys...).Result()
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	vals := make([]any, len(keys))
	for i, c := range cmds {
		if v, err := c.Result(); err == nil {
			vals[i] = v
		}
	}
	return vals, nil
}
