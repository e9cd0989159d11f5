// Package redisbroker implements lanewaybroker.Broker on Redis Streams with
// go-redis v9. The same code talks to a real Redis (Open) and to the embedded
// in-process server (OpenEmbedded, miniredis), so the embedded default and
// production share one code path. Where the embedded server lacks a Redis 7
// behaviour, the Broker emulates it with an equivalent command sequence; each
// such gap is one field of the caps struct (see caps.go).
package redisbroker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/lanewaybroker"
)

// Defaults of Options.
const (
	// PoolSizeDefault is the default connection pool size. Each blocking read
	// holds a connection for its whole BLOCK, so the pool must cover the
	// engine's concurrent readers plus ordinary commands.
	PoolSizeDefault = 64
	// ReadTimeoutDefault bounds the wait for a reply to a non-blocking
	// command. Blocking reads are not bound by it: go-redis waits BLOCK plus
	// 10 s for them.
	ReadTimeoutDefault = 3 * time.Second
	// ConnectTimeoutDefault bounds Open's first contact (dial, handshake,
	// PING and the version check).
	ConnectTimeoutDefault = 5 * time.Second
	// PendingCountDefault is the number of entries Pending lists when
	// PendingParams.Count is not positive.
	PendingCountDefault = 100
	// AutoClaimCountDefault is the number of entries AutoClaim claims at most
	// when AutoClaimParams.Count is not positive (Redis's own default).
	AutoClaimCountDefault = 100
	// MinRedisMajor is the oldest Redis major version Open accepts: Laneway
	// needs XAUTOCLAIM's deleted-ids reply and XINFO GROUPS lag (Redis 7.0).
	MinRedisMajor = 7
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// PoolSize is the maximum number of connections to Redis. Defaults to
	// PoolSizeDefault.
	PoolSize int
	// ReadTimeout bounds the wait for the reply to one command. Blocking
	// reads (ReadParams.Block > 0) wait their Block plus 10 s instead, so a
	// long BLOCK never fails with an i/o timeout. Defaults to
	// ReadTimeoutDefault.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one command. Defaults to ReadTimeout.
	WriteTimeout time.Duration
	// ConnectTimeout bounds Open's first contact with the server. Defaults
	// to ConnectTimeoutDefault.
	ConnectTimeout time.Duration
	// ClientName is set on every connection (CLIENT SETNAME), so that
	// CLIENT LIST shows which process a connection belongs to. Defaults to
	// none.
	ClientName string
	// TLS replaces the TLS settings of a "rediss://" URL (CA, client
	// certificate, server name); an empty ServerName means the URL's host.
	// Ignored for plain "redis://" URLs. Defaults to the system roots.
	TLS *tls.Config
}

func (o Options) withDefaults() Options {
	if o.PoolSize <= 0 {
		o.PoolSize = PoolSizeDefault
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = ReadTimeoutDefault
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = o.ReadTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = ConnectTimeoutDefault
	}
	return o
}

// EmbeddedOptions configures OpenEmbedded. The zero value is ready to use.
type EmbeddedOptions struct {
	// Listen is the address the embedded server serves the Redis protocol
	// on, e.g. "127.0.0.1:6380" so that `redis-cli -p 6380 XLEN customer`
	// can inspect it. Defaults to a random free loopback port.
	Listen string
}

// Broker is a lanewaybroker.Broker on Redis Streams. Safe for concurrent use.
type Broker struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // non-nil on a Redis Cluster (cluster.go)
	addr    string
	opts    Options
	caps    caps
	server  *miniredis.Miniredis // non-nil when OpenEmbedded started it

	// emu serialises the emulated multi-command sequences (claims on the
	// embedded server), which Redis runs atomically as one command. The
	// embedded server belongs to this Broker, so holding emu makes them
	// atomic with respect to every other claim.
	emu sync.Mutex

	// seen records, when the server does not track it, the last time each
	// consumer read or claimed (XINFO CONSUMERS idle).
	seenMu sync.Mutex
	seen   map[consumerKey]time.Time

	// blockMu guards the idle dedicated connections used for cancellable
	// blocking reads (see block.go), by node address.
	blockMu   sync.Mutex
	idleBlock map[string][]*blockConn
	closed    bool

	closeOnce sync.Once
	closeErr  error
}

var _ lanewaybroker.Broker = (*Broker)(nil)

