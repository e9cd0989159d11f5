package pgstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// pool is a small pool of *pgx.Conn. pgx's own pgxpool would be the first
// choice, but it needs github.com/jackc/puddle/v2, which this module does not
// require; everything the store needs from a pool is here: a bound on open
// connections, context-aware waiting, reuse of healthy idle connections and
// no background goroutine. Swapping in pgxpool later touches this file and
// the acquire/release call sites only.
type pool struct {
	cfg *pgx.ConnConfig
	sem chan struct{} // one token per connection in use or being opened

	mu     sync.Mutex
	idle   []*poolConn // LIFO: the most recently used connection is the warmest
	closed bool
}

type poolConn struct {
	*pgx.Conn
	born      time.Time
	idleSince time.Time
}

// Pool settings. Connections idle longer than poolPingIdle are pinged before
// reuse (the server may have restarted), and connections older than
// poolMaxLifetime or idle longer than poolMaxIdle are replaced.
const (
	poolPingIdle    = time.Second
	poolMaxIdle     = 30 * time.Minute
	poolMaxLifetime = time.Hour
)

var errPoolClosed = errors.New("pgstore: store is closed")

// newPool takes the pool settings out of cfg.RuntimeParams (pgx would send
// unknown URL parameters to the server, which rejects pool_*): pool_max_conns
// sets the bound, which otherwise is the greater of 4 and the number of CPUs,
// as in pgxpool. Other pool_* parameters of pgxpool are accepted and ignored.
func newPool(cfg *pgx.ConnConfig) (*pool, error) {
	maxConns := max(4, runtime.NumCPU())
	for k, v := range cfg.RuntimeParams {
		if !strings.HasPrefix(k, "pool_") {
			continue
		}
		delete(cfg.RuntimeParams, k)
		if k == "pool_max_conns" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("pgstore: invalid pool_max_conns %q: want a positive integer", v)
			}
			maxConns = n
		}
	}
	return &pool{cfg: cfg, sem: make(chan struct{}, maxConns)}, nil
}

// acquire returns a connection for the caller's exclusive use, waiting for a
// free slot until ctx is done. Every successful acquire needs a release.
func (p *pool) acquire(ctx context.Context) (*poolConn, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		c, closed := p.popIdle()
		if closed {
			<-p.sem
			return nil, errPoolClosed
		}
		if c == nil {
			break
		}
		now := time.Now()
		if c.IsClosed() || now.Sub(c.born) > poolMaxLifetime || now.Sub(c.idleSince) > poolMaxIdle {
			closeConn(c.Conn)
			continue
		}
		if now.Sub(c.idleSince) > poolPingIdle {
			if err := c.Ping(ctx); err != nil {
				closeConn(c.Conn)
				if ctx.Err() != nil {
					<-p.sem
					return nil, ctx.Err()
				}
				continue
			}
		}
		return c, nil
	}
	conn, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.sem
		return nil, err
	}
	return &poolConn{Conn: conn, born: time.Now()}, nil
}

func (p *pool) popIdle() (c *poolConn, closed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, true
	}
	if n := len(p.idle); n > 0 {
		c = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
	}
	return c, false
}

// release returns c to the pool, or closes it when it is broken, still busy
// or inside a transaction (a failed rollback), or when the pool is closed.
func (p *pool) release(c *poolConn) {
	defer func() { <-p.sem }()
	if c.IsClosed() || c.PgConn().IsBusy() || c.PgConn().TxStatus() != 'I' {
		closeConn(c.Conn)
		return
	}
	c.idleSince = time.Now()
	p.mu.Lock()
	if !p.closed {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		closeConn(c.Conn)
	}
}

// close closes the idle connections and makes later acquires fail;
// connections in use are closed when released.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		closeConn(c.Conn)
	}
}

// with runs fn on a pooled connection.
func (p *pool) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	c, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer p.release(c)
	return fn(c.Conn)
}
