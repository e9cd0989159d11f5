package redisbroker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/lanewayconfig"
)

// Redis Cluster.
//
// A broker URL "redis+cluster://[user:password@]h1:p1,h2:p2,.../" (or
// "rediss+cluster://" for TLS) opens a go-redis ClusterClient seeded with
// those nodes; it discovers the rest of the cluster and follows MOVED and
// ASK redirections by itself. Every command the Broker sends touches one
// key, except XREADGROUP over several streams, which Redis accepts only
// when all of them hash to one slot: the stream names of a lane pair carry a
// common hash tag in cluster mode (internal/lanes), so they always do.
// Pipelines (Publish, Ack) are split per node by the client. SCAN sees one
// node's keys only, so Streams and GetKeys scan every master.
//
// Blocking reads run on a dedicated connection to the master serving the
// first stream's slot (block.go), so that CLIENT UNBLOCK, sent to that same
// master, can cut them short. When the slot moves (a reshard) the read on
// that connection answers MOVED or ASK, or UNBLOCKED when the key left the
// node while the read was blocked; the Broker then refreshes its slot map
// and reads once through the ClusterClient, which follows the redirection.

// IsClusterURL reports whether url names a Redis Cluster
// ("redis+cluster://" or "rediss+cluster://").
func IsClusterURL(u string) bool { return lanewayconfig.IsClusterURL(u) }

// ParseClusterURL reads "redis+cluster://[user[:password]@]h1:p1,h2:p2[/0][?opt=v]"
// into go-redis cluster options (see lanewayconfig.ParseClusterURL).
func ParseClusterURL(raw string) (*redis.ClusterOptions, error) {
	return lanewayconfig.ParseClusterURL(raw)
}

func applyClusterOptions(co *redis.ClusterOptions, o Options) {
	co.PoolSize = o.PoolSize
	co.ReadTimeout = o.ReadTimeout
	co.WriteTimeout = o.WriteTimeout
	co.DialTimeout = o.ConnectTimeout
	if o.ClientName != "" {
		co.ClientName = o.ClientName
	}
	co.ContextTimeoutEnabled = true
	if co.TLSConfig != nil && o.TLS != nil {
		t := o.TLS.Clone()
		if t.ServerName == "" {
			t.ServerName = co.TLSConfig.ServerName
		}
		co.TLSConfig = t
	}
}

// openCluster is Open for a redis+cluster:// URL.
func openCluster(ctx context.Context, raw string, opts Options) (*Broker, error) {
	co, err := ParseClusterURL(raw)
	if err != nil {
		return nil, redactErr(fmt.Errorf("redisbroker: invalid Redis Cluster URL %q: %w", raw, err), raw)
	}
	applyClusterOptions(co, opts)
	cc := redis.NewClusterClient(co)
	addr := strings.Join(co.Addrs, ",")
	b := newBroker(cc, addr, opts, redisCaps())
	b.cluster = cc

	cctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	fail := func(err error) (*Broker, error) {
		_ = cc.Close()
		return nil, redactErr(err, raw)
	}
	if err := cc.Ping(cctx).Err(); err != nil {
		if strings.Contains(err.Error(), "cluster support disabled") {
			return fail(fmt.Errorf("redisbroker: Redis at %s is not a cluster node (%w): a standalone server takes a redis:// URL", addr, err))
		}
		return fail(fmt.Errorf("redisbroker: cannot reach Redis Cluster at %s: %w", addr, err))
	}
	info, err := cc.ClusterInfo(cctx).Result()
	if err != nil {
		return fail(fmt.Errorf("redisbroker: Redis at %s: CLUSTER INFO: %w (is it a cluster node? a standalone server takes a redis:// URL)", addr, err))
	}
	if st := infoField(info, "cluster_state"); st != "ok" {
		return fail(fmt.Errorf("redisbroker: Redis Cluster at %s is in state %q, not \"ok\": check CLUSTER INFO (all slots covered, nodes reachable)", addr, st))
	}
	var mu sync.Mutex
	var old []string
	err = cc.ForEachMaster(cctx, func(ctx context.Context, n *redis.Client) error {
		info, err := n.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		v := infoField(info, "redis_version")
		if major, ok := majorVersion(v); !ok || major < MinRedisMajor {
			mu.Lock()
			old = append(old, n.Options().Addr+" is "+v)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return fail(fmt.Errorf("redisbroker: Redis Cluster at %s: INFO server: %w", addr, err))
	}
	if len(old) > 0 {
		return fail(fmt.Errorf("redisbroker: Redis Cluster at %s: %s; Laneway needs Redis %d.0 or newer on every master", addr, strings.Join(old, ", "), MinRedisMajor))
	}
	return b, nil
}

// Cluster reports whether the Broker talks to a Redis Cluster.
func (b *Broker) Cluster() bool { return b.cluster != nil }

// isRedirect tells whether err asks a command sent to one node directly to
// go elsewhere (or to retry once a migration settles).
func isRedirect(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	for _, p := range []string{"MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN", "UNBLOCKED"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// nodeFor is the client of the master serving key.
func (b *Broker) nodeFor(ctx context.Context, key string) (*redis.Client, error) {
	if b.cluster == nil {
		return b.client.(*redis.Client), nil
	}
	return b.cluster.MasterForKey(ctx, key)
}

// forEachNode runs fn on every master of a cluster, or on the one server.
func (b *Broker) forEachNode(ctx context.Context, fn func(ctx context.Context, c redis.Cmdable) error) error {
	if b.cluster == nil {
		return fn(ctx, b.client)
	}
	return b.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return fn(ctx, c) })
}

// MasterOf is the address of the master serving key's slot, or the
// server's address on a standalone Redis.
func (b *Broker) MasterOf(ctx context.Context, key string) (string, error) {
	n, err := b.nodeFor(ctx, key)
	if err != nil {
		return "", err
	}
	return n.Options().Addr, nil
}

// migrationRetry bounds how long a read keeps retrying while its slot is
// being moved: the keys of a lane pair leave the old master one MIGRATE at
// a time, and a read over both lanes in between answers TRYAGAIN (or ASK
// after ASK) until the last one has moved.
const (
	migrationRetry      = 2 * time.Second
	migrationRetryPause = 10 * time.Millisecond
)

// readGroup runs one XREADGROUP (blocking when block > 0). On a cluster, a
// read refused because its slot is moving is retried until the move settles
// (at most migrationRetry): the entries stay in the stream, so nothing is
// lost either way, but an empty answer would look like an idle lane.
func (b *Broker) readGroup(ctx context.Context, args *redis.XReadGroupArgs, block time.Duration) ([]redis.XStream, error) {
	deadline := time.Now().Add(max(block, migrationRetry))
	for {
		var res []redis.XStream
		var err error
		if block > 0 {
			res, err = b.readBlocking(ctx, args, block)
		} else {
			res, err = b.client.XReadGroup(ctx, args).Result()
		}
		if b.cluster == nil || !isRedirect(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return res, err
		}
		b.cluster.ReloadState(ctx)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(migrationRetryPause):
		}
		block = min(block, time.Until(deadline))
		if block <= 0 && args.Block >= 0 {
			block = time.Millisecond
		}
	}
}
