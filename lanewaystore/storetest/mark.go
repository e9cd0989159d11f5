package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

func testMarkPublished(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("m1", 0, t0), row("m2", -50, t0), row("m3", 0, t0), row("other", -100, t0))
	mine := claim(t, ctx, s, "w1", 3, t0)
	require.Equal(t, []string{"m1", "m3", "m2"}, msgIDs(mine))
	theirs := claim(t, ctx, s, "w2", 3, t0)
	require.Equal(t, []string{"other"}, msgIDs(theirs))

	at := t0.Add(time.Second)
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w1", At: at, Rows: []lanewaystore.PublishedRow{
		{ID: mine[0].ID, Stream: "customer"},
		{ID: mine[2].ID, Stream: "customer:backfill"},
		{ID: theirs[0].ID, Stream: "customer"}, // leased by w2: ignored
	}}))
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w1", At: at}), "empty batch")

	for id, stream := range map[string]string{"m1": "customer", "m2": "customer:backfill"} {
		r := byMsgID(t, ctx, s, id)
		assert.Equal(t, lanewaystore.StatusPublished, r.Status, id)
		assert.Equal(t, stream, r.PublishedStream, id)
		require.NotNil(t, r.PublishedAt, id)
		assert.True(t, r.PublishedAt.Equal(at), id)
		assert.Empty(t, r.LockedBy, id)
		assert.Nil(t, r.LockedUntil, id)
	}
	for id, worker := range map[string]string{"m3": "w1", "other": "w2"} {
		r := byMsgID(t, ctx, s, id)
		assert.Equal(t, lanewaystore.StatusProcessing, r.Status, id)
		assert.Equal(t, worker, r.LockedBy, id)
		assert.Nil(t, r.PublishedAt, id)
		assert.Empty(t, r.PublishedStream, id)
	}
	// Published rows are never claimed again, even long after.
	assert.Equal(t, []string{"m3", "other"}, msgIDs(claim(t, ctx, s, "w3", 10, t0.Add(24*time.Hour))))
}

func testMarkFailed(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("m1", 0, t0), row("m2", 0, t0))
	got := claim(t, ctx, s, "w1", 10, t0)
	require.Len(t, got, 2)
	ids := rowIDs(got)

	retry := t0.Add(2 * time.Second)
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w2", IDs: ids, Error: "not mine", NextRetryAt: retry}))
	for _, r := range all(t, ctx, s) {
		assert.Equal(t, lanewaystore.StatusProcessing, r.Status, "rows leased by another worker are left alone")
		assert.Zero(t, r.RetryCount)
	}

	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: ids, Error: "first", NextRetryAt: retry}))
	for _, r := range all(t, ctx, s) {
		assert.Equal(t, lanewaystore.StatusFailed, r.Status)
		assert.Equal(t, 1, r.RetryCount)
		assert.Equal(t, "first", r.LastError)
		require.NotNil(t, r.NextRetryAt)
		assert.True(t, r.NextRetryAt.Equal(retry))
		assert.Empty(t, r.LockedBy)
		assert.Nil(t, r.LockedUntil)
	}

	got = claim(t, ctx, s, "w1", 10, retry)
	require.Len(t, got, 2)
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{got[0].ID}, Error: "second", NextRetryAt: retry.Add(4 * time.Second)}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{got[1].ID}, Error: "give up", Abandon: true}))
	r0, r1 := byMsgID(t, ctx, s, got[0].MessageID), byMsgID(t, ctx, s, got[1].MessageID)
	assert.Equal(t, lanewaystore.StatusFailed, r0.Status)
	assert.Equal(t, 2, r0.RetryCount)
	assert.Equal(t, "second", r0.LastError)
	assert.Equal(t, lanewaystore.StatusAbandoned, r1.Status)
	assert.Equal(t, 2, r1.RetryCount)
	assert.Equal(t, "give up", r1.LastError)
	assert.Nil(t, r1.NextRetryAt)
	assert.Empty(t, r1.LockedBy)

	// Abandoned rows are never claimed.
	assert.Equal(t, []string{got[0].MessageID}, msgIDs(claim(t, ctx, s, "w1", 10, t0.Add(time.Hour))))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", Error: "x"}), "empty batch")
}

