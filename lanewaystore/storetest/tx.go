package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

func testMigrate(t *testing.T, open Opener) {
	ctx, s := openStore(t, open)
	// Two migrations racing on a fresh database must both succeed.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, s.Migrate(ctx), "Migrate is idempotent")
	require.NoError(t, s.Ping(ctx))
	assert.Contains(t, []string{"sqlite", "postgres"}, s.Dialect())

	// The tables exist with the contract's names and columns.
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		var n int64
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM laneway_schema_migrations`).Scan(&n))
		assert.GreaterOrEqual(t, n, int64(1))
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM laneway_aggregates`).Scan(&n))
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM laneway_processed`).Scan(&n))
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE id IS NOT NULL AND message_id IS NOT NULL
			AND stream_name IS NOT NULL AND stream_category IS NOT NULL AND type IS NOT NULL AND data IS NOT NULL
			AND metadata IS NOT NULL AND priority IS NOT NULL AND status IS NOT NULL AND retry_count IS NOT NULL
			AND next_retry_at IS NULL AND locked_by IS NULL AND locked_until IS NULL AND last_error IS NULL
			AND created_at IS NOT NULL AND published_at IS NULL AND published_stream IS NULL`).Scan(&n))
		return nil
	}))
}

func testAggregate(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		_, err := tx.LoadAggregate(ctx, "customer", "42")
		require.ErrorIs(t, err, lanewaystore.ErrNotFound)

		require.NoError(t, tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{
			Category: "customer", ID: "42", ExpectedVersion: 0, Data: []byte(`{"name":"Ada"}`)}))
		rec, err := tx.LoadAggregate(ctx, "customer", "42")
		require.NoError(t, err)
		assert.Equal(t, lanewaystore.AggregateRecord{Category: "customer", ID: "42", Version: 1, Data: []byte(`{"name":"Ada"}`)}, rec)

		// A new aggregate whose id is taken conflicts, and the transaction
		// stays usable afterwards (PostgreSQL aborts a transaction on a
		// failed statement, so the store must not let one fail).
		err = tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{Category: "customer", ID: "42", Data: []byte(`{}`)})
		require.ErrorIs(t, err, lanewaystore.ErrVersionConflict)
		assert.Contains(t, err.Error(), "customer/42")
		rec, err = tx.LoadAggregate(ctx, "customer", "42")
		require.NoError(t, err)
		assert.Equal(t, int64(1), rec.Version)
		return nil
	}))

	// Committed; update in a later transaction.
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		require.NoError(t, tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{
			Category: "customer", ID: "42", ExpectedVersion: 1, Data: []byte(`{"name":"Grace"}`)}))
		// Stale version.
		err := tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{
			Category: "customer", ID: "42", ExpectedVersion: 1, Data: []byte(`{"name":"Stale"}`)})
		require.ErrorIs(t, err, lanewaystore.ErrVersionConflict)
		// Update of an aggregate that does not exist.
		err = tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{
			Category: "customer", ID: "missing", ExpectedVersion: 3, Data: []byte(`{}`)})
		require.ErrorIs(t, err, lanewaystore.ErrVersionConflict)
		// Same id in another category is another aggregate.
		require.NoError(t, tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{
			Category: "order", ID: "42", Data: nil}))
		return nil
	}))

	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		rec, err := tx.LoadAggregate(ctx, "customer", "42")
		require.NoError(t, err)
		assert.Equal(t, int64(2), rec.Version)
		assert.Equal(t, `{"name":"Grace"}`, string(rec.Data))
		rec, err = tx.LoadAggregate(ctx, "order", "42")
		require.NoError(t, err)
		assert.Equal(t, int64(1), rec.Version)
		assert.Empty(t, rec.Data)
		return nil
	}))
}

func testAggregateConcurrentSave(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{Category: "customer", ID: "1", Data: []byte(`{"v":0}`)})
	}))

	const n = 8
	race := func(p func(i int) lanewaystore.SaveAggregateParams) (wins int, conflicts int) {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				errs[i] = s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
					return tx.SaveAggregate(ctx, p(i))
				})
			})
		}
		wg.Wait()
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, lanewaystore.ErrVersionConflict):
				conflicts++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		return wins, conflicts
	}

	wins, conflicts := race(func(i int) lanewaystore.SaveAggregateParams {
		return lanewaystore.SaveAggregateParams{Category: "customer", ID: "1", ExpectedVersion: 1, Data: fmt.Appendf(nil, `{"v":%d}`, i)}
	})
	assert.Equal(t, 1, wins)
	assert.Equal(t, n-1, conflicts)

	wins, conflicts = race(func(i int) lanewaystore.SaveAggregateParams {
		return lanewaystore.SaveAggregateParams{Category: "customer", ID: "new", Data: fmt.Appendf(nil, `{"v":%d}`, i)}
	})
	assert.Equal(t, 1, wins)
	assert.Equal(t, n-1, conflicts)

	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		rec, err := tx.LoadAggregate(ctx, "customer", "1")
		require.NoError(t, err)
		assert.Equal(t, int64(2), rec.Version)
		rec, err = tx.LoadAggregate(ctx, "customer", "new")
		require.NoError(t, err)
		assert.Equal(t, int64(1), rec.Version)
		return nil
	}))
}

