package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

// testLapsedLease: a claim reports, on each row an earlier attempt left
// unsettled, the end of the first such attempt's lease (the relay then
// looks for the row in its stream before appending it again), and nothing
// on a row no attempt left unsettled.
func testLapsedLease(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("published", 0, t0), row("failed", 0, t0), row("unsent", 0, t0),
		row("released", 0, t0), row("lapsed", 0, t0))
	first := claim(t, ctx, s, "w1", 10, t0)
	require.Len(t, first, 5)
	for _, r := range first {
		assert.Nil(t, r.LapsedLease, "%s: no earlier attempt", r.MessageID)
	}
	id := map[string]int64{}
	for _, r := range first {
		id[r.MessageID] = r.ID
	}
	firstEnd := t0.Add(time.Minute) // the claim helper's lease
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{
		WorkerID: "w1", Rows: []lanewaystore.PublishedRow{{ID: id["published"], Stream: "customer"}}, At: t0,
	}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{
		WorkerID: "w1", IDs: []int64{id["failed"]}, Error: "reply lost", NextRetryAt: t0,
	}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{
		WorkerID: "w1", IDs: []int64{id["unsent"]}, Error: "given back", Outage: true, NotSent: true,
	}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{
		WorkerID: "w1", IDs: []int64{id["released"]}, Error: "broker unreachable", Outage: true,
	}))
	// "lapsed" stays leased to w1 until its lease ends, as when w1 dies.

	lapsedOf := func(rows []lanewaystore.OutboxRow) map[string]*time.Time {
		out := map[string]*time.Time{}
		for _, r := range rows {
			out[r.MessageID] = r.LapsedLease
		}
		return out
	}
	assertEnd := func(got *time.Time, want time.Time, msg string) {
		t.Helper()
		if assert.NotNil(t, got, msg) {
			assert.True(t, got.Equal(want), "%s: lapsed lease %v, want %v", msg, got, want)
		}
	}

	second := lapsedOf(claim(t, ctx, s, "w2", 10, firstEnd))
	require.Len(t, second, 4, "every row but the published one is claimed again")
	assertEnd(second["failed"], firstEnd, "failed publish")
	assertEnd(second["released"], firstEnd, "publish released on an outage")
	assertEnd(second["lapsed"], firstEnd, "lease ran out")
	assert.Nil(t, second["unsent"], "rows given back unsent need no search")

	// w2's lease runs out too: every row now reports the first unsettled
	// lease, which bounds where a search must start; "unsent" reports w2's.
	secondEnd := firstEnd.Add(time.Minute)
	third := lapsedOf(claim(t, ctx, s, "w3", 10, secondEnd))
	require.Len(t, third, 4)
	for _, m := range []string{"failed", "released", "lapsed"} {
		assertEnd(third[m], firstEnd, m+" after a second lapse")
	}
	assertEnd(third["unsent"], secondEnd, "unsent, then lapsed")

	// A row leased at insert whose relay died is reported like a claimed one.
	ctx, s = setup(t, open)
	until := t0.Add(time.Minute)
	leased := row("handed-over", 50, t0)
	leased.LockedBy, leased.LockedUntil = "w1", &until
	insert(t, ctx, s, leased)
	got := claim(t, ctx, s, "w2", 10, until)
	require.Len(t, got, 1)
	assertEnd(got[0].LapsedLease, until, "lease taken at insert")
}
