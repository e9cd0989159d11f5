package redisbroker

import "github.com/redis/go-redis/v9"

// RedisClient returns the go-redis client under the broker, for features
// that keep small shared state next to the streams (the lane controls: pause
// flags, the shared backfill rate limiter, the governor). The client stays
// owned by the Broker: Close closes it.
func (b *Broker) RedisClient() redis.UniversalClient { return b.client }
