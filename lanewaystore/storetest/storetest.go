// Package storetest is the conformance suite of lanewaystore.Store: every
// implementation calls Exercise from its tests, in a few lines, so the SQLite
// and PostgreSQL stores are held to one contract.
//
// Time-dependent behaviour (leases, retry times, cleanup cutoffs) is driven
// by the Now / At / Before fields of the params, never by the wall clock, so
// the suite controls time and has no sleeps.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

// Opener returns a fresh, empty store for one subtest (its own SQLite file
// or PostgreSQL schema), without running Migrate. Exercise closes it when the
// subtest ends.
type Opener func(t *testing.T) lanewaystore.Store

// Exercise runs the whole suite against the stores open returns. Subtests
// run in parallel, each on its own store.
func Exercise(t *testing.T, open func(t *testing.T) lanewaystore.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Migrate", testMigrate},
		{"Aggregate", testAggregate},
		{"AggregateConcurrentSave", testAggregateConcurrentSave},
		{"InTxRollbackOnError", testRollbackOnError},
		{"InTxRollbackOnPanic", testRollbackOnPanic},
		{"CallerSQL", testCallerSQL},
		{"MarkProcessed", testMarkProcessed},
		{"OutboxInsertAndSeedQuery", testOutboxInsert},
		{"OutboxInsertInvalid", testOutboxInsertInvalid},
		{"ClaimOrder", testClaimOrder},
		{"ClaimLimit", testClaimLimit},
		{"ClaimLease", testClaimLease},
		{"ClaimRetryTime", testClaimRetryTime},
		{"MarkPublished", testMarkPublished},
		{"MarkFailed", testMarkFailed},
		{"MarkFailedOutage", testMarkFailedOutage},
		{"Cleanup", testCleanup},
		{"LeaseIsProcessing", testLeaseIsProcessing},
		{"StoredProcessingRows", testStoredProcessingRows},
		{"Stats", testStats},
		{"List", testList},
		{"Retry", testRetry},
		{"ConcurrentClaimers", testConcurrentClaimers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// t0 is the suite's "now": far from the wall clock, so a store that compares
// with its own clock instead of ClaimParams.Now fails loudly. Microsecond
// precision, which both stores keep.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 123456000, time.UTC)

// setup opens a migrated store.
func setup(t *testing.T, open Opener) (context.Context, lanewaystore.Store) {
	t.Helper()
	ctx, s := openStore(t, open)
	require.NoError(t, s.Migrate(ctx))
	return ctx, s
}

func openStore(t *testing.T, open Opener) (context.Context, lanewaystore.Store) {
	t.Helper()
	s := open(t)
	require.NotNil(t, s)
	t.Cleanup(func() { _ = s.Close() })
	return t.Context(), s
}

// row builds a valid outbox row.
func row(msgID string, priority int, created time.Time) lanewaystore.OutboxRow {
	return lanewaystore.OutboxRow{
		MessageID:      msgID,
		StreamName:     "customer-42",
		StreamCategory: "customer",
		Type:           "Shop.CustomerRegistered.v1",
		Data:           []byte(`{"id":"42","name":"Ada"}`),
		Metadata:       []byte(`{"headers":{"id":"` + msgID + `"}}`),
		Priority:       priority,
		CreatedAt:      created,
	}
}

func insert(t *testing.T, ctx context.Context, s lanewaystore.Store, rows ...lanewaystore.OutboxRow) {
	t.Helper()
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.InsertOutbox(ctx, rows)
	}))
}

func claim(t *testing.T, ctx context.Context, s lanewaystore.Store, worker string, limit int, now time.Time) []lanewaystore.OutboxRow {
	t.Helper()
	rows, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: worker, Limit: limit, Lease: time.Minute, Now: now})
	require.NoError(t, err)
	return rows
}

func msgIDs(rows []lanewaystore.OutboxRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.MessageID
	}
	return out
}

func rowIDs(rows []lanewaystore.OutboxRow) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

// all returns every row, newest first.
func all(t *testing.T, ctx context.Context, s lanewaystore.Store) []lanewaystore.OutboxRow {
	t.Helper()
	rows, err := s.ListOutbox(ctx, lanewaystore.ListOutboxParams{Limit: 10000})
	require.NoError(t, err)
	return rows
}

