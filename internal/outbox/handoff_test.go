package outbox_test

import (
	"context"
	"errors"
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

var errRolledBack = errors.New("rolled back")

// unitOfWork inserts rows as the app's units of work do: registered with
// the relay before the insert, settled with the transaction's outcome.
func unitOfWork(t testing.TB, s lanewaystore.Store, r *outbox.Relay, rows ...lanewaystore.OutboxRow) *outbox.Ticket {
	t.Helper()
	ticket := r.Lease(rows)
	err := s.InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.InsertOutbox(ctx, rows)
	})
	require.NoError(t, err)
	ticket.Settle(nil)
	return ticket
}

// waitHandOff waits until the relay leases production rows, which it does
// once a claim pass after its start has found nothing of this process
// waiting.
func waitHandOff(t testing.TB, r *outbox.Relay, cat string) {
	t.Helper()
	probe, _ := newRow(t, cat, 0, "probe")
	require.Eventually(t, func() bool {
		rows := []lanewaystore.OutboxRow{probe}
		ticket := r.Lease(rows)
		ticket.Settle(errRolledBack) // never inserted
		return ticket.Leased()
	}, 30*time.Second, time.Millisecond, "the relay never turned the hand-off on")
}

// startHandOff starts a relay with lanes on and no polls, and waits until
// it hands production rows off. The caller stops it.
func startHandOff(t testing.TB, s lanewaystore.Store, b lanewaybroker.Broker, cat string) *outbox.Relay {
	t.Helper()
	r := outbox.New(s, b, outbox.Config{Lanes: lanesOn(), TickInterval: time.Hour, MaxTickInterval: time.Hour})
	require.NoError(t, r.Start(context.Background()))
	waitHandOff(t, r, cat)
	return r
}

func streamIDs(t testing.TB, b lanewaybroker.Broker, stream string) []string {
	t.Helper()
	var ids []string
	for _, e := range decodeStream(t, b, stream) {
		ids = append(ids, e.Metadata.Headers.ID)
	}
	return ids
}

// Production rows written by this process's units of work are published
// without a claim, in the order they were written, and marked published;
// backfill rows and rows of a mixed unit of work are claimed as before.
func TestHandOffPublishesWithoutClaim(t *testing.T) {
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			s := sc.open(t)
			b := openEmbedded(t)
			cat := testsvc.Prefix() + "customer"
			r := startHandOff(t, s, b, cat)
			defer stop(t, r)

			var want []string
			for i := range 5 {
				var rows []lanewaystore.OutboxRow
				for range i + 1 {
					row, _ := newRow(t, cat, 50*(i%2), "prod") // NORMAL and HIGH
					rows = append(rows, row)
					want = append(want, row.MessageID)
				}
				ticket := unitOfWork(t, s, r, rows...)
				assert.True(t, ticket.Leased())
				for _, row := range rows {
					assert.NotZero(t, row.ID, "the insert gives the row its id")
				}
			}
			require.Eventually(t, func() bool { return r.Stats().Published == int64(len(want)) }, 30*time.Second, time.Millisecond)
			assert.Equal(t, int64(len(want)), r.Stats().HandedOff)
			assert.Equal(t, want, streamIDs(t, b, cat), "published in the order written")
			for _, id := range want {
				row := listAll(t, s)[id]
				assert.Equal(t, lanewaystore.StatusPublished, row.Status, id)
				assert.Equal(t, cat, row.PublishedStream, id)
			}

			// A backfill row, and a unit of work that writes both, are not
			// leased: the claim loops publish them.
			low, _ := newRow(t, cat, -50, "low")
			assert.Nil(t, r.Lease([]lanewaystore.OutboxRow{low}), "no production row: nothing to register")
			mixedProd, _ := newRow(t, cat, 0, "mixed")
			mixedLow, _ := newRow(t, cat, -50, "mixed")
			mixed := []lanewaystore.OutboxRow{mixedProd, mixedLow}
			ticket := unitOfWork(t, s, r, mixed...)
			assert.False(t, ticket.Leased())
			assert.Empty(t, mixed[0].LockedBy)
			r.Notify()
			require.Eventually(t, func() bool { return r.Stats().Published == int64(len(want)+2) }, 30*time.Second, time.Millisecond)
			assert.Equal(t, int64(len(want)), r.Stats().HandedOff, "the mixed unit of work was claimed")
		})
	}
}

// plainStore hides the store's LeasingInserter: a store that does not say
// it writes leases at insert.
type plainStore struct{ lanewaystore.Store }

// On a store that does not report writing leases at insert, every row is
// claimed: leasing a row such a store would insert unleased, or without
// giving its id, would publish it twice.
func TestHandOffNeedsLeasingStore(t *testing.T) {
	ctx := context.Background()
	s := plainStore{openSQLite(t)}
	b := openEmbedded(t)
	cat := testsvc.Prefix() + "customer"
	r := outbox.New(s, b, outbox.Config{Lanes: lanesOn()})
	require.NoError(t, r.Start(ctx))
	defer stop(t, r)
	row, _ := newRow(t, cat, 0, "prod")
	assert.Nil(t, r.Lease([]lanewaystore.OutboxRow{row}))
	insert(t, s, row)
	r.Notify()
	require.Eventually(t, func() bool { return r.Stats().Published == 1 }, 30*time.Second, time.Millisecond)
	assert.Zero(t, r.Stats().HandedOff)
}

