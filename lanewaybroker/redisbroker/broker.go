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
	"math"
	"sort"
	"strconv"
	"strings"
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
	client *redis.Client
	addr   string
	opts   Options
	caps   caps
	server *miniredis.Miniredis // non-nil when OpenEmbedded started it

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
	// blocking reads (see block.go).
	blockMu   sync.Mutex
	idleBlock []*blockConn
	closed    bool

	closeOnce sync.Once
	closeErr  error
}

var _ lanewaybroker.Broker = (*Broker)(nil)

// Open connects to the Redis at url (redis:// or rediss:// for TLS, with
// optional username, password and DB number, as redis.ParseURL reads them).
// It fails fast when the server does not answer within
// Options.ConnectTimeout, and refuses servers older than Redis 7.0. Error
// messages never contain the password.
func Open(ctx context.Context, url string, opts Options) (*Broker, error) {
	opts = opts.withDefaults()
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

func newBroker(client *redis.Client, addr string, opts Options, c caps) *Broker {
	return &Broker{client: client, addr: addr, opts: opts, caps: c, seen: map[consumerKey]time.Time{}}
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
// for `redis-cli -p`.
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
		for _, bc := range idle {
			_ = bc.conn.Close()
		}
		b.closeErr = b.client.Close()
		if b.server != nil {
			b.server.Close()
		}
	})
	return b.closeErr
}

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
	if p.Block > 0 {
		res, err = b.readBlocking(ctx, args, p.Block)
	} else {
		res, err = b.client.XReadGroup(ctx, args).Result()
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

// Ack sends one XACK per AckParams in one pipelined round trip.
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
		last := normalizeID(g.LastDeliveredID)
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

func (b *Broker) scan(ctx context.Context, pattern, typ string) ([]string, error) {
	seen := map[string]struct{}{}
	var cursor uint64
	for {
		keys, next, err := b.client.ScanType(ctx, cursor, pattern, scanCount, typ).Result()
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			seen[k] = struct{}{}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

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
// then MGET); keys that expire in between are left out.
func (b *Broker) GetKeys(ctx context.Context, pattern string) (map[string]string, error) {
	keys, err := b.scan(ctx, pattern, "string")
	if err != nil {
		return nil, fmt.Errorf("redisbroker: scan keys %q: %w", pattern, err)
	}
	out := make(map[string]string, len(keys))
	for len(keys) > 0 {
		n := min(len(keys), mgetBatch)
		vals, err := b.client.MGet(ctx, keys[:n]...).Result()
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

// groupErr wraps err from a group command, adding ErrNoGroup for NOGROUP.
func (b *Broker) groupErr(op, stream, group string, err error) error {
	if isNoGroup(err) {
		return fmt.Errorf("redisbroker: %s: group %q on %q: %w: %w", op, group, stream, lanewaybroker.ErrNoGroup, err)
	}
	return fmt.Errorf("redisbroker: %s: group %q on %q: %w", op, group, stream, err)
}

func isNoGroup(err error) bool {
	// Plain replies start with NOGROUP; errors raised inside a script carry
	// it further in.
	return err != nil && strings.Contains(err.Error(), "NOGROUP")
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no such key")
}

func toEntries(msgs []redis.XMessage) []lanewaybroker.Entry {
	if len(msgs) == 0 {
		return nil
	}
	out := make([]lanewaybroker.Entry, len(msgs))
	for i, m := range msgs {
		fields := make(map[string]string, len(m.Values))
		for k, v := range m.Values {
			switch v := v.(type) {
			case string:
				fields[k] = v
			case nil:
				fields[k] = ""
			default:
				fields[k] = fmt.Sprint(v)
			}
		}
		out[i] = lanewaybroker.Entry{ID: m.ID, Data: fields["data"], Fields: fields}
	}
	return out
}

// ceilMs rounds d up to whole milliseconds, the unit Redis takes: a minimum
// idle time must never shrink to less than asked.
func ceilMs(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Millisecond - 1).Truncate(time.Millisecond)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func countOr(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// normalizeID turns the "0" a group created at id 0 may report into "0-0".
func normalizeID(id string) string {
	if id == "" || id == "0" {
		return "0-0"
	}
	return id
}

// nextID returns the smallest stream id above id ("ms-seq" → "ms-(seq+1)"),
// used as an inclusive cursor that skips id.
func nextID(id string) string {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return id + "-1"
	}
	s, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return id
	}
	if s == math.MaxUint64 {
		m, err := strconv.ParseUint(ms, 10, 64)
		if err != nil {
			return id
		}
		return strconv.FormatUint(m+1, 10) + "-0"
	}
	return ms + "-" + strconv.FormatUint(s+1, 10)
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

func majorVersion(v string) (int, bool) {
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	return n, err == nil
}

// isMiniredisInfoErr recognises miniredis's answer to INFO server.
func isMiniredisInfoErr(err error) bool {
	return strings.Contains(err.Error(), "section (server) is not supported")
}