// byMsgID returns the row with message id id.
func byMsgID(t *testing.T, ctx context.Context, s lanewaystore.Store, id string) lanewaystore.OutboxRow {
	t.Helper()
	for _, r := range all(t, ctx, s) {
		if r.MessageID == id {
			return r
		}
	}
	t.Fatalf("no outbox row %s", id)
	return lanewaystore.OutboxRow{}
}

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

func testOutboxInsert(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	// Exact bytes survive (spacing, key order), whatever the column type.
	data := []byte(`{"b": 1, "a": [1, 2.50], "s": "caf\u00e9 ☕"}`)
	meta := []byte(`{"headers": {"id": "x"}, "domain": {"priority": -50}}`)
	var rows []lanewaystore.OutboxRow
	for i := range 12 {
		r := row(fmt.Sprintf("m%02d", i), []int{-50, 0, 50}[i%3], t0.Add(time.Duration(i)*time.Second))
		r.StreamName = fmt.Sprintf("customer-%d", i)
		r.Status = lanewaystore.StatusPublished // ignored: inserts are pending
		rows = append(rows, r)
	}
	rows[11].Data, rows[11].Metadata = data, meta
	insert(t, ctx, s, rows[:6]...)
	insert(t, ctx, s, rows[6:]...)

	// The seed's query, as a user types it.
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		q, err := tx.Query(ctx, `SELECT message_id, priority, stream_name FROM outbox ORDER BY created_at DESC LIMIT 10;`)
		require.NoError(t, err)
		defer q.Close()
		var got []string
		for q.Next() {
			var id, stream string
			var prio int
			require.NoError(t, q.Scan(&id, &prio, &stream))
			got = append(got, fmt.Sprintf("%s %d %s", id, prio, stream))
		}
		require.NoError(t, q.Err())
		assert.Equal(t, []string{
			"m11 50 customer-11", "m10 0 customer-10", "m09 -50 customer-9", "m08 50 customer-8",
			"m07 0 customer-7", "m06 -50 customer-6", "m05 50 customer-5", "m04 0 customer-4",
			"m03 -50 customer-3", "m02 50 customer-2",
		}, got)
		return nil
	}))

	got := byMsgID(t, ctx, s, "m11")
	assert.NotZero(t, got.ID)
	got.ID = 0
	assert.Equal(t, lanewaystore.OutboxRow{
		MessageID: "m11", StreamName: "customer-11", StreamCategory: "customer", Type: "Shop.CustomerRegistered.v1",
		Data: data, Metadata: meta, Priority: 50, Status: lanewaystore.StatusPending, CreatedAt: t0.Add(11 * time.Second),
	}, got)

	// Without CreatedAt the store stamps the row; ids grow in insert order.
	insert(t, ctx, s, row("late1", 0, time.Time{}), row("late2", 0, time.Time{}))
	l1, l2 := byMsgID(t, ctx, s, "late1"), byMsgID(t, ctx, s, "late2")
	assert.False(t, l1.CreatedAt.IsZero())
	assert.Less(t, l1.ID, l2.ID)
	assert.False(t, l2.CreatedAt.Before(l1.CreatedAt))

	// Empty payloads are stored as JSON.
	r := row("empty", 0, t0)
	r.Data, r.Metadata = nil, nil
	insert(t, ctx, s, r)
	assert.JSONEq(t, `{}`, string(byMsgID(t, ctx, s, "empty").Data))
}

func testOutboxInsertInvalid(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("dup", 0, t0))
	// A duplicate message id fails the unit of work and nothing of it stays.
	err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		if err := tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{row("fresh", 0, t0)}); err != nil {
			return err
		}
		return tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{row("dup", 0, t0)})
	})
	require.Error(t, err)
	assert.Equal(t, []string{"dup"}, msgIDs(all(t, ctx, s)))

	for name, mutate := range map[string]func(*lanewaystore.OutboxRow){
		"message id": func(r *lanewaystore.OutboxRow) { r.MessageID = "" },
		"category":   func(r *lanewaystore.OutboxRow) { r.StreamCategory = "" },
		"type":       func(r *lanewaystore.OutboxRow) { r.Type = "" },
		"JSON data":  func(r *lanewaystore.OutboxRow) { r.Data = []byte(`{"unterminated": `) },
		"JSON meta":  func(r *lanewaystore.OutboxRow) { r.Metadata = []byte(`not json`) },
	} {
		r := row("bad", 0, t0)
		mutate(&r)
		err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			return tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{r})
		})
		assert.Error(t, err, "invalid %s", name)
	}
	assert.Len(t, all(t, ctx, s), 1)
}

