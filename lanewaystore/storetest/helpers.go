package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

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
