package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
)

func migrated(t *testing.T, dbURL string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(t.Context(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Migrate(t.Context()))
	return s
}

func insertRow(ctx context.Context, s lanewaystore.Store, id string, commit bool) error {
	errRollback := errors.New("rollback")
	err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		// Two inserts in one transaction still make one notification.
		for i := range 2 {
			if err := tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{{
				MessageID: fmt.Sprintf("%s-%d", id, i), StreamName: "customer-1", StreamCategory: "customer", Type: "T.v1"}}); err != nil {
				return err
			}
		}
		if !commit {
			return errRollback
		}
		return nil
	})
	if !commit && errors.Is(err, errRollback) {
		return nil
	}
	return err
}

// The tables live in the schema named by search_path, not in public.
func TestSearchPath(t *testing.T) {
	t.Parallel()
	dbURL := testsvc.PostgresURL(t)
	s := migrated(t, dbURL)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	schema := u.Query().Get("search_path")
	require.NotEmpty(t, schema)
	require.NoError(t, s.InTx(t.Context(), func(ctx context.Context, tx lanewaystore.Tx) error {
		var got string
		require.NoError(t, tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&got))
		assert.Equal(t, schema, got)
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
			WHERE table_schema = $1 AND table_name IN ('outbox', 'laneway_aggregates', 'laneway_processed', 'laneway_schema_migrations')`,
			schema).Scan(&n))
		assert.Equal(t, 4, n)
		return nil
	}))
}

// A commit from another pool (as another process would) wakes the
// listener. At the database level, a witness connection checks every
// notification: one per committing transaction that inserted outbox rows,
// whatever the number of inserts, carrying the schema; none for a rollback.
func TestListenOutbox(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := testsvc.PostgresURL(t)
	otherURL := testsvc.PostgresURL(t)
	listening := migrated(t, dbURL)
	writer := migrated(t, dbURL)
	elsewhere := migrated(t, otherURL)
	schemaOf := func(u string) string {
		p, err := url.Parse(u)
		require.NoError(t, err)
		return p.Query().Get("search_path")
	}
	mine, theirs := schemaOf(dbURL), schemaOf(otherURL)

	witness, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer witness.Close(context.Background())
	_, err = witness.Exec(ctx, "LISTEN "+pgstore.NotifyChannel)
	require.NoError(t, err)

	var calls atomic.Int64
	stop, err := listening.ListenOutbox(ctx, func() { calls.Add(1) })
	require.NoError(t, err)
	defer stop()

	require.NoError(t, insertRow(ctx, writer, "rolled-back", false))
	require.NoError(t, insertRow(ctx, elsewhere, "other-schema", true))
	require.NoError(t, writer.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		_, err := tx.MarkProcessed(ctx, "h", "no outbox rows here")
		return err
	}))
	require.NoError(t, insertRow(ctx, writer, "committed", true))
	require.NoError(t, insertRow(ctx, writer, "committed-2", true))

	// Notifications arrive in commit order; other tests' schemas may add
	// their own, which are ignored here.
	var seen []string
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for mineSeen := 0; mineSeen < 2; {
		n, err := witness.WaitForNotification(wctx)
		require.NoError(t, err)
		if n.Payload == mine || n.Payload == theirs {
			seen = append(seen, n.Payload)
		}
		if n.Payload == mine {
			mineSeen++
		}
	}
	assert.Equal(t, []string{theirs, mine, mine}, seen)

	require.Eventually(t, func() bool { return calls.Load() >= 2 }, 20*time.Second, 10*time.Millisecond)
	assert.Equal(t, int64(2), calls.Load(), "one wake-up per committing transaction of this schema")

	stop()
	stop() // idempotent
}

// The listener reconnects when its connection is killed, wakes the relay
// once for what it may have missed, and then hears new commits again.
func TestListenOutboxReconnects(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base := testsvc.PostgresURL(t)
	app := "laneway_test_" + testsvc.RandomSuffix(4)
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	listening := migrated(t, u.String())
	writer := migrated(t, base)

	var calls atomic.Int64
	stop, err := listening.ListenOutbox(ctx, func() { calls.Add(1) })
	require.NoError(t, err)
	defer stop()

	admin, err := pgx.Connect(ctx, base)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	listenerPID := func() int {
		var pid int
		err := admin.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE application_name = $1 AND query = 'LISTEN laneway_outbox' ORDER BY backend_start DESC LIMIT 1`, app).Scan(&pid)
		if err != nil {
			return 0
		}
		return pid
	}
	old := listenerPID()
	require.NotZero(t, old)
	var ok bool
	require.NoError(t, admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, old).Scan(&ok))
	require.True(t, ok)

	require.Eventually(t, func() bool { p := listenerPID(); return p != 0 && p != old }, 30*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return calls.Load() >= 1 }, 20*time.Second, 10*time.Millisecond, "wake-up after reconnecting")
	before := calls.Load()
	require.NoError(t, insertRow(ctx, writer, "after-reconnect", true))
	require.Eventually(t, func() bool { return calls.Load() > before }, 20*time.Second, 10*time.Millisecond)
}