// Two units of work on one stream are published in the order they were
// registered even when the second commits first; other streams do not wait
// for them, and a rolled-back unit of work holds nothing up.
func TestHandOffOrderPerStream(t *testing.T) {
	s := openSQLite(t)
	b := openEmbedded(t)
	cat := testsvc.Prefix() + "customer"
	r := startHandOff(t, s, b, cat)
	defer stop(t, r)

	first, _ := newRow(t, cat, 0, "first")
	second, _ := newRow(t, cat, 0, "second")
	other, _ := newRow(t, cat, 0, "other")
	other.StreamName = cat + "-7"
	rolledBack, _ := newRow(t, cat, 0, "rolled back")

	firstRows := []lanewaystore.OutboxRow{first}
	firstTicket := r.Lease(firstRows) // registered, not yet committed
	require.True(t, firstTicket.Leased())
	gone := r.Lease([]lanewaystore.OutboxRow{rolledBack})
	require.True(t, gone.Leased())
	gone.Settle(errRolledBack)
	unitOfWork(t, s, r, second)
	unitOfWork(t, s, r, other)

	require.Eventually(t, func() bool { return r.Stats().Published == 1 }, 30*time.Second, time.Millisecond)
	assert.Equal(t, []string{other.MessageID}, streamIDs(t, b, cat),
		"the other stream's row is published; the second row waits for the first of its stream")

	insert(t, s, firstRows...)
	firstTicket.Settle(nil)
	require.Eventually(t, func() bool { return r.Stats().Published == 3 }, 30*time.Second, time.Millisecond)
	assert.Equal(t, []string{other.MessageID, first.MessageID, second.MessageID}, streamIDs(t, b, cat))
	assert.Equal(t, int64(3), r.Stats().HandedOff)
	_, ok := listAll(t, s)[rolledBack.MessageID]
	assert.False(t, ok, "the rolled-back row was never written")
}

// A unit of work that writes to two streams holds both: a later unit of
// work on its second stream waits for it even when it waits only on its
// first.
func TestHandOffOrderAcrossStreams(t *testing.T) {
	s := openSQLite(t)
	b := openEmbedded(t)
	cat := testsvc.Prefix() + "customer"
	r := startHandOff(t, s, b, cat)
	defer stop(t, r)

	row := func(tag, stream string) lanewaystore.OutboxRow {
		x, _ := newRow(t, cat, 0, tag)
		x.StreamName = cat + "-" + stream
		return x
	}
	first := row("first", "1")
	both1, both2 := row("both", "1"), row("both", "2")
	onTwo := row("on two", "2")
	other := row("other", "3")

	firstRows := []lanewaystore.OutboxRow{first}
	firstTicket := r.Lease(firstRows) // registered, not yet committed
	require.True(t, firstTicket.Leased())
	unitOfWork(t, s, r, both1, both2)
	unitOfWork(t, s, r, onTwo)
	unitOfWork(t, s, r, other)

	require.Eventually(t, func() bool { return r.Stats().Published == 1 }, 30*time.Second, time.Millisecond)
	assert.Equal(t, []string{other.MessageID}, streamIDs(t, b, cat),
		"the row on stream 2 waits for the unit of work that also wrote stream 1")

	insert(t, s, firstRows...)
	firstTicket.Settle(nil)
	require.Eventually(t, func() bool { return r.Stats().Published == 5 }, 30*time.Second, time.Millisecond)
	assert.Equal(t, []string{other.MessageID, first.MessageID, both1.MessageID, both2.MessageID, onTwo.MessageID}, streamIDs(t, b, cat))
}

// A stopped relay loses nothing: rows that committed before the stop are
// published, and rows whose unit of work commits after it are handed back
// at once, so the next relay claims them without waiting for the lease.
func TestHandOffStop(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	b := openEmbedded(t)
	cat := testsvc.Prefix() + "customer"
	r := startHandOff(t, s, b, cat)

	before, _ := newRow(t, cat, 0, "before")
	unitOfWork(t, s, r, before)
	late, _ := newRow(t, cat, 0, "late")
	lateRows := []lanewaystore.OutboxRow{late}
	lateTicket := r.Lease(lateRows)
	require.True(t, lateTicket.Leased())
	insert(t, s, lateRows...)
	stop(t, r)
	lateTicket.Settle(nil)

	rows := listAll(t, s)
	assert.Equal(t, lanewaystore.StatusPublished, rows[before.MessageID].Status)
	assert.Equal(t, lanewaystore.StatusPending, rows[late.MessageID].Status, "handed back: no lease")
	assert.Empty(t, rows[late.MessageID].LockedBy)
	require.NotEmpty(t, lateRows[0].LockedBy)
	refused := r.Lease(lateRows)
	assert.False(t, refused.Leased(), "a stopped relay leases nothing")
	assert.Empty(t, lateRows[0].LockedBy, "a lease from an earlier attempt is taken off the rows")
	assert.Nil(t, lateRows[0].LockedUntil)
	refused.Settle(errRolledBack)

	next := outbox.New(s, b, outbox.Config{Lanes: lanesOn()})
	n, err := next.RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the next relay claims the late row at once")
	assert.Equal(t, []string{before.MessageID, late.MessageID}, streamIDs(t, b, cat))
}

