package pgstore_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaystore"
)

// The unit of work pipelines its statements (BEGIN with the first one, the
// outbox insert with COMMIT); these are the cases where that could go wrong.
func TestPipelinedUnitOfWork(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := migrated(t, testsvc.PostgresURL(t))
	outboxRow := func(id string) []lanewaystore.OutboxRow {
		return []lanewaystore.OutboxRow{{MessageID: id, StreamName: "customer-1", StreamCategory: "customer", Type: "T.v1"}}
	}
	count := func(where string) int {
		var n int
		require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE "+where).Scan(&n)
		}))
		return n
	}

	t.Run("queued rows are visible to the transaction's own reads", func(t *testing.T) {
		var inside int
		require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			if err := tx.InsertOutbox(ctx, outboxRow("visible")); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, "SELECT message_id FROM outbox WHERE message_id = $1", "visible")
			if err != nil {
				return err
			}
			for rows.Next() {
				inside++
			}
			return rows.Close()
		}))
		assert.Equal(t, 1, inside)
		assert.Equal(t, 1, count("message_id = 'visible'"))
	})

	t.Run("a swallowed statement error still fails the commit and writes nothing", func(t *testing.T) {
		for name, bad := range map[string]string{
			"rejected when prepared": "SELECT no_such_column FROM outbox",
			"failing when executed":  "SELECT 1 / (SELECT count(*) FROM outbox WHERE message_id = 'none')::int",
		} {
			id := "swallowed " + name
			err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
				if err := tx.InsertOutbox(ctx, outboxRow(id)); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, bad)
				require.Error(t, err) // the handler ignores it and returns nil
				return nil
			})
			require.Error(t, err, name)
			assert.Equal(t, 0, count("message_id = '"+id+"'"), name)
		}
	})

	t.Run("a failed statement after an aborted queue reports the queued failure", func(t *testing.T) {
		require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			return tx.InsertOutbox(ctx, outboxRow("dup"))
		}))
		err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			if err := tx.InsertOutbox(ctx, outboxRow("dup")); err != nil {
				return err
			}
			_, err := tx.MarkProcessed(ctx, "h", "m")
			return err
		})
		require.ErrorContains(t, err, "outbox rows (first dup)")
		assert.Equal(t, 1, count("message_id = 'dup'"))
	})

	t.Run("an error returned by the caller rolls the queue back", func(t *testing.T) {
		err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			if err := tx.InsertOutbox(ctx, outboxRow("rolled")); err != nil {
				return err
			}
			if _, err := tx.MarkProcessed(ctx, "h", "rolled"); err != nil {
				return err
			}
			return pgx.ErrTxClosed // any error
		})
		require.ErrorIs(t, err, pgx.ErrTxClosed)
		assert.Equal(t, 0, count("message_id = 'rolled'"))
		fresh, err := func() (bool, error) {
			var ok bool
			err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
				var err error
				ok, err = tx.MarkProcessed(ctx, "h", "rolled")
				return err
			})
			return ok, err
		}()
		require.NoError(t, err)
		assert.True(t, fresh, "the marker of the rolled-back unit of work was not kept")
	})

	t.Run("the connection is reusable after each of these", func(t *testing.T) {
		for range 10 { // more than the pool holds
			require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
				_, err := tx.Exec(ctx, "SELECT 1")
				return err
			}))
		}
	})
}

// A queued aggregate save checks its version on the server: a conflict
// fails the unit of work with ErrVersionConflict and writes nothing, and the
// save is visible to the transaction's later statements.
func TestQueuedSaveAggregate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := migrated(t, testsvc.PostgresURL(t))
	queue := func(tx lanewaystore.Tx, id string, expected int64, data string) error {
		q, ok := tx.(lanewaystore.QueuedSaver)
		require.True(t, ok, "the PostgreSQL transaction queues saves")
		return q.QueueSaveAggregate(ctx, lanewaystore.SaveAggregateParams{Category: "customer", ID: id, ExpectedVersion: expected, Data: []byte(data)})
	}
	load := func(id string) (lanewaystore.AggregateRecord, error) {
		var rec lanewaystore.AggregateRecord
		err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			var err error
			rec, err = tx.LoadAggregate(ctx, "customer", id)
			return err
		})
		return rec, err
	}

	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		require.NoError(t, queue(tx, "1", 0, `{"v":1}`))
		rec, err := tx.LoadAggregate(ctx, "customer", "1") // sends the queued save first
		require.NoError(t, err)
		assert.Equal(t, int64(1), rec.Version)
		return queue(tx, "1", 1, `{"v":2}`)
	}))
	rec, err := load("1")
	require.NoError(t, err)
	assert.Equal(t, lanewaystore.AggregateRecord{Category: "customer", ID: "1", Version: 2, Data: []byte(`{"v":2}`)}, rec)

	for name, c := range map[string]struct {
		id       string
		expected int64
	}{
		"new aggregate whose id is taken": {"1", 0},
		"stale version":                   {"1", 1},
		"update of a missing aggregate":   {"missing", 3},
	} {
		err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			if err := tx.InsertOutbox(ctx, outboxRows("conflict-"+c.id)); err != nil {
				return err
			}
			return queue(tx, c.id, c.expected, `{"v":"lost"}`)
		})
		require.ErrorIs(t, err, lanewaystore.ErrVersionConflict, name)
		assert.Contains(t, err.Error(), "customer/"+c.id, name)
		rec, err := load("1")
		require.NoError(t, err)
		assert.Equal(t, int64(2), rec.Version, name)
		var n int
		require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n)
		}))
		assert.Zero(t, n, "%s: the unit of work's outbox rows rolled back too", name)
	}
	_, err = load("missing")
	require.ErrorIs(t, err, lanewaystore.ErrNotFound)
}

func outboxRows(id string) []lanewaystore.OutboxRow {
	return []lanewaystore.OutboxRow{{MessageID: id, StreamName: "customer-1", StreamCategory: "customer", Type: "T.v1"}}
}
