package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

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
