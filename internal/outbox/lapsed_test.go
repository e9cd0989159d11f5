package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewaystore"
)

// eachBroker runs f against the embedded broker and a real Redis.
func eachBroker(t *testing.T, f func(t *testing.T, b lanewaybroker.Broker)) {
	t.Run("embedded", func(t *testing.T) { f(t, openEmbedded(t)) })
	t.Run("redis", func(t *testing.T) { f(t, openRedis(t)) })
}

func insertRows(t *testing.T, s lanewaystore.Store, cat string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		row, _ := newRow(t, cat, 0, "x")
		insert(t, s, row)
		ids = append(ids, row.MessageID)
	}
	return ids
}

// A publish whose reply is lost has appended the rows; the attempt counts
// as failed, and the retry finds them in the stream instead of appending
// second copies. Both ways a failed publish settles its rows are covered:
// marked failed (the broker answered with an error) and released (the
// broker did not answer a ping either).
func TestLostPublishReplyIsNotPublishedTwice(t *testing.T) {
	for _, unreachable := range []bool{false, true} {
		name := "marked failed"
		if unreachable {
			name = "released"
		}
		t.Run(name, func(t *testing.T) {
			eachBroker(t, func(t *testing.T, b lanewaybroker.Broker) {
				ctx := context.Background()
				s := openSQLite(t)
				f := brokertest.NewFaulty(b)
				clk := newClock()
				cat := testsvc.Prefix() + "customer"
				t.Cleanup(func() { dropStream(t, b, cat) })
				r := outbox.New(s, f, outbox.Config{Now: clk.Now, Retry: outbox.Retry{MaxAttempts: 5, BaseDelay: time.Second}})
				ids := insertRows(t, s, cat, 5)

				lost := errors.New("ERR the reply was lost")
				f.FailPublishAfterAppend(lost)
				if unreachable {
					f.FailPing(lost)
				}
				_, err := r.RunOnce(ctx)
				require.ErrorIs(t, err, lost)
				require.Equal(t, ids, streamIDs(t, b, cat), "the lost reply's append landed")
				for _, id := range ids {
					row := listAll(t, s)[id]
					require.NotEqual(t, lanewaystore.StatusPublished, row.Status)
					require.Empty(t, row.LockedBy, "the rows were settled, not left leased")
				}

				f.Heal()
				clk.Advance(time.Minute)
				n, err := r.RunOnce(ctx)
				require.NoError(t, err)
				assert.Equal(t, 5, n, "the rows are marked published")
				assert.Equal(t, ids, streamIDs(t, b, cat), "each row is in its stream once")
				assert.EqualValues(t, 5, r.Stats().FoundAppended)
				for _, id := range ids {
					assert.Equal(t, lanewaystore.StatusPublished, listAll(t, s)[id].Status)
					assert.Equal(t, cat, publishedStream(t, s, id))
				}
			})
		})
	}
}

// unmarkingStore fails every MarkPublished and MarkFailed: a relay that
// lost the database between its append and its mark, or died there.
type unmarkingStore struct{ lanewaystore.Store }

var errDatabaseGone = errors.New("database gone")

func (unmarkingStore) MarkPublished(context.Context, lanewaystore.MarkPublishedParams) error {
	return errDatabaseGone
}

func (unmarkingStore) MarkFailed(context.Context, lanewaystore.MarkFailedParams) error {
	return errDatabaseGone
}

// ourIDs returns the message ids of the entries of stream that are
// envelopes, in order.
func ourIDs(t *testing.T, b lanewaybroker.Broker, stream string) (ids, entryIDs []string) {
	t.Helper()
	es, err := b.Range(context.Background(), stream, "-", "+", 0)
	require.NoError(t, err)
	for _, e := range es {
		if env, err := envelope.DecodeString(e.Data); err == nil {
			ids, entryIDs = append(ids, env.Metadata.Headers.ID), append(entryIDs, e.ID)
		}
	}
	return ids, entryIDs
}

// A relay that appended rows and could not mark them leaves them leased;
// the relay that claims them when the lease runs out appends only the ones
// that are not in the stream (here two of four, whose entries were
// deleted, as if their appends had not landed). The stream holds 2,500
// entries of another writer before them, so the search reads several pages
// and passes over entries that are not envelopes.
func TestLapsedLeaseAppendsOnlyWhatIsMissing(t *testing.T) {
	eachBroker(t, func(t *testing.T, b lanewaybroker.Broker) {
		ctx := context.Background()
		s := openSQLite(t)
		clk := newClock()
		cat := testsvc.Prefix() + "customer"
		t.Cleanup(func() { dropStream(t, b, cat) })
		filler := make([]lanewaybroker.Publication, 2500)
		for i := range filler {
			filler[i] = lanewaybroker.Publication{Stream: cat, Data: "not an envelope"}
		}
		_, err := b.Publish(ctx, filler)
		require.NoError(t, err)
		ids := insertRows(t, s, cat, 4)
		lease := 30 * time.Second
		dead := outbox.New(unmarkingStore{s}, b, outbox.Config{WorkerID: "relay-dead", Now: clk.Now, Lease: lease})
		_, err = dead.RunOnce(ctx)
		require.ErrorIs(t, err, errDatabaseGone)
		got, entries := ourIDs(t, b, cat)
		require.Equal(t, ids, got)
		_, err = b.Delete(ctx, cat, entries[1], entries[3])
		require.NoError(t, err)

		live := outbox.New(s, b, outbox.Config{WorkerID: "relay-live", Now: clk.Now, Lease: lease})
		n, err := live.RunOnce(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "the dead relay's lease still holds")

		clk.Advance(lease + time.Second)
		n, err = live.RunOnce(ctx)
		require.NoError(t, err)
		assert.Equal(t, 4, n)
		got, _ = ourIDs(t, b, cat)
		assert.Equal(t, []string{ids[0], ids[2], ids[1], ids[3]}, got,
			"the two rows found are not appended again; the two missing ones are")
		assert.EqualValues(t, 2, live.Stats().FoundAppended)
		for _, id := range ids {
			assert.Equal(t, lanewaystore.StatusPublished, listAll(t, s)[id].Status)
		}
	})
}