func testCleanup(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	cut := t0
	// Published long ago and recently; abandoned (by created_at) long ago and
	// recently; pending and failed rows that are old but still live.
	insert(t, ctx, s,
		row("pub-old1", 0, cut.Add(-5*time.Hour)), row("pub-old2", 0, cut.Add(-5*time.Hour)), row("pub-new", 0, cut.Add(-5*time.Hour)),
		row("ab-old", -50, cut.Add(-3*time.Hour)), row("ab-new", -50, cut.Add(-time.Minute)),
		row("pending-old", 0, cut.Add(-9*time.Hour)), row("failed-old", 0, cut.Add(-9*time.Hour)),
	)
	claimed := claim(t, ctx, s, "w1", 10, cut)
	byID := map[string]int64{}
	for _, r := range claimed {
		byID[r.MessageID] = r.ID
	}
	publish := func(id string, at time.Time) {
		require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w1", At: at,
			Rows: []lanewaystore.PublishedRow{{ID: byID[id], Stream: "customer"}}}))
	}
	publish("pub-old1", cut.Add(-2*time.Hour))
	publish("pub-old2", cut.Add(-time.Hour-time.Microsecond))
	publish("pub-new", cut.Add(-time.Hour)) // exactly at the cutoff: kept
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{byID["ab-old"], byID["ab-new"]}, Abandon: true}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{byID["failed-old"]}, NextRetryAt: cut}))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{WorkerID: "w1", IDs: []int64{byID["pending-old"]}, Abandon: true}))
	_, err := s.RetryOutbox(ctx, lanewaystore.RetryOutboxParams{ID: byID["pending-old"]})
	require.NoError(t, err)

	p := lanewaystore.CleanupParams{PublishedBefore: cut.Add(-time.Hour), AbandonedBefore: cut.Add(-time.Hour), Limit: 2}
	n, err := s.CleanupOutbox(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "bounded by Limit")
	n, err = s.CleanupOutbox(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	n, err = s.CleanupOutbox(ctx, p)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.ElementsMatch(t, []string{"pub-new", "ab-new", "pending-old", "failed-old"}, msgIDs(all(t, ctx, s)))

	// Zero cutoffs delete nothing.
	n, err = s.CleanupOutbox(ctx, lanewaystore.CleanupParams{Limit: 100})
	require.NoError(t, err)
	assert.Zero(t, n)
}

// A claim writes only the lease; the store reports leased rows as processing
// in every view, and the stored status (pending or failed) decides what the
// row is once the lease is gone.
func testLeaseIsProcessing(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("p1", 0, t0), row("f1", 0, t0.Add(time.Second)))
	first := claim(t, ctx, s, "w1", 10, t0)
	require.Equal(t, []string{"p1", "f1"}, msgIDs(first))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{
		WorkerID: "w1", IDs: []int64{first[1].ID}, Error: "redis down", NextRetryAt: t0}))
	again := claim(t, ctx, s, "w1", 10, t0)
	require.Equal(t, []string{"f1"}, msgIDs(again), "the failed row is due; p1 is still leased")
	assert.Equal(t, lanewaystore.StatusProcessing, again[0].Status)
	assert.Equal(t, 1, again[0].RetryCount)
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		var stored string
		require.NoError(t, tx.QueryRow(ctx, `SELECT string_agg(status, ',') FROM (SELECT status FROM outbox ORDER BY id) s`).Scan(&stored))
		assert.Equal(t, "pending,failed", stored, "the claim wrote only the lease")
		return nil
	}))

	for _, id := range []string{"p1", "f1"} {
		assert.Equal(t, lanewaystore.StatusProcessing, byMsgID(t, ctx, s, id).Status, id)
	}
	list := func(status lanewaystore.OutboxStatus) []string {
		rows, err := s.ListOutbox(ctx, lanewaystore.ListOutboxParams{Status: status})
		require.NoError(t, err)
		return msgIDs(rows)
	}
	assert.Equal(t, []string{"f1", "p1"}, list(lanewaystore.StatusProcessing))
	assert.Empty(t, list(lanewaystore.StatusPending))
	assert.Empty(t, list(lanewaystore.StatusFailed))
	st, err := s.OutboxStats(ctx)
	require.NoError(t, err)
	assert.Equal(t, []lanewaystore.OutboxCount{{Status: lanewaystore.StatusProcessing, Priority: 0, Count: 2}}, st.Counts)
	assert.Nil(t, st.OldestPending, "leased rows are not waiting")

	n, err := s.RetryOutbox(ctx, lanewaystore.RetryOutboxParams{ID: again[0].ID})
	require.NoError(t, err)
	assert.Zero(t, n, "a leased row is not reset under its relay")

	// The leases run out: another worker takes both, and the stored status
	// still tells the failed row from the pending one.
	later := t0.Add(time.Hour)
	taken := claim(t, ctx, s, "w2", 10, later)
	require.Equal(t, []string{"p1", "f1"}, msgIDs(taken))
	require.NoError(t, s.MarkFailed(ctx, lanewaystore.MarkFailedParams{
		WorkerID: "w2", IDs: []int64{taken[1].ID}, Error: "still down", NextRetryAt: later.Add(time.Minute)}))
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{
		WorkerID: "w2", At: later, Rows: []lanewaystore.PublishedRow{{ID: taken[0].ID, Stream: "customer"}}}))
	f1 := byMsgID(t, ctx, s, "f1")
	assert.Equal(t, lanewaystore.StatusFailed, f1.Status)
	assert.Equal(t, 2, f1.RetryCount)
	assert.Equal(t, lanewaystore.StatusPublished, byMsgID(t, ctx, s, "p1").Status)
	assert.Empty(t, claim(t, ctx, s, "w2", 10, later), "f1 waits for its retry time")
}