func testClaimOrder(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	// 5 LOW, 3 NORMAL, 2 HIGH, interleaved in creation order.
	prios := []int{-50, 0, -50, 50, -50, 0, -50, 50, 0, -50}
	var rows []lanewaystore.OutboxRow
	for i, p := range prios {
		rows = append(rows, row(fmt.Sprintf("m%d", i), p, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	// Inserted in reverse so that id order disagrees with created_at.
	for i := len(rows) - 1; i >= 0; i-- {
		insert(t, ctx, s, rows[i])
	}
	// In batches, so that the database's choice of rows is tested, not only
	// the order in which they come back.
	var got []lanewaystore.OutboxRow
	for _, limit := range []int{3, 3, 4} {
		batch := claim(t, ctx, s, "w1", limit, t0)
		require.Len(t, batch, limit)
		got = append(got, batch...)
	}
	assert.Equal(t, []string{"m3", "m7", "m1", "m5", "m8", "m0", "m2", "m4", "m6", "m9"}, msgIDs(got))
	for _, r := range got {
		assert.Equal(t, lanewaystore.StatusProcessing, r.Status)
		assert.Equal(t, "w1", r.LockedBy)
		require.NotNil(t, r.LockedUntil)
		assert.True(t, r.LockedUntil.Equal(t0.Add(time.Minute)), "locked_until %v", r.LockedUntil)
	}

	// Equal created_at: FIFO by id, in one insert and across inserts.
	ctx, s = setup(t, open)
	insert(t, ctx, s, row("a", 0, t0), row("b", 0, t0), row("c", 50, t0))
	insert(t, ctx, s, row("d", 0, t0), row("e", 50, t0))
	assert.Equal(t, []string{"c", "e", "a", "b", "d"}, msgIDs(claim(t, ctx, s, "w1", 100, t0)))

	// Store-stamped created_at (zero CreatedAt), many rows in one insert.
	ctx, s = setup(t, open)
	rows = rows[:0]
	var want []string
	for i := range 30 {
		rows = append(rows, row(fmt.Sprintf("z%02d", i), 0, time.Time{}))
		want = append(want, fmt.Sprintf("z%02d", i))
	}
	insert(t, ctx, s, rows...)
	assert.Equal(t, want, msgIDs(claim(t, ctx, s, "w1", 100, t0)))
}

func testClaimLimit(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	for i := range 5 {
		insert(t, ctx, s, row(fmt.Sprintf("m%d", i), 0, t0.Add(time.Duration(i)*time.Second)))
	}
	assert.Empty(t, claim(t, ctx, s, "w1", 0, t0), "limit 0 claims nothing")
	assert.Empty(t, claim(t, ctx, s, "w1", -1, t0), "negative limit claims nothing")
	assert.Equal(t, []string{"m0", "m1"}, msgIDs(claim(t, ctx, s, "w1", 2, t0)))
	assert.Equal(t, []string{"m2", "m3"}, msgIDs(claim(t, ctx, s, "w1", 2, t0)))
	assert.Equal(t, []string{"m4"}, msgIDs(claim(t, ctx, s, "w1", 2, t0)))
	assert.Empty(t, claim(t, ctx, s, "w1", 2, t0))

	_, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{Limit: 1, Now: t0})
	assert.Error(t, err, "a claim needs a worker id")
}

func testClaimLease(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("m1", 0, t0))
	lease := time.Minute
	c := func(worker string, now time.Time) []lanewaystore.OutboxRow {
		rows, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: worker, Limit: 10, Lease: lease, Now: now})
		require.NoError(t, err)
		return rows
	}
	first := c("w1", t0)
	require.Len(t, first, 1)
	assert.Empty(t, c("w1", t0), "not claimed again while leased")
	assert.Empty(t, c("w2", t0.Add(lease-time.Microsecond)), "not claimed by another worker while leased")

	// At the exact instant the lease ends, the row is eligible again.
	again := c("w2", t0.Add(lease))
	require.Len(t, again, 1)
	assert.Equal(t, first[0].ID, again[0].ID)
	assert.Equal(t, "w2", again[0].LockedBy)
	assert.True(t, again[0].LockedUntil.Equal(t0.Add(2*lease)))

	// The first worker has lost the row: its marks are ignored.
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{
		WorkerID: "w1", Rows: []lanewaystore.PublishedRow{{ID: first[0].ID, Stream: "customer"}}, At: t0}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{
		WorkerID: "w1", IDs: []int64{first[0].ID}, Error: "late", NextRetryAt: t0}))
	r := byMsgID(t, ctx, s, "m1")
	assert.Equal(t, lanewaystore.StatusProcessing, r.Status)
	assert.Equal(t, "w2", r.LockedBy)
	assert.Zero(t, r.RetryCount)
	assert.Nil(t, r.PublishedAt)
}

