package redisbroker

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Blocking reads and cancellation.
//
// go-redis does not abort a command when its context is cancelled (it only
// turns a context deadline into a socket deadline), so a read blocked for
// several seconds would ignore the engine's "stop reading". On Redis the
// Broker therefore runs each cancellable blocking read on a dedicated
// connection whose CLIENT ID it knows, and when the context ends it sends
// CLIENT UNBLOCK <id>: Redis answers the read as if its BLOCK had expired, so
// no entry is delivered to a reader that is gone. Dedicated connections are
// kept in a small free list so the CLIENT ID round trip is paid once per
// connection, not per read.
//
// The read itself runs without the caller's deadline: go-redis gives a
// blocking command a read timeout of BLOCK + 10 s (baseClient.cmdTimeout),
// so a 5 s BLOCK never fails with an i/o timeout, and the deadline is
// enforced by the same UNBLOCK.

// embeddedBlockSlice is the longest single BLOCK sent to a server without
// CLIENT UNBLOCK (miniredis): a cancelled read there returns within about
// this long. Data still wakes a slice at once.
const embeddedBlockSlice = 50 * time.Millisecond

// unblockRetry is the pause between CLIENT UNBLOCK attempts while the read
// has not reached the server yet (UNBLOCK then finds nothing to unblock).
const unblockRetry = 5 * time.Millisecond

// blockConn is a dedicated connection and its server-side client id.
type blockConn struct {
	conn *redis.Conn
	id   int64
	node *redis.Client // the server conn belongs to: CLIENT UNBLOCK goes there
}

// readBlocking runs args with BLOCK block (> 0) and returns what it read; a
// cancelled read returns what it read so far (nothing, normally) with
// redis.Nil or nil, and the caller checks ctx.
func (b *Broker) readBlocking(ctx context.Context, args *redis.XReadGroupArgs, block time.Duration) ([]redis.XStream, error) {
	if !b.caps.clientUnblock {
		return b.readSliced(ctx, args, block)
	}
	args.Block = ceilMs(block) // never 0: BLOCK 0 waits forever
	if ctx.Done() == nil {
		return b.client.XReadGroup(ctx, args).Result()
	}
	for attempt := 0; ; attempt++ {
		bc, err := b.takeBlockConn(ctx, args.Streams[0])
		if err != nil {
			return nil, err
		}
		res, err := b.readOn(ctx, bc, args)
		healthy := err == nil || (isServerErr(err) && !demoted(err))
		b.putBlockConn(bc, healthy)
		if b.cluster != nil && isRedirect(err) && ctx.Err() == nil {
			// The slot moved (or is moving) away from that master: refresh
			// the slot map for the next read and let the ClusterClient,
			// which follows MOVED and ASK, serve this one.
			b.cluster.ReloadState(ctx)
			return b.readSliced(ctx, args, block)
		}
		if healthy || attempt > 0 || ctx.Err() != nil {
			return res, err
		}
		// An idle dedicated connection can go stale (server restart,
		// network, or a primary demoted to replica by a failover, which
		// answers READONLY while a fresh connection reaches the new
		// primary): retry once on a fresh one before reporting.
	}
}

// readOn runs the read on bc, unblocking it when ctx ends.
func (b *Broker) readOn(ctx context.Context, bc *blockConn, args *redis.XReadGroupArgs) ([]redis.XStream, error) {
	readDone := make(chan struct{})
	unblocked := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(unblocked)
		b.unblock(bc.node, bc.id, readDone)
	})
	res, err := bc.conn.XReadGroup(context.WithoutCancel(ctx), args).Result()
	close(readDone)
	if !stop() {
		// The unblocker started: wait for it, so it cannot hit this
		// connection once another read uses it.
		<-unblocked
	}
	return res, err
}

// unblock sends CLIENT UNBLOCK id until it unblocks the read or the read
// returns by itself. UNBLOCK finds nothing while the command is still on its
// way to the server, hence the retries.
func (b *Broker) unblock(node *redis.Client, id int64, readDone <-chan struct{}) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.ReadTimeout)
		n, err := node.ClientUnblock(ctx, id).Result()
		cancel()
		if err == nil && n == 1 {
			return
		}
		select {
		case <-readDone:
			return
		case <-time.After(unblockRetry):
		}
	}
}

// readSliced blocks in slices of embeddedBlockSlice, checking ctx between
// them, for servers without CLIENT UNBLOCK.
func (b *Broker) readSliced(ctx context.Context, args *redis.XReadGroupArgs, block time.Duration) ([]redis.XStream, error) {
	// The slices run without ctx's deadline: a socket deadline expiring
	// mid-slice would cost the connection; ctx is checked between slices.
	rctx := context.WithoutCancel(ctx)
	deadline := time.Now().Add(block)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		args.Block = ceilMs(min(left, embeddedBlockSlice))
		res, err := b.client.XReadGroup(rctx, args).Result()
		if len(res) > 0 || (err != nil && !errors.Is(err, redis.Nil)) {
			return res, err
		}
		if ctx.Err() != nil {
			return nil, nil //nolint:nilerr // a read cut by its caller's context is an empty read
		}
	}
}

// maxIdleBlockConns bounds the free list: each idle dedicated connection
// holds a pool slot.
func (b *Broker) maxIdleBlockConns() int { return max(b.opts.PoolSize/4, 1) }

// takeBlockConn returns a dedicated connection to the server of key (the
// master of its slot on a cluster).
func (b *Broker) takeBlockConn(ctx context.Context, key string) (*blockConn, error) {
	node, err := b.nodeFor(ctx, key)
	if err != nil {
		return nil, err
	}
	addr := node.Options().Addr
	b.blockMu.Lock()
	if b.closed {
		b.blockMu.Unlock()
		return nil, redis.ErrClosed
	}
	if idle := b.idleBlock[addr]; len(idle) > 0 {
		bc := idle[len(idle)-1]
		b.idleBlock[addr] = idle[:len(idle)-1]
		b.blockMu.Unlock()
		return bc, nil
	}
	b.blockMu.Unlock()

	conn := node.Conn()
	id, err := conn.ClientID(ctx).Result()
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return &blockConn{conn: conn, id: id, node: node}, nil
}

func (b *Broker) putBlockConn(bc *blockConn, healthy bool) {
	addr := bc.node.Options().Addr
	b.blockMu.Lock()
	if healthy && !b.closed && len(b.idleBlock[addr]) < b.maxIdleBlockConns() {
		b.idleBlock[addr] = append(b.idleBlock[addr], bc)
		b.blockMu.Unlock()
		return
	}
	b.blockMu.Unlock()
	_ = bc.conn.Close()
}

// isServerErr reports whether err is a reply from the server (the
// connection is fine) rather than a network or client error.
func isServerErr(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr)
}

// demoted reports a server that is no longer the primary (READONLY from a
// replica, MASTERDOWN from a replica cut off from it). A dedicated
// connection to it must be dropped, not reused: the failover client only
// redirects the connections it pools, and a dedicated one would otherwise
// keep reading from the old server after Sentinel promoted another.
// (go-redis also marks such a dedicated connection unusable: every later
// command on it fails with "Conn is in a bad state".)
func demoted(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "READONLY") || strings.Contains(msg, "MASTERDOWN") || strings.Contains(msg, "bad state")
}