// failingBroker fails every publish while failing is set.
type failingBroker struct {
	lanewaybroker.Broker
	failing chan struct{} // closed: publishes succeed again
}

func (f *failingBroker) Publish(ctx context.Context, pubs []lanewaybroker.Publication) ([]string, error) {
	select {
	case <-f.failing:
		return f.Broker.Publish(ctx, pubs)
	default:
		return nil, errors.New("ERR rejected by the test")
	}
}

// A failed publish of handed-off rows marks them failed like claimed rows:
// they are retried through the claim path and published once the broker
// takes them, and the hand-off turns on again after that.
func TestHandOffPublishFailure(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	fb := &failingBroker{Broker: openEmbedded(t), failing: make(chan struct{})}
	cat := testsvc.Prefix() + "customer"
	r := outbox.New(s, fb, outbox.Config{Lanes: lanesOn(), Retry: outbox.Retry{BaseDelay: time.Millisecond, MaxBackoff: time.Millisecond, MaxAttempts: 1000}})
	require.NoError(t, r.Start(ctx))
	defer stop(t, r)
	waitHandOff(t, r, cat)

	row, _ := newRow(t, cat, 0, "prod")
	require.True(t, unitOfWork(t, s, r, row).Leased())
	require.Eventually(t, func() bool { return r.Stats().Failed >= 1 }, 30*time.Second, time.Millisecond)
	next, _ := newRow(t, cat, 0, "while failing")
	assert.False(t, unitOfWork(t, s, r, next).Leased(), "after a failed publish production rows are claimed")

	close(fb.failing)
	require.Eventually(t, func() bool { return r.Stats().Published == 2 }, 30*time.Second, time.Millisecond)
	assert.Equal(t, []string{row.MessageID, next.MessageID}, streamIDs(t, fb, cat))
	assert.GreaterOrEqual(t, listAll(t, s)[row.MessageID].RetryCount, 1)
	waitHandOff(t, r, cat)
}

// heldMarks holds every MarkPublished until release is closed, and records
// how many rows each one marked.
type heldMarks struct {
	lanewaystore.Store
	release chan struct{}
	started chan int     // the rows of each mark, as it begins
	gaveUp  atomic.Int32 // marks whose context ended while held
}

func (h *heldMarks) LeasesOnInsert() bool { return true }

func (h *heldMarks) MarkPublished(ctx context.Context, p lanewaystore.MarkPublishedParams) error {
	h.started <- len(p.Rows)
	select {
	case <-h.release:
	case <-ctx.Done():
		h.gaveUp.Add(1)
		return ctx.Err()
	}
	return h.Store.MarkPublished(ctx, p)
}

// Production rows committed while a mark of handed-off rows waits for the
// database are published at once, not after the mark, and marked once it
// ends (that they are marked together is TestMarkerOneAtATimeAndBounded's).
// A worker that waited for each mark before it published the next rows
// fails this: the third row would stay in memory until the first mark
// ended.
func TestHandOffPublishesWhileMarkWaits(t *testing.T) {
	h := &heldMarks{Store: openSQLite(t), release: make(chan struct{}), started: make(chan int, 16)}
	b := openEmbedded(t)
	cat := testsvc.Prefix() + "customer"
	r := startHandOff(t, h, b, cat)
	defer stop(t, r)

	first, _ := newRow(t, cat, 0, "first")
	unitOfWork(t, h, r, first)
	require.Equal(t, 1, <-h.started, "the first row's mark begins, and is held")

	// One at a time, so that each is published by a batch of its own.
	second, _ := newRow(t, cat, 0, "second")
	third, _ := newRow(t, cat, 0, "third")
	want := []string{first.MessageID}
	for _, row := range []lanewaystore.OutboxRow{second, third} {
		unitOfWork(t, h, r, row)
		want = append(want, row.MessageID)
		require.Eventually(t, func() bool { return len(streamIDs(t, b, cat)) == len(want) }, 30*time.Second, time.Millisecond,
			"a row committed while a mark is held is published without waiting for it")
	}
	require.Zero(t, h.gaveUp.Load(), "the rows were published only after the held mark gave up")
	assert.Equal(t, want, streamIDs(t, b, cat), "in the order written")
	assert.Zero(t, r.Stats().Published, "nothing is marked while the mark is held")

	close(h.release)
	require.Eventually(t, func() bool { return r.Stats().Published == int64(len(want)) }, 30*time.Second, time.Millisecond)
	rows := listAll(t, h)
	for _, id := range want {
		assert.Equal(t, lanewaystore.StatusPublished, rows[id].Status, id)
	}
}
