package outbox_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

// countingEnder counts the store's EndLeases statements.
type countingEnder struct {
	lanewaystore.Store
	calls atomic.Int32
}

func (c *countingEnder) EndLeases(ctx context.Context, p lanewaystore.EndLeasesParams) (int64, error) {
	c.calls.Add(1)
	return c.Store.(lanewaystore.LeaseEnder).EndLeases(ctx, p)
}

// The rows a stopped relay held are published as soon as the relay is
// named stopped, not when their hour-long leases run out: the rows it had
// claimed and appended (two of whose appends are taken not to have landed),
// and a production row leased to it at insert for the hand-off. Each ends
// up in its stream once. A live relay's lease is kept, and the stopped
// relay's leases are ended once however often it is named.
func TestStoppedRelaysLeasesEndAtOnce(t *testing.T) {
	eachBroker(t, func(t *testing.T, b lanewaybroker.Broker) {
		ctx := context.Background()
		s := &countingEnder{Store: openSQLite(t)}
		cat := testsvc.Prefix() + "customer"
		t.Cleanup(func() { dropStream(t, b, cat) })
		lease := time.Hour

		ids := insertRows(t, s, cat, 4)
		dead := outbox.New(unmarkingStore{s}, b, outbox.Config{WorkerID: "relay-dead", Lease: lease})
		_, err := dead.RunOnce(ctx)
		require.ErrorIs(t, err, errDatabaseGone)
		got, entries := ourIDs(t, b, cat)
		require.Equal(t, ids, got)
		_, err = b.Delete(ctx, cat, entries[1], entries[3])
		require.NoError(t, err)

		until := time.Now().Add(lease)
		handed, _ := newRow(t, cat, 50, "handed")
		handed.LockedBy, handed.LockedUntil = "relay-dead", &until
		other, _ := newRow(t, cat, 0, "other")
		other.LockedBy, other.LockedUntil = "relay-other", &until
		insert(t, s, handed, other)

		var asked atomic.Int32
		live := outbox.New(s, b, outbox.Config{
			WorkerID: "relay-live", Lease: lease, StoppedCheckInterval: 5 * time.Millisecond,
			StoppedRelays: func(context.Context) ([]string, error) {
				asked.Add(1)
				return []string{"relay-dead", "relay-live"}, nil
			},
		})
		require.NoError(t, live.Start(ctx))
		t.Cleanup(func() { stop(t, live) })

		want := append(append([]string{}, ids...), handed.MessageID)
		require.Eventually(t, func() bool {
			rows := listAll(t, s)
			for _, id := range want {
				if rows[id].Status != lanewaystore.StatusPublished {
					return false
				}
			}
			return true
		}, 20*time.Second, 10*time.Millisecond, "the stopped relay's rows are published long before their leases end")

		got, _ = ourIDs(t, b, cat)
		assert.ElementsMatch(t, want, got, "each row is in its stream once")
		st := live.Stats()
		assert.EqualValues(t, 5, st.LeasesEnded, "four claimed rows and one leased at insert")
		assert.EqualValues(t, 2, st.FoundAppended, "the two appends that landed are not made again")

		seen := asked.Load()
		require.Eventually(t, func() bool { return asked.Load() >= seen+3 }, 10*time.Second, 5*time.Millisecond)
		assert.EqualValues(t, 1, s.calls.Load(), "a stopped relay's leases are ended once")
		row := listAll(t, s)[other.MessageID]
		assert.Equal(t, "relay-other", row.LockedBy, "a live relay's lease is kept")
		assert.NotEqual(t, lanewaystore.StatusPublished, row.Status)
	})
}
