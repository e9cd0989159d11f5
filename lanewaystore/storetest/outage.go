package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

// testMarkFailedOutage: a publish that failed because the broker was
// unreachable releases the rows without using up an attempt: the lease is
// cleared, last_error set, and retry_count, status and next_retry_at stay,
// so the rows are claimable again at once.
func testMarkFailedOutage(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("m1", 0, t0), row("m2", 0, t0))
	got := claim(t, ctx, s, "w1", 10, t0)
	require.Len(t, got, 2)
	retry := t0.Add(2 * time.Second)
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{got[1].ID}, Error: "bad row", NextRetryAt: retry}))

	m1 := []int64{got[0].ID}
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w2", IDs: m1, Error: "not mine", Outage: true}))
	assert.Equal(t, lanewaystore.StatusProcessing, byMsgID(t, ctx, s, "m1").Status, "rows leased by another worker are left alone")
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: m1, Error: "connection refused", Outage: true}))

	got = claim(t, ctx, s, "w1", 10, retry)
	require.Len(t, got, 2, "released at once, and the failed row at its retry time")
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: rowIDs(got), Error: "connection refused", Outage: true,
		NextRetryAt: retry.Add(time.Hour), Abandon: true}))
	r1, r2 := byMsgID(t, ctx, s, "m1"), byMsgID(t, ctx, s, "m2")
	assert.Equal(t, lanewaystore.StatusPending, r1.Status)
	assert.Zero(t, r1.RetryCount)
	assert.Equal(t, lanewaystore.StatusFailed, r2.Status)
	assert.Equal(t, 1, r2.RetryCount, "an outage is not an attempt")
	require.NotNil(t, r2.NextRetryAt)
	assert.True(t, r2.NextRetryAt.Equal(retry), "next_retry_at kept")
	for _, r := range []lanewaystore.OutboxRow{r1, r2} {
		assert.Equal(t, "connection refused", r.LastError)
		assert.Empty(t, r.LockedBy)
		assert.Nil(t, r.LockedUntil)
	}
	assert.Equal(t, []string{"m1", "m2"}, msgIDs(claim(t, ctx, s, "w3", 10, retry)), "claimable again at once")
}
