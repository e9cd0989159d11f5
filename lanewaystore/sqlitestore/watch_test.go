package sqlitestore_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

// The commit mark moves for every commit that changed something from
// another store on the same file (another process, for SQLite), and stays
// put for this store's own commits, reads and claims: the relay's commit
// watch wakes it for other processes' rows only.
func TestCommitMark(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "laneway.db")
	s := migrated(t, path)
	other := migrated(t, path)
	checkCommitMark(t, s, func(ctx context.Context) error {
		return other.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			return tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{watchRow("from-another-store")})
		})
	})
}

func TestCommitMarkInMemory(t *testing.T) {
	t.Parallel()
	checkCommitMark(t, migrated(t, ":memory:"), nil)
}

func checkCommitMark(t *testing.T, s *sqlitestore.Store, otherWrite func(context.Context) error) {
	ctx := t.Context()
	mark := func() uint64 {
		t.Helper()
		m, err := s.CommitMark(ctx)
		require.NoError(t, err)
		return m
	}
	m := mark()
	require.Equal(t, m, mark(), "nothing committed")

	claimed, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: "w", Limit: 10})
	require.NoError(t, err)
	require.Empty(t, claimed)
	_, err = s.OutboxStats(ctx)
	require.NoError(t, err)
	require.Equal(t, m, mark(), "an empty claim and a read change nothing")

	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{watchRow("mine")})
	}))
	claimed, err = s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: "w", Limit: 10})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.Equal(t, m, mark(), "this store's own insert and claim")

	if otherWrite != nil {
		require.NoError(t, otherWrite(ctx))
		m2 := mark()
		require.NotEqual(t, m, m2, "a row inserted by another store on the file")
		require.Equal(t, m2, mark(), "nothing committed since")
	}
}

func watchRow(msgID string) lanewaystore.OutboxRow {
	return lanewaystore.OutboxRow{
		MessageID: msgID, StreamName: "customer-42", StreamCategory: "customer", Type: "Shop.CustomerRegistered.v1",
		Data: []byte(`{"id":"42"}`), Metadata: []byte(`{"headers":{"id":"` + msgID + `"}}`), CreatedAt: time.Now(),
	}
}
