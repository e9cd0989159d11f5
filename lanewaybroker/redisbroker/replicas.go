package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/lanewaybroker"
)

var (
	_ lanewaybroker.ReplicatedPublisher = (*Broker)(nil)
	_ lanewaybroker.ReplicaWaiter       = (*Broker)(nil)
)

// PublishReplicated appends pubs and then waits with WAIT until replicas
// replicas acknowledged them, at most timeout. WAIT counts the writes of
// its own connection, so both run on one dedicated connection. On the
// embedded broker (which has no replicas) it fails without publishing.
func (b *Broker) PublishReplicated(ctx context.Context, pubs []lanewaybroker.Publication, replicas int, timeout time.Duration) ([]string, error) {
	if err := b.errIfEmbedded(); err != nil {
		return nil, err
	}
	if replicas <= 0 {
		return b.Publish(ctx, pubs)
	}
	if len(pubs) == 0 {
		return nil, nil
	}
	if err := b.errIfCluster(); err != nil {
		return nil, err
	}
	conn := b.client.(*redis.Client).Conn()
	defer conn.Close()
	cmds := make([]*redis.StringCmd, len(pubs))
	var wait *redis.IntCmd
	_, err := conn.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, pub := range pubs {
			cmds[i] = p.XAdd(ctx, &redis.XAddArgs{Stream: pub.Stream, ID: "*", Values: []string{"data", pub.Data}})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisbroker: publish %d entries: %w", len(pubs), err)
	}
	wait = conn.Wait(ctx, replicas, timeout)
	acked, err := wait.Result()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: publish %d entries: WAIT %d %d: %w", len(pubs), replicas, timeout.Milliseconds(), err)
	}
	if acked < int64(replicas) {
		return nil, fmt.Errorf("redisbroker: %d entries reached %d of %d replicas within %s: %w", len(pubs), acked, replicas, timeout, lanewaybroker.ErrNotReplicated)
	}
	ids := make([]string, len(cmds))
	for i, c := range cmds {
		ids[i] = c.Val()
	}
	return ids, nil
}

// replicasProbeKey is the key WaitReplicated writes; it expires by itself.
const replicasProbeKey = "laneway:replicas:probe"

// WaitReplicated writes replicasProbeKey and waits with WAIT, on the same
// dedicated connection, until replicas replicas acknowledged it, at most
// timeout.
func (b *Broker) WaitReplicated(ctx context.Context, replicas int, timeout time.Duration) error {
	if err := b.errIfEmbedded(); err != nil {
		return err
	}
	if replicas <= 0 {
		return nil
	}
	if err := b.errIfCluster(); err != nil {
		return err
	}
	conn := b.client.(*redis.Client).Conn()
	defer conn.Close()
	if err := conn.Set(ctx, replicasProbeKey, time.Now().UnixNano(), time.Minute).Err(); err != nil {
		return fmt.Errorf("redisbroker: wait for replicas: %w", err)
	}
	acked, err := conn.Wait(ctx, replicas, timeout).Result()
	if err != nil {
		return fmt.Errorf("redisbroker: wait for replicas: WAIT %d %d: %w", replicas, timeout.Milliseconds(), err)
	}
	if acked < int64(replicas) {
		return fmt.Errorf("redisbroker: the primary's writes reached %d of %d replicas within %s: %w", acked, replicas, timeout, lanewaybroker.ErrNotReplicated)
	}
	return nil
}

// errIfEmbedded refuses to wait for replicas on the embedded broker, which has
// none.
func (b *Broker) errIfEmbedded() error {
	if b.Embedded() || !b.caps.clientUnblock {
		return errors.New("redisbroker: the embedded broker has no replicas to wait for (set min_replicas_acked = 0, or use a replicated Redis)")
	}
	return nil
}

// errIfCluster refuses to wait on a Redis Cluster: WAIT counts one node's
// replicas for one connection's writes, and a batch spans several masters.
func (b *Broker) errIfCluster() error {
	if b.cluster != nil {
		return errors.New("redisbroker: min_replicas_acked is not supported on a Redis Cluster (set it to 0; each master's replicas are not awaited)")
	}
	return nil
}
