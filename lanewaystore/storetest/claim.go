package storetest

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

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

// A claim restricted to a priority range (a relay's production worker takes
// the rows at or above the lanes threshold, its backfill worker the rows
// below) returns only rows in the range, in claim order, and leaves every
// other row unleased for the other claimer.
func testClaimPriorities(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	prios := []int{-50, 0, -100, 50, -1, 100, -50, 0}
	for i, p := range prios {
		insert(t, ctx, s, row(fmt.Sprintf("m%d", i), p, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	c := func(worker string, limit int, r *lanewaystore.PriorityRange) []string {
		rows, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: worker, Limit: limit, Lease: time.Minute,
			Now: t0, Priorities: r})
		require.NoError(t, err)
		for _, row := range rows {
			assert.Equal(t, worker, row.LockedBy)
		}
		return msgIDs(rows)
	}
	production := &lanewaystore.PriorityRange{Min: 0, Max: math.MaxInt}
	backfill := &lanewaystore.PriorityRange{Min: math.MinInt, Max: -1}

	assert.Equal(t, []string{"m5", "m3"}, c("prod", 2, production))
	assert.Equal(t, []string{"m4", "m0"}, c("back", 2, backfill), "the production rows left are not the backfill claimer's")
	for _, r := range all(t, ctx, s) {
		switch r.MessageID {
		case "m5", "m3":
			assert.Equal(t, "prod", r.LockedBy, r.MessageID)
		case "m4", "m0":
			assert.Equal(t, "back", r.LockedBy, r.MessageID)
		default:
			assert.Equal(t, lanewaystore.StatusPending, r.Status, "%s is outside both claims", r.MessageID)
			assert.Empty(t, r.LockedBy, r.MessageID)
		}
	}
	assert.Equal(t, []string{"m1", "m7"}, c("prod", 10, production))
	assert.Empty(t, c("prod", 10, production), "no production row left")
	assert.Equal(t, []string{"m6"}, c("back", 10, &lanewaystore.PriorityRange{Min: -50, Max: -50}), "inclusive bounds")
	assert.Equal(t, []string{"m2"}, c("any", 10, nil), "nil: every priority")

	// Bounds beyond the column's 32-bit range are no bound on that side.
	ctx, s = setup(t, open)
	insert(t, ctx, s, row("lo", math.MinInt32, t0), row("hi", math.MaxInt32, t0))
	assert.Equal(t, []string{"hi", "lo"}, c("w", 10, &lanewaystore.PriorityRange{Min: math.MinInt, Max: math.MaxInt}))
}
