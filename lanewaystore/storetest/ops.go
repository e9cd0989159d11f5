package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

func testStats(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	st, err := s.OutboxStats(ctx)
	require.NoError(t, err)
	assert.Empty(t, st.Counts)
	assert.Nil(t, st.OldestPending)

	insert(t, ctx, s,
		row("h1", 50, t0.Add(1*time.Second)), row("h2", 50, t0.Add(2*time.Second)),
		row("n1", 0, t0.Add(3*time.Second)), row("l1", -50, t0.Add(4*time.Second)), row("l2", -50, t0.Add(5*time.Second)),
	)
	got := claim(t, ctx, s, "w1", 2, t0) // h1, h2
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w1", At: t0,
		Rows: []lanewaystore.PublishedRow{{ID: got[0].ID, Stream: "customer"}}}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{got[1].ID}, NextRetryAt: t0.Add(time.Hour)}))

	st, err = s.OutboxStats(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []lanewaystore.OutboxCount{
		{Status: lanewaystore.StatusPublished, Priority: 50, Count: 1},
		{Status: lanewaystore.StatusFailed, Priority: 50, Count: 1},
		{Status: lanewaystore.StatusPending, Priority: 0, Count: 1},
		{Status: lanewaystore.StatusPending, Priority: -50, Count: 2},
	}, st.Counts)
	require.NotNil(t, st.OldestPending)
	assert.True(t, st.OldestPending.Equal(t0.Add(2*time.Second)), "the failed h2 is the oldest unpublished row: %v", st.OldestPending)
}

func testList(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	for i := range 6 {
		insert(t, ctx, s, row(fmt.Sprintf("m%d", i), 0, t0.Add(time.Duration(i)*time.Second)))
	}
	got := claim(t, ctx, s, "w1", 2, t0) // m0, m1
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: rowIDs(got), Abandon: true}))

	list := func(p lanewaystore.ListOutboxParams) []string {
		rows, err := s.ListOutbox(ctx, p)
		require.NoError(t, err)
		return msgIDs(rows)
	}
	assert.Equal(t, []string{"m5", "m4", "m3", "m2", "m1", "m0"}, list(lanewaystore.ListOutboxParams{}))
	assert.Equal(t, []string{"m5", "m4"}, list(lanewaystore.ListOutboxParams{Limit: 2}))
	assert.Equal(t, []string{"m5", "m4", "m3", "m2"}, list(lanewaystore.ListOutboxParams{Status: lanewaystore.StatusPending}))
	assert.Equal(t, []string{"m1", "m0"}, list(lanewaystore.ListOutboxParams{Status: lanewaystore.StatusAbandoned}))
	assert.Empty(t, list(lanewaystore.ListOutboxParams{Status: lanewaystore.StatusPublished}))
}

func testRetry(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("ab1", 0, t0), row("ab2", 0, t0), row("failed", 0, t0), row("pub", 0, t0), row("pending", 0, t0))
	got := claim(t, ctx, s, "w1", 4, t0)
	require.Equal(t, []string{"ab1", "ab2", "failed", "pub"}, msgIDs(got))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: rowIDs(got[:2]), Error: "dead", Abandon: true}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{got[2].ID}, Error: "later", NextRetryAt: t0.Add(time.Hour)}))
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w1", At: t0, Rows: []lanewaystore.PublishedRow{{ID: got[3].ID, Stream: "customer"}}}))
	pendingID := byMsgID(t, ctx, s, "pending").ID

	retry := func(p lanewaystore.RetryOutboxParams) int64 {
		n, err := s.RetryOutbox(ctx, p)
		require.NoError(t, err)
		return n
	}
	// One failed row by id: claimable now instead of in an hour.
	assert.Equal(t, int64(1), retry(lanewaystore.RetryOutboxParams{ID: got[2].ID}))
	r := byMsgID(t, ctx, s, "failed")
	assert.Equal(t, lanewaystore.StatusPending, r.Status)
	assert.Zero(t, r.RetryCount)
	assert.Nil(t, r.NextRetryAt)
	assert.Empty(t, r.LockedBy)
	assert.Equal(t, "later", r.LastError, "last_error is kept as history")

	// Published and pending rows are not touched; unknown ids neither.
	assert.Zero(t, retry(lanewaystore.RetryOutboxParams{ID: got[3].ID}))
	assert.Zero(t, retry(lanewaystore.RetryOutboxParams{ID: pendingID}))
	assert.Zero(t, retry(lanewaystore.RetryOutboxParams{ID: 999999}))
	assert.Equal(t, lanewaystore.StatusPublished, byMsgID(t, ctx, s, "pub").Status)

	// Every abandoned row.
	assert.Equal(t, int64(2), retry(lanewaystore.RetryOutboxParams{Abandoned: true}))
	assert.Zero(t, retry(lanewaystore.RetryOutboxParams{Abandoned: true}))
	for _, id := range []string{"ab1", "ab2"} {
		r := byMsgID(t, ctx, s, id)
		assert.Equal(t, lanewaystore.StatusPending, r.Status)
		assert.Zero(t, r.RetryCount)
	}
	assert.Equal(t, []string{"ab1", "ab2", "failed", "pending"}, msgIDs(claim(t, ctx, s, "w2", 10, t0)))

	_, err := s.RetryOutbox(ctx, lanewaystore.RetryOutboxParams{})
	assert.Error(t, err, "nothing selected")
	_, err = s.RetryOutbox(ctx, lanewaystore.RetryOutboxParams{ID: 1, Abandoned: true})
	assert.Error(t, err, "ambiguous selection")
}

func testConcurrentClaimers(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	const total, workers, batch = 1000, 4, 50
	rows := make([]lanewaystore.OutboxRow, total)
	for i := range rows {
		rows[i] = row(fmt.Sprintf("m%04d", i), []int{-50, 0, 50}[i%3], t0)
	}
	insert(t, ctx, s, rows...)

	claimedBy := make([][]lanewaystore.OutboxRow, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			worker := fmt.Sprintf("w%d", w)
			for {
				got, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: worker, Limit: batch, Lease: time.Hour, Now: t0})
				if !assert.NoError(t, err) || len(got) == 0 {
					return
				}
				assert.LessOrEqual(t, len(got), batch)
				for _, r := range got {
					assert.Equal(t, worker, r.LockedBy)
				}
				claimedBy[w] = append(claimedBy[w], got...)
			}
		})
	}
	wg.Wait()

	seen := map[string]string{}
	for w, rows := range claimedBy {
		for _, r := range rows {
			if prev, dup := seen[r.MessageID]; dup {
				t.Errorf("%s claimed by %s and w%d", r.MessageID, prev, w)
			}
			seen[r.MessageID] = fmt.Sprintf("w%d", w)
		}
	}
	assert.Len(t, seen, total, "every row claimed")
	assert.Empty(t, claim(t, ctx, s, "late", batch, t0))
	for _, r := range all(t, ctx, s) {
		assert.Equal(t, seen[r.MessageID], r.LockedBy, "the stored lease matches the claim")
	}
}
