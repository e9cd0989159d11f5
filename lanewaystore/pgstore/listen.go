package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/laneway/laneway/internal/startstop"
)

// NotifyChannel is the LISTEN/NOTIFY channel on which a commit that inserted
// outbox rows signals. The payload is the schema of the outbox table.
const NotifyChannel = "laneway_outbox"

// Listener timing. The listener checks its idle connection every
// listenerPingInterval, so a connection that died silently is noticed, and
// reconnects with a backoff that doubles up to listenerBackoffMax.
const (
	listenerPingInterval = time.Minute
	minListenerBackoff   = 100 * time.Millisecond
	listenerBackoffMax   = 5 * time.Second
	listenerAppName      = "laneway-outbox-listener"
)

// ListenOutbox listens on NotifyChannel on a dedicated connection (not one
// of the pool's) and calls notify, from one goroutine, for every
// notification sent by a commit into this store's schema, in any process.
// It returns once LISTEN has succeeded. When the connection drops it
// reconnects with a capped backoff and calls notify once after
// reconnecting, because rows may have committed while it was away. The
// goroutine ends when ctx is done or stop is called; stop waits for it.
//
// Notifications are a latency optimisation: a relay must still poll now and
// then, because a notification can be lost while the listener reconnects.
func (s *Store) ListenOutbox(ctx context.Context, notify func()) (stop func(), err error) {
	cfg := s.pool.cfg.Copy()
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = listenerAppName
	}
	conn, schema, err := listen(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: listen on %s at %s: %w", NotifyChannel, s.addr, err)
	}
	l := &listener{cfg: cfg, notify: notify}
	return startstop.Background(ctx, func(ctx context.Context) { l.run(ctx, conn, schema) }), nil
}

type listener struct {
	cfg    *pgx.ConnConfig
	notify func()
}

// listen connects, runs LISTEN and reads the schema that notifications for
// this store carry.
func listen(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, string, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	var schema string
	err = conn.QueryRow(ctx, `SELECT coalesce(current_schema(), '')`).Scan(&schema)
	if err == nil {
		_, err = conn.Exec(ctx, "LISTEN "+NotifyChannel)
	}
	if err != nil {
		closeConn(conn)
		return nil, "", err
	}
	return conn, schema, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

func (l *listener) run(ctx context.Context, conn *pgx.Conn, schema string) {
	for {
		// wait returns when ctx is done or the connection is unusable;
		// either way the connection is closed.
		_ = l.wait(ctx, conn, schema)
		closeConn(conn)
		if ctx.Err() != nil {
			return
		}
		if conn, schema = l.reconnect(ctx); conn == nil {
			return
		}
		l.notify()
	}
}

// wait delivers notifications until the connection fails or ctx is done.
func (l *listener) wait(ctx context.Context, conn *pgx.Conn, schema string) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, listenerPingInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if accepts(n.Payload, schema) {
				l.notify()
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Idle for a while: check that the server is still there.
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// accepts reports whether a notification with payload concerns the outbox
// of schema. An empty payload wakes every schema (e.g. an operator's manual
// `NOTIFY laneway_outbox`).
func accepts(payload, schema string) bool { return payload == "" || payload == schema }

// reconnect retries listen with a capped exponential backoff until it
// succeeds (returning the connection) or ctx is done (returning nil).
func (l *listener) reconnect(ctx context.Context) (*pgx.Conn, string) {
	backoff := minListenerBackoff
	t := time.NewTimer(backoff)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ""
		case <-t.C:
		}
		conn, schema, err := listen(ctx, l.cfg)
		if err == nil {
			return conn, schema
		}
		backoff = min(backoff*2, listenerBackoffMax)
		t.Reset(backoff)
	}
}
