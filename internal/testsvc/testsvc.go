// Package testsvc gives tests real Redis and PostgreSQL services, isolated per
// test: unique stream-name prefixes on a shared Redis and a fresh schema per
// test on a shared PostgreSQL. `make test` (scripts/test-services) finds or
// starts the servers and exports REDIS_URL and DATABASE_URL; without them the
// defaults (Redis on 127.0.0.1:6379, PostgreSQL on 127.0.0.1:5432) are used.
// A service that does not answer fails the test with the command that fixes
// it: tests never skip for lack of a service.
package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

const (
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
	defaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	hint               = "start the services with `make test` (scripts/test-services finds or starts Redis and PostgreSQL), or set REDIS_URL / DATABASE_URL"
)

// RandomSuffix returns n random bytes as hex, for unique names.
func RandomSuffix(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Prefix returns a unique lowercase name prefix such as "t3f9a1c_" for
// streams, categories and groups of one test.
func Prefix() string { return "t" + RandomSuffix(4) + "_" }

// RedisURL returns the URL of a reachable Redis, failing the test when none
// answers.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("REDIS_URL")
	if u == "" {
		u = defaultRedisURL
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("testsvc: REDIS_URL %q: %v", u, err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("testsvc: Redis at %s does not answer (%v): %s", u, err, hint)
	}
	return u
}

// PostgresURL returns the URL of a fresh schema on a reachable PostgreSQL
// (search_path set in the URL); the schema is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		base = defaultPostgresURL
	}
	return SchemaURL(t, base)
}

// SchemaURL returns the URL of a fresh schema on the PostgreSQL at base,
// dropped when the test ends.
func SchemaURL(t testing.TB, base string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("testsvc: PostgreSQL at %s does not answer (%v): %s", redact(base), err, hint)
	}
	defer conn.Close(context.Background())
	schema := "laneway_test_" + RandomSuffix(6)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testsvc: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	return WithSearchPath(base, schema)
}

// WithSearchPath returns a PostgreSQL URL whose connections use schema.
func WithSearchPath(dbURL, schema string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return dbURL
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return strings.ReplaceAll(u.String(), "%20", " ")
}
