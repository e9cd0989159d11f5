package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

// testInsertLeased: a row inserted with a lease is the leasing relay's, as
// if it had claimed it, and the insert gives every row its id.
func testInsertLeased(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	li, ok := s.(lanewaystore.LeasingInserter)
	require.True(t, ok && li.LeasesOnInsert(), "the store reports that it writes leases at insert (lanewaystore.LeasingInserter)")
	until := t0.Add(time.Minute)
	leased := row("leased", 50, t0)
	leased.LockedBy, leased.LockedUntil = "w1", &until
	rows := []lanewaystore.OutboxRow{row("free", 50, t0.Add(time.Millisecond)), leased}
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.InsertOutbox(ctx, rows)
	}))

	stored := map[string]int64{}
	for _, r := range all(t, ctx, s) {
		stored[r.MessageID] = r.ID
		if r.MessageID == "leased" {
			assert.Equal(t, "w1", r.LockedBy)
			require.NotNil(t, r.LockedUntil)
			assert.True(t, r.LockedUntil.Equal(until), "locked_until %v", r.LockedUntil)
			assert.Equal(t, lanewaystore.StatusProcessing, r.Status, "a leased pending row reads as processing")
		}
	}
	for _, r := range rows {
		assert.NotZero(t, r.ID, "row %s has no id after the commit", r.MessageID)
		assert.Equal(t, stored[r.MessageID], r.ID, "row %s", r.MessageID)
	}

	// Another relay claims only the row without a lease, until the lease
	// ends.
	assert.Equal(t, []string{"free"}, msgIDs(claim(t, ctx, s, "w2", 10, t0)))
	assert.Empty(t, claim(t, ctx, s, "w2", 10, t0.Add(30*time.Second)))

	// The leasing relay marks it published without claiming it.
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{
		WorkerID: "w1", Rows: []lanewaystore.PublishedRow{{ID: rows[1].ID, Stream: "customer"}}, At: t0,
	}))
	for _, r := range all(t, ctx, s) {
		if r.MessageID == "leased" {
			assert.Equal(t, lanewaystore.StatusPublished, r.Status)
		}
	}

	// A leased row its relay never published is claimed once the lease
	// ends: a relay that stops or dies loses nothing.
	ctx, s = setup(t, open)
	orphan := row("orphan", 50, t0)
	orphan.LockedBy, orphan.LockedUntil = "gone", &until
	insert(t, ctx, s, orphan)
	assert.Empty(t, claim(t, ctx, s, "w2", 10, t0))
	assert.Equal(t, []string{"orphan"}, msgIDs(claim(t, ctx, s, "w2", 10, until)))

	// A rolled-back insert leaves nothing.
	ctx, s = setup(t, open)
	gone := row("rolled-back", 50, t0)
	gone.LockedBy, gone.LockedUntil = "w1", &until
	err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		if err := tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{gone}); err != nil {
			return err
		}
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	assert.Empty(t, all(t, ctx, s))
}