// Rows stored as processing (by a relay of schema version 1 still running
// during an upgrade) are reported, claimed and marked as before.
func testStoredProcessingRows(t *testing.T, open Opener) {
	ctx, s := setup(t, open)
	insert(t, ctx, s, row("old", 0, t0), row("new", 0, t0.Add(time.Second)))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE outbox SET status = 'processing', locked_by = 'v1-relay' WHERE message_id = 'old'`)
		return err
	}))
	assert.Equal(t, lanewaystore.StatusProcessing, byMsgID(t, ctx, s, "old").Status)
	got := claim(t, ctx, s, "w1", 10, t0)
	require.Equal(t, []string{"old", "new"}, msgIDs(got), "a processing row without a lease end is claimable")
	require.NoError(t, s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w1", At: t0,
		Rows: []lanewaystore.PublishedRow{{ID: got[0].ID, Stream: "customer"}}}))
	assert.Equal(t, lanewaystore.StatusPublished, byMsgID(t, ctx, s, "old").Status)
}

// UpgradeFromVersion1 checks migration 2 on a store whose schema migrateV1
// brings to version 1 only: rows that a version-1 relay had stored as
// processing keep their lease and get back the status they had before the
// claim, so they are reported as processing and claimable once the lease
// ends, the failed ones keeping their retry count.
func UpgradeFromVersion1(t *testing.T, s lanewaystore.Store, migrateV1 func(context.Context) error) {
	ctx := t.Context()
	require.NoError(t, migrateV1(ctx))
	insert(t, ctx, s, row("idle", 0, t0), row("leased", 0, t0.Add(time.Second)), row("retried", 0, t0.Add(2*time.Second)))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE outbox SET status = 'processing', locked_by = 'v1-relay'
			WHERE message_id IN ('leased', 'retried')`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE outbox SET retry_count = 2, last_error = 'redis down' WHERE message_id = 'retried'`)
		return err
	}))
	require.NoError(t, s.Migrate(ctx))

	stored := map[string]string{}
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		rows, err := tx.Query(ctx, `SELECT message_id, status, coalesce(locked_by, '') FROM outbox`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, status, lockedBy string
			if err := rows.Scan(&id, &status, &lockedBy); err != nil {
				return err
			}
			stored[id] = status + "/" + lockedBy
		}
		return rows.Err()
	}))
	assert.Equal(t, map[string]string{"idle": "pending/", "leased": "pending/v1-relay", "retried": "failed/v1-relay"}, stored)
	for id, want := range map[string]lanewaystore.OutboxStatus{
		"idle": lanewaystore.StatusPending, "leased": lanewaystore.StatusProcessing, "retried": lanewaystore.StatusProcessing,
	} {
		assert.Equal(t, want, byMsgID(t, ctx, s, id).Status, id)
	}
	got := claim(t, ctx, s, "w1", 10, t0)
	require.Equal(t, []string{"idle", "leased", "retried"}, msgIDs(got))
	assert.Equal(t, 2, got[2].RetryCount)
}