var errBoom = errors.New("boom")

func testRollbackOnError(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		require.NoError(t, tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{Category: "customer", ID: "1", Data: []byte(`{}`)}))
		require.NoError(t, tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{row("m1", 0, t0), row("m2", 0, t0)}))
		ok, err := tx.MarkProcessed(ctx, "Projector", "m0")
		require.NoError(t, err)
		require.True(t, ok)
		return fmt.Errorf("handler: %w", errBoom)
	})
	require.ErrorIs(t, err, errBoom)
	assertNothingCommitted(t, ctx, s)
}

func testRollbackOnPanic(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	require.PanicsWithValue(t, "handler panicked", func() {
		_ = s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			require.NoError(t, tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{Category: "customer", ID: "1", Data: []byte(`{}`)}))
			require.NoError(t, tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{row("m1", 0, t0)}))
			_, err := tx.MarkProcessed(ctx, "Projector", "m0")
			require.NoError(t, err)
			panic("handler panicked")
		})
	})
	assertNothingCommitted(t, ctx, s)
}

// assertNothingCommitted also proves that the store is still usable (the
// connection of the failed transaction was given back).
func assertNothingCommitted(t *testing.T, ctx context.Context, s lanewaystore.Store) {
	t.Helper()
	assert.Empty(t, all(t, ctx, s))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		_, err := tx.LoadAggregate(ctx, "customer", "1")
		assert.ErrorIs(t, err, lanewaystore.ErrNotFound)
		ok, err := tx.MarkProcessed(ctx, "Projector", "m0")
		require.NoError(t, err)
		assert.True(t, ok, "the marker was rolled back")
		return nil
	}))
}

func testCallerSQL(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE customer_view (id TEXT PRIMARY KEY, name TEXT NOT NULL, orders INTEGER NOT NULL)`)
		return err
	}))

	err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		n, err := tx.Exec(ctx, `INSERT INTO customer_view (id, name, orders) VALUES ($1, $2, $3)`, "c1", "Ada", 1)
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)
		_, err = tx.Exec(ctx, `INSERT INTO customer_view (id, name, orders) VALUES ($1, $2, $3)`, "c2", "Grace", 5)
		require.NoError(t, err)
		// Placeholders out of order and repeated.
		n, err = tx.Exec(ctx, `UPDATE customer_view SET name = $2, orders = orders + $3 WHERE id = $1 OR id = $1`, "c1", "Ada L.", 2)
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)

		var name string
		var orders int
		require.NoError(t, tx.QueryRow(ctx, `SELECT name, orders FROM customer_view WHERE id = $1`, "c1").Scan(&name, &orders))
		assert.Equal(t, "Ada L.", name)
		assert.Equal(t, 3, orders)

		err = tx.QueryRow(ctx, `SELECT name FROM customer_view WHERE id = $1`, "nobody").Scan(&name)
		require.ErrorIs(t, err, lanewaystore.ErrNotFound)

		rows, err := tx.Query(ctx, `SELECT id, orders FROM customer_view WHERE orders >= $1 ORDER BY id`, 1)
		require.NoError(t, err)
		var got []string
		for rows.Next() {
			var id string
			var o int
			require.NoError(t, rows.Scan(&id, &o))
			got = append(got, fmt.Sprintf("%s:%d", id, o))
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		assert.Equal(t, []string{"c1:3", "c2:5"}, got)

		require.NoError(t, tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{Category: "customer", ID: "c1", Data: []byte(`{}`)}))
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)

	// The read-model rows rolled back with the aggregate.
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM customer_view`).Scan(&n))
		assert.Zero(t, n)
		_, err := tx.LoadAggregate(ctx, "customer", "c1")
		assert.ErrorIs(t, err, lanewaystore.ErrNotFound)

		_, err = tx.Exec(ctx, `INSERT INTO customer_view (id, name, orders) VALUES ($1, $2, $3)`, "c3", "Linus", 7)
		return err
	}))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		var name string
		require.NoError(t, tx.QueryRow(ctx, `SELECT name FROM customer_view WHERE id = $1`, "c3").Scan(&name))
		assert.Equal(t, "Linus", name)
		return nil
	}))
}

func testMarkProcessed(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		ok, err := tx.MarkProcessed(ctx, "CustomerProjector", "m1")
		require.NoError(t, err)
		assert.True(t, ok)
		ok, err = tx.MarkProcessed(ctx, "CustomerProjector", "m1")
		require.NoError(t, err)
		assert.False(t, ok, "second mark in the same transaction")
		return nil
	}))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		ok, err := tx.MarkProcessed(ctx, "CustomerProjector", "m1")
		require.NoError(t, err)
		assert.False(t, ok, "mark after commit")
		ok, err = tx.MarkProcessed(ctx, "OrderProjector", "m1")
		require.NoError(t, err)
		assert.True(t, ok, "markers are per handler")
		return nil
	}))
}