// ListenOutbox ends with its context as well as with stop.
func TestListenOutboxContext(t *testing.T) {
	t.Parallel()
	s := migrated(t, testsvc.PostgresURL(t))
	ctx, cancel := context.WithCancel(t.Context())
	stop, err := s.ListenOutbox(ctx, func() {})
	require.NoError(t, err)
	cancel()
	stop() // returns once the goroutine has ended (goleak checks the rest)
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	_, err := pgstore.Open(t.Context(), "postgres://laneway:s3cret-pw@127.0.0.1:1/laneway?connect_timeout=5")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot connect to PostgreSQL at 127.0.0.1:1")
	assert.NotContains(t, err.Error(), "s3cret-pw")

	_, err = pgstore.Open(t.Context(), "postgres://laneway:s3cret-pw@127.0.0.1:5432/x?sslmode=bogus")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret-pw")
}

// A search_path naming no existing schema fails Open with a clear error.
func TestOpenMissingSchema(t *testing.T) {
	t.Parallel()
	dbURL := testsvc.WithSearchPath(testsvc.PostgresURL(t), "laneway_missing_"+testsvc.RandomSuffix(4))
	_, err := pgstore.Open(t.Context(), dbURL)
	require.ErrorContains(t, err, "laneway_missing_")
	assert.ErrorContains(t, err, "create it first")
}

// pool_max_conns is taken by the store, not sent to the server.
func TestPoolMaxConns(t *testing.T) {
	t.Parallel()
	base := testsvc.PostgresURL(t)
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("pool_max_conns", "1")
	u.RawQuery = q.Encode()
	s := migrated(t, u.String())
	// With one connection, a second operation waits for the first: here
	// until its context gives up.
	ctx := t.Context()
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, s.Ping(wctx), context.DeadlineExceeded)
		return nil
	}))
	require.NoError(t, s.Ping(ctx))

	q.Set("pool_max_conns", "zero")
	u.RawQuery = q.Encode()
	_, err = pgstore.Open(ctx, u.String())
	require.ErrorContains(t, err, "pool_max_conns")
}

// A pooled connection that the server killed is replaced.
func TestPoolReplacesDeadConnections(t *testing.T) {
	t.Parallel()
	base := testsvc.PostgresURL(t)
	app := "laneway_test_" + testsvc.RandomSuffix(4)
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	s := migrated(t, u.String())
	ctx := t.Context()

	admin, err := pgx.Connect(ctx, base)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	var n int
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n))
	require.Positive(t, n)

	// The first use of a dead idle connection may fail; the store recovers.
	require.Eventually(t, func() bool { return s.Ping(ctx) == nil }, 20*time.Second, 50*time.Millisecond)
	_, err = s.OutboxStats(ctx)
	require.NoError(t, err)
}

// The claim changes no indexed column, so PostgreSQL writes the leased
// version of each row in place without index entries (HOT). A claim that
// set an indexed column (status, as version 1 did) or an index on the lease
// columns would make every claim write every index again.
func TestClaimIsHOTUpdate(t *testing.T) {
	t.Parallel()
	dbURL := testsvc.PostgresURL(t)
	s, err := pgstore.Open(t.Context(), dbURL)
	require.NoError(t, err)
	require.NoError(t, s.Migrate(t.Context()))
	const n = 40
	rows := make([]lanewaystore.OutboxRow, n)
	for i := range rows {
		rows[i] = lanewaystore.OutboxRow{MessageID: fmt.Sprintf("hot-%d", i), StreamName: "customer-1",
			StreamCategory: "customer", Type: "T.v1", Data: []byte(`{"pad":"` + fmt.Sprintf("%0300d", i) + `"}`)}
	}
	require.NoError(t, s.InTx(t.Context(), func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.InsertOutbox(ctx, rows)
	}))
	claimed, err := s.ClaimOutbox(t.Context(), lanewaystore.ClaimParams{WorkerID: "relay-" + testsvc.RandomSuffix(12), Limit: n})
	require.NoError(t, err)
	require.Len(t, claimed, n)
	// A session reports its statistics when it ends at the latest.
	require.NoError(t, s.Close())

	admin, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	var updates, hot int64
	deadline := time.Now().Add(30 * time.Second)
	for updates < n && time.Now().Before(deadline) {
		_, err := admin.Exec(t.Context(), `SELECT pg_stat_clear_snapshot()`)
		require.NoError(t, err)
		require.NoError(t, admin.QueryRow(t.Context(),
			`SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'outbox'::regclass`).Scan(&updates, &hot))
		if updates < n {
			time.Sleep(50 * time.Millisecond)
		}
	}
	require.Equal(t, int64(n), updates, "the server has not reported the claim's updates")
	assert.Equal(t, int64(n), hot, "every claimed row was updated in place")
}