func testClaimRetryTime(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("m1", 0, t0))
	got := claim(t, ctx, s, "w1", 10, t0)
	require.Len(t, got, 1)
	retryAt := t0.Add(10 * time.Second)
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{
		WorkerID: "w1", IDs: []int64{got[0].ID}, Error: "redis down", NextRetryAt: retryAt}))

	assert.Empty(t, claim(t, ctx, s, "w1", 10, t0))
	assert.Empty(t, claim(t, ctx, s, "w2", 10, retryAt.Add(-time.Microsecond)))
	again := claim(t, ctx, s, "w2", 10, retryAt)
	require.Len(t, again, 1, "claimable at the exact retry time")
	assert.Equal(t, 1, again[0].RetryCount)
	assert.Equal(t, "redis down", again[0].LastError)
	assert.Equal(t, "w2", again[0].LockedBy)
}

func testMarkPublished(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("m1", 0, t0), row("m2", -50, t0), row("m3", 0, t0), row("other", -100, t0))
	mine := claim(t, ctx, s, "w1", 3, t0)
	require.Equal(t, []string{"m1", "m3", "m2"}, msgIDs(mine))
	theirs := claim(t, ctx, s, "w2", 3, t0)
	require.Equal(t, []string{"other"}, msgIDs(theirs))

	at := t0.Add(time.Second)
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w1", At: at, Rows: []lanewaystore.PublishedRow{
		{ID: mine[0].ID, Stream: "customer"},
		{ID: mine[2].ID, Stream: "customer:backfill"},
		{ID: theirs[0].ID, Stream: "customer"}, // leased by w2: ignored
	}}))
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w1", At: at}), "empty batch")

	for id, stream := range map[string]string{"m1": "customer", "m2": "customer:backfill"} {
		r := byMsgID(t, ctx, s, id)
		assert.Equal(t, lanewaystore.StatusPublished, r.Status, id)
		assert.Equal(t, stream, r.PublishedStream, id)
		require.NotNil(t, r.PublishedAt, id)
		assert.True(t, r.PublishedAt.Equal(at), id)
		assert.Empty(t, r.LockedBy, id)
		assert.Nil(t, r.LockedUntil, id)
	}
	for id, worker := range map[string]string{"m3": "w1", "other": "w2"} {
		r := byMsgID(t, ctx, s, id)
		assert.Equal(t, lanewaystore.StatusProcessing, r.Status, id)
		assert.Equal(t, worker, r.LockedBy, id)
		assert.Nil(t, r.PublishedAt, id)
		assert.Empty(t, r.PublishedStream, id)
	}
	// Published rows are never claimed again, even long after.
	assert.Equal(t, []string{"m3", "other"}, msgIDs(claim(t, ctx, s, "w3", 10, t0.Add(24*time.Hour))))
}