// Open connects to the Redis at url (redis:// or rediss:// for TLS, with
// optional username, password and DB number, as redis.ParseURL reads them),
// or to the Redis Cluster at a redis+cluster:// (rediss+cluster://) URL
// listing one or more of its nodes (see ParseClusterURL).
// It fails fast when the server does not answer within
// Options.ConnectTimeout, and refuses servers older than Redis 7.0. Error
// messages never contain the password.
func Open(ctx context.Context, url string, opts Options) (*Broker, error) {
	opts = opts.withDefaults()
	if IsClusterURL(url) {
		return openCluster(ctx, url, opts)
	}
	client, addr, err := newClient(url, opts)
	if err != nil {
		return nil, err
	}
	b := newBroker(client, addr, opts, redisCaps())

	cctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	if err := client.Ping(cctx).Err(); err != nil {
		_ = client.Close()
		var rerr redis.Error
		if errors.As(err, &rerr) {
			return nil, redactErr(fmt.Errorf("redisbroker: Redis at %s refused the connection: %w", addr, err), url)
		}
		return nil, redactErr(fmt.Errorf("redisbroker: cannot reach Redis at %s: %w", addr, err), url)
	}
	info, err := client.Info(cctx, "server").Result()
	switch {
	case err != nil && isMiniredisInfoErr(err):
		// A miniredis server (another process's embedded broker): use the
		// same emulations as OpenEmbedded. They are atomic only within one
		// Broker, which is fine for inspection tools.
		b.caps = miniredisCaps()
	case err != nil:
		_ = client.Close()
		return nil, redactErr(fmt.Errorf("redisbroker: Redis at %s: INFO server: %w", addr, err), url)
	default:
		version := infoField(info, "redis_version")
		if major, ok := majorVersion(version); !ok || major < MinRedisMajor {
			_ = client.Close()
			return nil, fmt.Errorf("redisbroker: Redis at %s is version %q; Laneway needs Redis %d.0 or newer (XAUTOCLAIM deleted ids, XINFO GROUPS lag)", addr, version, MinRedisMajor)
		}
	}
	return b, nil
}

// OpenEmbedded starts an in-process Redis-protocol server (miniredis) and
// connects to it through the same go-redis code as Open. Close stops the
// server. Its data lives in memory only: it does not survive a restart.
func OpenEmbedded(ctx context.Context, opts EmbeddedOptions) (*Broker, error) {
	srv := miniredis.NewMiniRedis()
	var err error
	if opts.Listen != "" {
		err = srv.StartAddr(opts.Listen)
	} else {
		err = srv.Start() // random free port on 127.0.0.1
	}
	if err != nil {
		listen := opts.Listen
		if listen == "" {
			listen = "127.0.0.1:0"
		}
		return nil, fmt.Errorf("redisbroker: start embedded broker on %s: %w", listen, err)
	}
	// Gap: miniredis only expires keys when told to advance time; with
	// ClockTTL it follows the wall clock, so heartbeat keys (SetKey with a
	// TTL) expire as on Redis.
	srv.ClockTTL(true)

	opts2 := Options{}.withDefaults()
	ro := &redis.Options{Addr: srv.Addr(), DisableIdentity: true}
	applyOptions(ro, opts2)
	client := redis.NewClient(ro)
	b := newBroker(client, srv.Addr(), opts2, miniredisCaps())
	b.server = srv

	cctx, cancel := context.WithTimeout(ctx, opts2.ConnectTimeout)
	defer cancel()
	if err := client.Ping(cctx).Err(); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("redisbroker: embedded broker at %s does not answer: %w", srv.Addr(), err)
	}
	return b, nil
}

func newBroker(client redis.UniversalClient, addr string, opts Options, c caps) *Broker {
	return &Broker{client: client, addr: addr, opts: opts, caps: c, seen: map[consumerKey]time.Time{}, idleBlock: map[string][]*blockConn{}}
}

func applyOptions(ro *redis.Options, o Options) {
	ro.PoolSize = o.PoolSize
	ro.ReadTimeout = o.ReadTimeout
	ro.WriteTimeout = o.WriteTimeout
	ro.DialTimeout = o.ConnectTimeout
	if o.ClientName != "" {
		ro.ClientName = o.ClientName
	}
	// Honour context deadlines on ordinary commands. Blocking reads drop the
	// deadline and are cancelled explicitly instead (block.go).
	ro.ContextTimeoutEnabled = true
}

// Embedded reports whether this Broker runs the in-process server.
func (b *Broker) Embedded() bool { return b.server != nil }

// Addr is the host:port of the server, e.g. the embedded server's address
// for `redis-cli -p`; on a cluster, the comma-separated seed nodes.
func (b *Broker) Addr() string { return b.addr }

// Ping checks that the server answers.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbroker: ping %s: %w", b.addr, err)
	}
	return nil
}

// Close closes the connections and, for the embedded broker, stops the
// server. Calling it again returns the first call's result.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.blockMu.Lock()
		b.closed = true
		idle := b.idleBlock
		b.idleBlock = nil
		b.blockMu.Unlock()
		for _, bcs := range idle {
			for _, bc := range bcs {
				_ = bc.conn.Close()
			}
		}
		b.closeErr = b.client.Close()
		if b.server != nil {
			b.server.Close()
		}
	})
	return b.closeErr
}
