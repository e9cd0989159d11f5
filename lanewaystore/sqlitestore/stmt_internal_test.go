package sqlitestore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

// Before Migrate the hot statements cannot be prepared (their tables do not
// exist) and units of work run their statements unprepared; from the first
// transaction after it every one is prepared, and a unit of work and the
// relay's claim and mark use them.
func TestHotStatementsPreparedAfterMigrate(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "stmt.db"))
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()

	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE before_migrate (id INTEGER PRIMARY KEY)`)
		return err
	}))
	assert.False(t, s.stmts.done.Load(), "prepared without the outbox table")

	require.NoError(t, s.Migrate(ctx))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		if err := tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{Category: "customer", ID: "1", Data: []byte(`{}`)}); err != nil {
			return err
		}
		return tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{
			{MessageID: "m1", StreamName: "customer-1", StreamCategory: "customer", Type: "T.E.v1", Data: []byte(`{}`), Metadata: []byte(`{}`)},
			{MessageID: "m2", StreamName: "customer-1", StreamCategory: "customer", Type: "T.E.v1", Data: []byte(`{}`), Metadata: []byte(`{}`)},
		})
	}))
	require.True(t, s.stmts.done.Load(), "hot statements not prepared after Migrate")
	for _, q := range hotStatements {
		assert.NotNil(t, s.stmts.get(q), q)
	}

	rows, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: "w", Limit: 10})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, []string{"m1", "m2"}, []string{rows[0].MessageID, rows[1].MessageID})
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w",
		Rows: []lanewaystore.PublishedRow{{ID: rows[0].ID, Stream: "customer"}, {ID: rows[1].ID, Stream: "customer"}}}))
	st, err := s.OutboxStats(ctx)
	require.NoError(t, err)
	require.Len(t, st.Counts, 1)
	assert.Equal(t, lanewaystore.StatusPublished, st.Counts[0].Status)
	assert.EqualValues(t, 2, st.Counts[0].Count)

	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		rec, err := tx.LoadAggregate(ctx, "customer", "1")
		if err != nil {
			return err
		}
		return tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{Category: "customer", ID: "1", ExpectedVersion: rec.Version, Data: []byte(`{"v":2}`)})
	}))
	err = s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{Category: "customer", ID: "1", ExpectedVersion: 1, Data: []byte(`{}`)})
	})
	assert.ErrorIs(t, err, lanewaystore.ErrVersionConflict)
}

// A store closed while its goroutines still use it (an engine whose
// database goes away under it) gives them errors, not a data race on the
// prepared statements: run under -race, this failed before close left the
// statements' map alone.
func TestCloseWhileStatementsRun(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "close.db"))
	require.NoError(t, err)
	require.NoError(t, s.Migrate(ctx))
	insertRow(t, s, "m1") // the first transaction after Migrate prepares them
	require.True(t, s.stmts.done.Load())

	done := make(chan error)
	go func() {
		for {
			if _, err := s.CommitMark(ctx); err != nil {
				done <- err
				return
			}
		}
	}()
	_, err = s.CommitMark(ctx) // at least one read before the close
	require.NoError(t, err)
	require.NoError(t, s.Close())
	assert.Error(t, <-done, "a read of a closed store")
}