func testMarkFailed(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("m1", 0, t0), row("m2", 0, t0))
	got := claim(t, ctx, s, "w1", 10, t0)
	require.Len(t, got, 2)
	ids := rowIDs(got)

	retry := t0.Add(2 * time.Second)
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w2", IDs: ids, Error: "not mine", NextRetryAt: retry}))
	for _, r := range all(t, ctx, s) {
		assert.Equal(t, lanewaystore.StatusProcessing, r.Status, "rows leased by another worker are left alone")
		assert.Zero(t, r.RetryCount)
	}

	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: ids, Error: "first", NextRetryAt: retry}))
	for _, r := range all(t, ctx, s) {
		assert.Equal(t, lanewaystore.StatusFailed, r.Status)
		assert.Equal(t, 1, r.RetryCount)
		assert.Equal(t, "first", r.LastError)
		require.NotNil(t, r.NextRetryAt)
		assert.True(t, r.NextRetryAt.Equal(retry))
		assert.Empty(t, r.LockedBy)
		assert.Nil(t, r.LockedUntil)
	}

	got = claim(t, ctx, s, "w1", 10, retry)
	require.Len(t, got, 2)
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{got[0].ID}, Error: "second", NextRetryAt: retry.Add(4 * time.Second)}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{got[1].ID}, Error: "give up", Abandon: true}))
	r0, r1 := byMsgID(t, ctx, s, got[0].MessageID), byMsgID(t, ctx, s, got[1].MessageID)
	assert.Equal(t, lanewaystore.StatusFailed, r0.Status)
	assert.Equal(t, 2, r0.RetryCount)
	assert.Equal(t, "second", r0.LastError)
	assert.Equal(t, lanewaystore.StatusAbandoned, r1.Status)
	assert.Equal(t, 2, r1.RetryCount)
	assert.Equal(t, "give up", r1.LastError)
	assert.Nil(t, r1.NextRetryAt)
	assert.Empty(t, r1.LockedBy)

	// Abandoned rows are never claimed.
	assert.Equal(t, []string{got[0].MessageID}, msgIDs(claim(t, ctx, s, "w1", 10, t0.Add(time.Hour))))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", Error: "x"}), "empty batch")
}

func testCleanup(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	cut := t0
	// Published long ago and recently; abandoned (by created_at) long ago and
	// recently; pending and failed rows that are old but still live.
	insert(t, ctx, s,
		row("pub-old1", 0, cut.Add(-5*time.Hour)), row("pub-old2", 0, cut.Add(-5*time.Hour)), row("pub-new", 0, cut.Add(-5*time.Hour)),
		row("ab-old", -50, cut.Add(-3*time.Hour)), row("ab-new", -50, cut.Add(-time.Minute)),
		row("pending-old", 0, cut.Add(-9*time.Hour)), row("failed-old", 0, cut.Add(-9*time.Hour)),
	)
	claimed := claim(t, ctx, s, "w1", 10, cut)
	byID := map[string]int64{}
	for _, r := range claimed {
		byID[r.MessageID] = r.ID
	}
	publish := func(id string, at time.Time) {
		require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w1", At: at,
			Rows: []lanewaystore.PublishedRow{{ID: byID[id], Stream: "customer"}}}))
	}
	publish("pub-old1", cut.Add(-2*time.Hour))
	publish("pub-old2", cut.Add(-time.Hour-time.Microsecond))
	publish("pub-new", cut.Add(-time.Hour)) // exactly at the cutoff: kept
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{byID["ab-old"], byID["ab-new"]}, Abandon: true}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{byID["failed-old"]}, NextRetryAt: cut}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{byID["pending-old"]}, Abandon: true}))
	_, err := s.RetryOutbox(ctx, lanewaystore.RetryOutboxParams{ID: byID["pending-old"]})
	require.NoError(t, err)

	p := lanewaystore.CleanupParams{PublishedBefore: cut.Add(-time.Hour), AbandonedBefore: cut.Add(-time.Hour), Limit: 2}
	n, err := s.CleanupOutbox(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "bounded by Limit")
	n, err = s.CleanupOutbox(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	n, err = s.CleanupOutbox(ctx, p)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.ElementsMatch(t, []string{"pub-new", "ab-new", "pending-old", "failed-old"}, msgIDs(all(t, ctx, s)))

	// Zero cutoffs delete nothing.
	n, err = s.CleanupOutbox(ctx, lanewaystore.CleanupParams{Limit: 100})
	require.NoError(t, err)
	assert.Zero(t, n)
}

