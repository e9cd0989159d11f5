// Package scratch opens throwaway databases and clears Redis streams for the
// programs that measure Laneway (`laneway demo`, `lanebench`): a SQLite file
// in a temporary directory or a fresh PostgreSQL schema, removed on Close.
package scratch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

// DB is a throwaway database: exactly one of SQLitePath and PostgresURL is
// set, naming the same database Store uses, so callers can open their own
// connections to it (raw ceilings, worker processes).
type DB struct {
	Store lanewaystore.Store
	// SQLitePath is the database file (SQLite).
	SQLitePath string
	// PostgresURL carries search_path=<the fresh schema> (PostgreSQL).
	PostgresURL string
	// Dir is the temporary directory (SQLite); callers may put more files
	// there, it is removed on Close.
	Dir string

	drop func() error
}

// Open returns a fresh database: a SQLite file in a new temporary directory
// when dbURL is empty, else a new schema <prefix>_<hex> in the PostgreSQL of
// dbURL. The tables are not created (laneway.Open migrates).
func Open(ctx context.Context, dbURL, prefix string) (*DB, error) {
	if dbURL == "" {
		dir, err := os.MkdirTemp("", prefix+"-")
		if err != nil {
			return nil, fmt.Errorf("%s: temporary directory: %w", prefix, err)
		}
		path := filepath.Join(dir, prefix+".db")
		st, err := sqlitestore.Open(ctx, path)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		return &DB{Store: st, SQLitePath: path, Dir: dir, drop: func() error { return os.RemoveAll(dir) }}, nil
	}
	schema := prefix + "_" + RandomHex(6)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("%s: connect to PostgreSQL: %w", prefix, err)
	}
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+schema)
	_ = conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("%s: create schema %s: %w", prefix, schema, err)
	}
	drop := func() error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(cctx, dbURL)
		if err != nil {
			return fmt.Errorf("%s: drop schema %s: %w", prefix, schema, err)
		}
		defer c.Close(cctx)
		if _, err := c.Exec(cctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			return fmt.Errorf("%s: drop schema %s: %w", prefix, schema, err)
		}
		return nil
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		_ = drop()
		return nil, fmt.Errorf("%s: --database: %w", prefix, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	st, err := pgstore.Open(ctx, u.String())
	if err != nil {
		_ = drop()
		return nil, err
	}
	return &DB{Store: st, PostgresURL: u.String(), drop: drop}, nil
}

// Close closes the store and removes the database.
func (d *DB) Close() error {
	err := d.Store.Close()
	if derr := d.drop(); derr != nil && err == nil {
		err = derr
	}
	return err
}

// ClearStreams deletes, in the Redis database of brokerURL, the streams
// named in keys and every stream matching one of patterns (with their
// consumer groups). Other keys are left alone.
//
// On a Redis Cluster (a redis+cluster:// URL) every master is scanned and
// the keys are deleted one at a time (they live in different slots).
func ClearStreams(ctx context.Context, brokerURL string, keys []string, patterns ...string) error {
	if redisbroker.IsClusterURL(brokerURL) {
		return clearClusterStreams(ctx, brokerURL, keys, patterns)
	}
	opt, err := redis.ParseURL(brokerURL)
	if err != nil {
		return fmt.Errorf("--broker: %w", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	keys = append([]string(nil), keys...)
	for _, pattern := range patterns {
		iter := c.ScanType(ctx, 0, pattern, 1000, "stream").Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("clear streams in Redis: %w", err)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	if err := c.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("clear streams in Redis: %w", err)
	}
	return nil
}

// RandomHex returns 2n random hex digits.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func clearClusterStreams(ctx context.Context, brokerURL string, keys, patterns []string) error {
	opt, err := redisbroker.ParseClusterURL(brokerURL)
	if err != nil {
		return fmt.Errorf("--broker: %w", err)
	}
	c := redis.NewClusterClient(opt)
	defer c.Close()
	var mu sync.Mutex
	found := append([]string(nil), keys...)
	err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		for _, pattern := range patterns {
			iter := n.ScanType(ctx, 0, pattern, 1000, "stream").Iterator()
			for iter.Next(ctx) {
				mu.Lock()
				found = append(found, iter.Val())
				mu.Unlock()
			}
			if err := iter.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("clear streams in the Redis Cluster: %w", err)
	}
	for _, k := range found {
		if err := c.Del(ctx, k).Err(); err != nil {
			return fmt.Errorf("clear streams in the Redis Cluster: %w", err)
		}
	}
	return nil
}
