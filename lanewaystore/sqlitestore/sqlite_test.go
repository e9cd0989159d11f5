package sqlitestore_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

func migrated(t *testing.T, dsn string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(t.Context(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Migrate(t.Context()))
	return s
}

// modernc.org/sqlite binds $N to the N-th argument, whatever the order in
// which the placeholders appear and however often.
func TestDollarPlaceholders(t *testing.T) {
	t.Parallel()
	s := migrated(t, filepath.Join(t.TempDir(), "db.sqlite"))
	ctx := t.Context()
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		var got string
		require.NoError(t, tx.QueryRow(ctx, `SELECT $2 || '-' || $1 || '-' || $2 || '-' || $3`, "a", "b", 3).Scan(&got))
		assert.Equal(t, "b-a-b-3", got)

		_, err := tx.Exec(ctx, `CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)`)
		require.NoError(t, err)
		for i := 1; i <= 12; i++ {
			_, err := tx.Exec(ctx, `INSERT INTO kv (v, k) VALUES ($2, $1)`, fmt.Sprintf("k%d", i), i)
			require.NoError(t, err)
		}
		// Ten or more placeholders: $10 is not $1 followed by "0".
		args := make([]any, 12)
		for i := range args {
			args[i] = fmt.Sprintf("k%d", i+1)
		}
		var sum int
		require.NoError(t, tx.QueryRow(ctx, `SELECT sum(v) FROM kv WHERE k IN ($10, $11, $12, $1)`, args...).Scan(&sum))
		assert.Equal(t, 10+11+12+1, sum)
		return nil
	}))
}

// The file is in WAL mode (persistent, so a fresh connection sees it), and
// the store's connections carry the pragmas.
func TestPragmas(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	s := migrated(t, path)
	ctx := t.Context()

	raw, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer raw.Close()
	var mode string
	require.NoError(t, raw.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode))
	assert.Equal(t, "wal", mode)

	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		var timeout, fk, sync int
		require.NoError(t, tx.QueryRow(ctx, `PRAGMA busy_timeout`).Scan(&timeout))
		require.NoError(t, tx.QueryRow(ctx, `PRAGMA foreign_keys`).Scan(&fk))
		require.NoError(t, tx.QueryRow(ctx, `PRAGMA synchronous`).Scan(&sync))
		assert.Equal(t, int(sqlitestore.BusyTimeoutDefault.Milliseconds()), timeout)
		assert.Equal(t, 1, fk)
		assert.Equal(t, 1, sync, "NORMAL")
		return nil
	}))
}

// Timestamps are fixed-width UTC text, so string order is time order.
func TestTimestampText(t *testing.T) {
	t.Parallel()
	s := migrated(t, filepath.Join(t.TempDir(), "db.sqlite"))
	ctx := t.Context()
	at := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.FixedZone("X", 3600))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{
			{MessageID: "a", StreamName: "c-1", StreamCategory: "c", Type: "T.v1", CreatedAt: at},
			{MessageID: "b", StreamName: "c-1", StreamCategory: "c", Type: "T.v1"},
		})
	}))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		var a, b string
		require.NoError(t, tx.QueryRow(ctx, `SELECT created_at FROM outbox WHERE message_id = $1`, "a").Scan(&a))
		require.NoError(t, tx.QueryRow(ctx, `SELECT created_at FROM outbox WHERE message_id = $1`, "b").Scan(&b))
		assert.Equal(t, "2030-01-02T02:04:05.000006Z", a)
		assert.Regexp(t, regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`), b)

		// A row an operator inserts by hand gets the same format by default.
		_, err := tx.Exec(ctx, `INSERT INTO outbox (message_id, stream_name, stream_category, type, data, metadata)
			VALUES ('manual', 'c-1', 'c', 'T.v1', '{}', '{}')`)
		require.NoError(t, err)
		var m string
		require.NoError(t, tx.QueryRow(ctx, `SELECT created_at FROM outbox WHERE message_id = 'manual'`).Scan(&m))
		assert.Regexp(t, regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`), m)
		return nil
	}))
	rows, err := s.ListOutbox(ctx, lanewaystore.ListOutboxParams{Status: lanewaystore.StatusPending})
	require.NoError(t, err)
	require.Len(t, rows, 3)
	assert.Equal(t, "a", rows[0].MessageID, "2030 is newest")
}

// DSN forms: a sqlite:// URL, a path in a directory that does not exist yet.
func TestOpenDSNForms(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "nested", "deeper", "laneway.db")
	migrated(t, "sqlite://"+path)
	_, err := os.Stat(path)
	require.NoError(t, err)

	_, err = sqlitestore.Open(t.Context(), "")
	require.Error(t, err)
	_, err = sqlitestore.Open(t.Context(), filepath.Join(dir, "x.db")+"?_txlock=bogus")
	require.Error(t, err)
}

// Two stores on one file (as two processes would be) write concurrently:
// BEGIN IMMEDIATE and busy_timeout make the second writer wait instead of
// failing with SQLITE_BUSY in the middle of a transaction.
func TestTwoStoresOneFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	a := migrated(t, path)
	b := migrated(t, path)
	ctx := t.Context()
	const perWorker = 25
	var wg sync.WaitGroup
	for w, s := range []*sqlitestore.Store{a, b, a, b} {
		wg.Go(func() {
			for i := range perWorker {
				err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
					// Read then write: the pattern that fails under a
					// deferred transaction when another writer commits in
					// between.
					_, err := tx.LoadAggregate(ctx, "c", fmt.Sprintf("%d-%d", w, i))
					if err == nil {
						return fmt.Errorf("aggregate %d-%d exists", w, i)
					}
					if err := tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{Category: "c", ID: fmt.Sprintf("%d-%d", w, i), Data: []byte("{}")}); err != nil {
						return err
					}
					return tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{{
						MessageID: fmt.Sprintf("m-%d-%d", w, i), StreamName: "c-1", StreamCategory: "c", Type: "T.v1"}})
				})
				if !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	// Claims from both stores at the same time.
	claimed := make([][]lanewaystore.OutboxRow, 2)
	for i, s := range []*sqlitestore.Store{a, b} {
		wg.Go(func() {
			for range 20 {
				rows, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: fmt.Sprint(i), Limit: 5, Lease: time.Hour})
				if !assert.NoError(t, err) {
					return
				}
				claimed[i] = append(claimed[i], rows...)
			}
		})
	}
	wg.Wait()
	rows, err := a.ListOutbox(ctx, lanewaystore.ListOutboxParams{Limit: 1000})
	require.NoError(t, err)
	assert.Len(t, rows, 4*perWorker)
	seen := map[int64]bool{}
	for _, c := range claimed {
		for _, r := range c {
			assert.False(t, seen[r.ID], "claimed twice: %d", r.ID)
			seen[r.ID] = true
		}
	}
}