// A claim writes only the lease; the store reports leased rows as processing
// in every view, and the stored status (pending or failed) decides what the
// row is once the lease is gone.
func testLeaseIsProcessing(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("p1", 0, t0), row("f1", 0, t0.Add(time.Second)))
	first := claim(t, ctx, s, "w1", 10, t0)
	require.Equal(t, []string{"p1", "f1"}, msgIDs(first))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{
		WorkerID: "w1", IDs: []int64{first[1].ID}, Error: "redis down", NextRetryAt: t0}))
	again := claim(t, ctx, s, "w1", 10, t0)
	require.Equal(t, []string{"f1"}, msgIDs(again), "the failed row is due; p1 is still leased")
	assert.Equal(t, lanewaystore.StatusProcessing, again[0].Status)
	assert.Equal(t, 1, again[0].RetryCount)
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		var stored string
		require.NoError(t, tx.QueryRow(ctx, `SELECT string_agg(status, ',') FROM (SELECT status FROM outbox ORDER BY id) s`).Scan(&stored))
		assert.Equal(t, "pending,failed", stored, "the claim wrote only the lease")
		return nil
	}))

	for _, id := range []string{"p1", "f1"} {
		assert.Equal(t, lanewaystore.StatusProcessing, byMsgID(t, ctx, s, id).Status, id)
	}
	list := func(status lanewaystore.OutboxStatus) []string {
		rows, err := s.ListOutbox(ctx, lanewaystore.ListOutboxParams{Status: status})
		require.NoError(t, err)
		return msgIDs(rows)
	}
	assert.Equal(t, []string{"f1", "p1"}, list(lanewaystore.StatusProcessing))
	assert.Empty(t, list(lanewaystore.StatusPending))
	assert.Empty(t, list(lanewaystore.StatusFailed))
	st, err := s.OutboxStats(ctx)
	require.NoError(t, err)
	assert.Equal(t, []lanewaystore.OutboxCount{{Status: lanewaystore.StatusProcessing, Priority: 0, Count: 2}}, st.Counts)
	assert.Nil(t, st.OldestPending, "leased rows are not waiting")

	n, err := s.RetryOutbox(ctx, lanewaystore.RetryOutboxParams{ID: again[0].ID})
	require.NoError(t, err)
	assert.Zero(t, n, "a leased row is not reset under its relay")

	// The leases run out: another worker takes both, and the stored status
	// still tells the failed row from the pending one.
	later := t0.Add(time.Hour)
	taken := claim(t, ctx, s, "w2", 10, later)
	require.Equal(t, []string{"p1", "f1"}, msgIDs(taken))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{
		WorkerID: "w2", IDs: []int64{taken[1].ID}, Error: "still down", NextRetryAt: later.Add(time.Minute)}))
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{
		WorkerID: "w2", At: later, Rows: []lanewaystore.PublishedRow{{ID: taken[0].ID, Stream: "customer"}}}))
	f1 := byMsgID(t, ctx, s, "f1")
	assert.Equal(t, lanewaystore.StatusFailed, f1.Status)
	assert.Equal(t, 2, f1.RetryCount)
	assert.Equal(t, lanewaystore.StatusPublished, byMsgID(t, ctx, s, "p1").Status)
	assert.Empty(t, claim(t, ctx, s, "w2", 10, later), "f1 waits for its retry time")
}

