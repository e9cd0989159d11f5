package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

// testEndLeases: ending a stopped relay's leases makes the rows it held
// (claimed, or leased to it at insert) claimable at once, reports the end
// as their LapsedLease, and leaves every other relay's leases and rows
// already published alone.
func testEndLeases(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	le, ok := s.(lanewaystore.LeaseEnder)
	if !ok {
		t.Log("the store does not implement lanewaystore.LeaseEnder: leases of stopped relays run out")
		return
	}
	insert(t, ctx, s, row("claimed-by-gone", 10, t0), row("claimed-by-live", 5, t0), row("published-by-gone", 1, t0))
	require.Equal(t, []string{"claimed-by-gone"}, msgIDs(claim(t, ctx, s, "gone", 1, t0)))
	require.Equal(t, []string{"claimed-by-live"}, msgIDs(claim(t, ctx, s, "live", 1, t0)))
	pub := claim(t, ctx, s, "gone", 1, t0)
	require.Equal(t, []string{"published-by-gone"}, msgIDs(pub))
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{
		WorkerID: "gone", Rows: []lanewaystore.PublishedRow{{ID: pub[0].ID, Stream: "customer"}}, At: t0,
	}))
	until := t0.Add(time.Minute)
	handed := row("handed-to-gone", 50, t0)
	handed.LockedBy, handed.LockedUntil = "gone", &until
	insert(t, ctx, s, handed)

	now := t0.Add(10 * time.Second)
	assert.Empty(t, claim(t, ctx, s, "other", 10, now), "every row is leased or published")

	n, err := le.EndLeases(ctx, lanewaystore.EndLeasesParams{Now: now})
	require.NoError(t, err)
	assert.Zero(t, n, "no relay named, nothing ended")

	n, err = le.EndLeases(ctx, lanewaystore.EndLeasesParams{WorkerIDs: []string{"gone", "never-seen"}, Now: now})
	require.NoError(t, err)
	assert.EqualValues(t, 2, n, "the stopped relay's claimed row and its row leased at insert")

	got := claim(t, ctx, s, "other", 10, now)
	assert.Equal(t, []string{"handed-to-gone", "claimed-by-gone"}, msgIDs(got), "claimable at once, long before the leases' end")
	for _, r := range got {
		if assert.NotNil(t, r.LapsedLease, "%s: the stopped relay may have appended it", r.MessageID) {
			assert.True(t, r.LapsedLease.Equal(now), "%s: lapsed lease %v, want %v", r.MessageID, r.LapsedLease, now)
		}
	}

	n, err = le.EndLeases(ctx, lanewaystore.EndLeasesParams{WorkerIDs: []string{"gone"}, Now: now})
	require.NoError(t, err)
	assert.Zero(t, n, "the rows are leased to their new claimer now")
	assert.Equal(t, lanewaystore.StatusPublished, byMsgID(t, ctx, s, "published-by-gone").Status)
	live := byMsgID(t, ctx, s, "claimed-by-live")
	assert.Equal(t, "live", live.LockedBy, "another relay's lease is kept")
	if assert.NotNil(t, live.LockedUntil) {
		assert.True(t, live.LockedUntil.Equal(until), "its lease still ends at %v, got %v", until, live.LockedUntil)
	}
}