// Rows stored as processing (by a relay of schema version 1 still running
// during an upgrade) are reported, claimed and marked as before.
func testStoredProcessingRows(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("old", 0, t0), row("new", 0, t0.Add(time.Second)))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE outbox SET status = 'processing', locked_by = 'v1-relay' WHERE message_id = 'old'`)
		return err
	}))
	assert.Equal(t, lanewaystore.StatusProcessing, byMsgID(t, ctx, s, "old").Status)
	got := claim(t, ctx, s, "w1", 10, t0)
	require.Equal(t, []string{"old", "new"}, msgIDs(got), "a processing row without a lease end is claimable")
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w1", At: t0,
		Rows: []lanewaystore.PublishedRow{{ID: got[0].ID, Stream: "customer"}}}))
	assert.Equal(t, lanewaystore.StatusPublished, byMsgID(t, ctx, s, "old").Status)
}

// UpgradeFromVersion1 checks migration 2 on a store whose schema migrateV1
// brings to version 1 only: rows that a version-1 relay had stored as
// processing keep their lease and get back the status they had before the
// claim, so they are reported as processing and claimable once the lease
// ends, the failed ones keeping their retry count.
func UpgradeFromVersion1(t *testing.T, s lanewaystore.Store, migrateV1 func(context.Context) error) {
	ctx := t.Context()
	require.NoError(t, migrateV1(ctx))
	insert(t, ctx, s, row("idle", 0, t0), row("leased", 0, t0.Add(time.Second)), row("retried", 0, t0.Add(2*time.Second)))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE outbox SET status = 'processing', locked_by = 'v1-relay'
			WHERE message_id IN ('leased', 'retried')`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE outbox SET retry_count = 2, last_error = 'redis down' WHERE message_id = 'retried'`)
		return err
	}))
	require.NoError(t, s.Migrate(ctx))

	stored := map[string]string{}
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		rows, err := tx.Query(ctx, `SELECT message_id, status, coalesce(locked_by, '') FROM outbox`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, status, lockedBy string
			if err := rows.Scan(&id, &status, &lockedBy); err != nil {
				return err
			}
			stored[id] = status + "/" + lockedBy
		}
		return rows.Err()
	}))
	assert.Equal(t, map[string]string{"idle": "pending/", "leased": "pending/v1-relay", "retried": "failed/v1-relay"}, stored)
	for id, want := range map[string]lanewaystore.OutboxStatus{
		"idle": lanewaystore.StatusPending, "leased": lanewaystore.StatusProcessing, "retried": lanewaystore.StatusProcessing,
	} {
		assert.Equal(t, want, byMsgID(t, ctx, s, id).Status, id)
	}
	got := claim(t, ctx, s, "w1", 10, t0)
	require.Equal(t, []string{"idle", "leased", "retried"}, msgIDs(got))
	assert.Equal(t, 2, got[2].RetryCount)
}

func testStats(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	st, err := s.OutboxStats(ctx)
	require.NoError(t, err)
	assert.Empty(t, st.Counts)
	assert.Nil(t, st.OldestPending)

	insert(t, ctx, s,
		row("h1", 50, t0.Add(1*time.Second)), row("h2", 50, t0.Add(2*time.Second)),
		row("n1", 0, t0.Add(3*time.Second)), row("l1", -50, t0.Add(4*time.Second)), row("l2", -50, t0.Add(5*time.Second)),
	)
	got := claim(t, ctx, s, "w1", 2, t0) // h1, h2
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w1", At: t0,
		Rows: []lanewaystore.PublishedRow{{ID: got[0].ID, Stream: "customer"}}}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{got[1].ID}, NextRetryAt: t0.Add(time.Hour)}))

	st, err = s.OutboxStats(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []lanewaystore.OutboxCount{
		{Status: lanewaystore.StatusPublished, Priority: 50, Count: 1},
		{Status: lanewaystore.StatusFailed, Priority: 50, Count: 1},
		{Status: lanewaystore.StatusPending, Priority: 0, Count: 1},
		{Status: lanewaystore.StatusPending, Priority: -50, Count: 2},
	}, st.Counts)
	require.NotNil(t, st.OldestPending)
	assert.True(t, st.OldestPending.Equal(t0.Add(2*time.Second)), "the failed h2 is the oldest unpublished row: %v", st.OldestPending)
}

func testList(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	for i := range 6 {
		insert(t, ctx, s, row(fmt.Sprintf("m%d", i), 0, t0.Add(time.Duration(i)*time.Second)))
	}
	got := claim(t, ctx, s, "w1", 2, t0) // m0, m1
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: rowIDs(got), Abandon: true}))

	list := func(p lanewaystore.ListOutboxParams) []string {
		rows, err := s.ListOutbox(ctx, p)
		require.NoError(t, err)
		return msgIDs(rows)
	}
	assert.Equal(t, []string{"m5", "m4", "m3", "m2", "m1", "m0"}, list(lanewaystore.ListOutboxParams{}))
	assert.Equal(t, []string{"m5", "m4"}, list(lanewaystore.ListOutboxParams{Limit: 2}))
	assert.Equal(t, []string{"m5", "m4", "m3", "m2"}, list(lanewaystore.ListOutboxParams{Status: lanewaystore.StatusPending}))
	assert.Equal(t, []string{"m1", "m0"}, list(lanewaystore.ListOutboxParams{Status: lanewaystore.StatusAbandoned}))
	assert.Empty(t, list(lanewaystore.ListOutboxParams{Status: lanewaystore.StatusPublished}))
}

func testRetry(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("ab1", 0, t0), row("ab2", 0, t0), row("failed", 0, t0), row("pub", 0, t0), row("pending", 0, t0))
	got := claim(t, ctx, s, "w1", 4, t0)
	require.Equal(t, []string{"ab1", "ab2", "failed", "pub"}, msgIDs(got))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: rowIDs(got[:2]), Error: "dead", Abandon: true}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{got[2].ID}, Error: "later", NextRetryAt: t0.Add(time.Hour)}))
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w1", At: t0, Rows: []lanewaystore.PublishedRow{{ID: got[3].ID, Stream: "customer"}}}))
	pendingID := byMsgID(t, ctx, s, "pending").ID

	retry := func(p lanewaystore.RetryOutboxParams) int64 {
		n, err := s.RetryOutbox(ctx, p)
		require.NoError(t, err)
		return n
	}
	// One failed row by id: claimable now instead of in an hour.
	assert.Equal(t, int64(1), retry(lanewaystore.RetryOutboxParams{ID: got[2].ID}))
	r := byMsgID(t, ctx, s, "failed")
	assert.Equal(t, lanewaystore.StatusPending, r.Status)
	assert.Zero(t, r.RetryCount)
	assert.Nil(t, r.NextRetryAt)
	assert.Empty(t, r.LockedBy)
	assert.Equal(t, "later", r.LastError, "last_error is kept as history")

	// Published and pending rows are not touched; unknown ids neither.
	assert.Zero(t, retry(lanewaystore.RetryOutboxParams{ID: got[3].ID}))
	assert.Zero(t, retry(lanewaystore.RetryOutboxParams{ID: pendingID}))
	assert.Zero(t, retry(lanewaystore.RetryOutboxParams{ID: 999999}))
	assert.Equal(t, lanewaystore.StatusPublished, byMsgID(t, ctx, s, "pub").Status)

	// Every abandoned row.
	assert.Equal(t, int64(2), retry(lanewaystore.RetryOutboxParams{Abandoned: true}))
	assert.Zero(t, retry(lanewaystore.RetryOutboxParams{Abandoned: true}))
	for _, id := range []string{"ab1", "ab2"} {
		r := byMsgID(t, ctx, s, id)
		assert.Equal(t, lanewaystore.StatusPending, r.Status)
		assert.Zero(t, r.RetryCount)
	}
	assert.Equal(t, []string{"ab1", "ab2", "failed", "pending"}, msgIDs(claim(t, ctx, s, "w2", 10, t0)))

	_, err := s.RetryOutbox(ctx, lanewaystore.RetryOutboxParams{})
	assert.Error(t, err, "nothing selected")
	_, err = s.RetryOutbox(ctx, lanewaystore.RetryOutboxParams{ID: 1, Abandoned: true})
	assert.Error(t, err, "ambiguous selection")
}

func testConcurrentClaimers(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	const total, workers, batch = 1000, 4, 50
	rows := make([]lanewaystore.OutboxRow, total)
	for i := range rows {
		rows[i] = row(fmt.Sprintf("m%04d", i), []int{-50, 0, 50}[i%3], t0)
	}
	insert(t, ctx, s, rows...)

	claimedBy := make([][]lanewaystore.OutboxRow, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			worker := fmt.Sprintf("w%d", w)
			for {
				got, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: worker, Limit: batch, Lease: time.Hour, Now: t0})
				if !assert.NoError(t, err) || len(got) == 0 {
					return
				}
				assert.LessOrEqual(t, len(got), batch)
				for _, r := range got {
					assert.Equal(t, worker, r.LockedBy)
				}
				claimedBy[w] = append(claimedBy[w], got...)
			}
		})
	}
	wg.Wait()

	seen := map[string]string{}
	for w, rows := range claimedBy {
		for _, r := range rows {
			if prev, dup := seen[r.MessageID]; dup {
				t.Errorf("%s claimed by %s and w%d", r.MessageID, prev, w)
			}
			seen[r.MessageID] = fmt.Sprintf("w%d", w)
		}
	}
	assert.Len(t, seen, total, "every row claimed")
	assert.Empty(t, claim(t, ctx, s, "late", batch, t0))
	for _, r := range all(t, ctx, s) {
		assert.Equal(t, seen[r.MessageID], r.LockedBy, "the stored lease matches the claim")
	}
}
