package outbox_test

import (
	"context"
	"math"
	"strings"
	"sync"
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

// claimGate holds the production worker's claims (those whose priority
// range has no upper end) until open is closed: a claim waiting for the
// database, as one waits for SQLite's writer behind a migration. It keeps
// the store's leasing inserts.
type claimGate struct {
	lanewaystore.Store
	armed   chan struct{} // closed: the next production claim is held
	entered chan struct{} // closed when a claim is held
	open    chan struct{}
	once    sync.Once
	left    atomic.Bool // the held claim has returned
}

func newClaimGate(s lanewaystore.Store) *claimGate {
	return &claimGate{Store: s, armed: make(chan struct{}), entered: make(chan struct{}), open: make(chan struct{})}
}

func (g *claimGate) LeasesOnInsert() bool { return true }

func (g *claimGate) ClaimOutbox(ctx context.Context, p lanewaystore.ClaimParams) ([]lanewaystore.OutboxRow, error) {
	select {
	case <-g.armed:
		if p.Priorities != nil && p.Priorities.Max == math.MaxInt {
			g.once.Do(func() { close(g.entered) })
			defer g.left.Store(true)
			select {
			case <-g.open:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	default:
	}
	return g.Store.ClaimOutbox(ctx, p)
}

func (g *claimGate) hold(t *testing.T, r *outbox.Relay) {
	t.Helper()
	close(g.armed)
	r.Notify()
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the production worker did not claim")
	}
}

func (g *claimGate) release() {
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// startGated starts a relay that hands production rows off, over a SQLite
// store whose production claims can be held, and stops it when the test
// ends (the gate opened first).
func startGated(t *testing.T, b lanewaybroker.Broker, cat string) (*claimGate, *outbox.Relay) {
	t.Helper()
	g := newClaimGate(openSQLite(t))
	r := startHandOff(t, g, b, cat)
	t.Cleanup(func() { stop(t, r) })
	t.Cleanup(g.release)
	return g, r
}

// A production claim waiting for the database does not hold up the rows
// handed over: they are published while it waits.
func TestHandOffBesideClaim(t *testing.T) {
	b := openEmbedded(t)
	cat := testsvc.Prefix() + "customer"
	g, r := startGated(t, b, cat)

	g.hold(t, r)
	row, _ := newRow(t, cat, 0, "prod")
	require.True(t, unitOfWork(t, g, r, row).Leased())
	require.Eventually(t, func() bool { return r.Stats().Published == 1 }, 30*time.Second, time.Millisecond)
	assert.False(t, g.left.Load(), "the handed-over row waited for the claim")
	assert.Equal(t, []string{row.MessageID}, streamIDs(t, b, cat))

	// The claim, once the database answers, publishes what another process
	// committed meanwhile.
	other, _ := newRow(t, cat, 0, "other process")
	insert(t, g, other)
	g.release()
	require.Eventually(t, func() bool { return r.Stats().Published == 2 }, 30*time.Second, time.Millisecond)
	assert.Equal(t, []string{row.MessageID, other.MessageID}, streamIDs(t, b, cat))
	assert.Equal(t, int64(1), r.Stats().HandedOff)
}

// A unit of work refused a lease while a claim pass runs beside the
// hand-off is not published ahead of a row handed over before it: the
// pass gives its rows back, and they are claimed again after the rows
// handed over are published.
func TestHandOffBesideClaimKeepsOrder(t *testing.T) {
	cat := testsvc.Prefix() + "customer"
	first, _ := newRow(t, cat, 0, "first")
	gb := newGateOn(openEmbedded(t), func(p lanewaybroker.Publication) bool {
		return strings.Contains(p.Data, first.MessageID)
	})
	g, r := startGated(t, gb, cat)
	defer gb.release()

	g.hold(t, r)
	require.True(t, unitOfWork(t, g, r, first).Leased())
	gb.waitHeld(t) // handed over, its publish slow

	// A unit of work writing production and backfill rows is refused a
	// lease; its production row goes to the stream of the first.
	mixedProd, _ := newRow(t, cat, 0, "refused")
	mixedLow, _ := newRow(t, cat, -50, "refused")
	require.False(t, unitOfWork(t, g, r, mixedProd, mixedLow).Leased())

	g.release() // the pass claims the refused row
	require.Eventually(t, func() bool {
		row := listAll(t, g)[mixedProd.MessageID]
		return row.Status == lanewaystore.StatusPublished || strings.Contains(row.LastError, "hand-off")
	}, 30*time.Second, time.Millisecond)
	assert.Empty(t, streamIDs(t, gb, cat), "the refused row was published ahead of the first")

	gb.release()
	require.Eventually(t, func() bool { return len(streamIDs(t, gb, cat)) == 2 }, 30*time.Second, time.Millisecond)
	assert.Equal(t, []string{first.MessageID, mixedProd.MessageID}, streamIDs(t, gb, cat))
}

// With the hand-off off, the claim pass runs in turn with it; a row handed
// over before the hand-off turned off, which commits while the pass waits
// for the database, is still published before the refused rows it claims.
func TestHandOffClaimInTurnKeepsOrder(t *testing.T) {
	b := openEmbedded(t)
	cat := testsvc.Prefix() + "customer"
	g, r := startGated(t, b, cat)

	first, _ := newRow(t, cat, 0, "first")
	firstRows := []lanewaystore.OutboxRow{first}
	firstTicket := r.Lease(firstRows) // registered, not yet committed
	require.True(t, firstTicket.Leased())
	mixedProd, _ := newRow(t, cat, 0, "refused")
	mixedLow, _ := newRow(t, cat, -50, "refused")
	require.False(t, unitOfWork(t, g, r, mixedProd, mixedLow).Leased())

	g.hold(t, r) // the hand-off is off: the pass runs in turn
	insert(t, g, firstRows...)
	firstTicket.Settle(nil)
	g.release()
	require.Eventually(t, func() bool { return len(streamIDs(t, b, cat)) == 2 }, 30*time.Second, time.Millisecond)
	assert.Equal(t, []string{first.MessageID, mixedProd.MessageID}, streamIDs(t, b, cat))
}

// quietGate is a claimGate on a store with a cross-process notifier that
// never fires, so the relay's configured hour-long poll holds, and it
// counts the production worker's claims.
type quietGate struct {
	*claimGate
	production atomic.Int64
}

func (*quietGate) ListenOutbox(context.Context, func()) (func(), error) { return func() {}, nil }

func (q *quietGate) ClaimOutbox(ctx context.Context, p lanewaystore.ClaimParams) ([]lanewaystore.OutboxRow, error) {
	if p.Priorities != nil && p.Priorities.Max == math.MaxInt {
		q.production.Add(1)
	}
	return q.claimGate.ClaimOutbox(ctx, p)
}

// A wake-up that arrives while a claim pass runs beside the hand-off makes
// the worker claim again as soon as the pass ends, and that claim is not
// counted as a poll: the relay's wake-up counts say what woke it.
func TestWakeDuringBesideClaimClaimsAgainAtOnce(t *testing.T) {
	b := openEmbedded(t)
	cat := testsvc.Prefix() + "customer"
	q := &quietGate{claimGate: newClaimGate(openSQLite(t))}
	r := startHandOff(t, q, b, cat)
	t.Cleanup(func() { stop(t, r) })
	t.Cleanup(q.release)

	close(q.armed)
	r.NotifyPriorities(math.MaxInt, math.MaxInt) // the production worker alone
	select {
	case <-q.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the production worker did not claim")
	}
	before := r.Stats().Wakeups
	claims := q.production.Load()

	r.NotifyPriorities(math.MaxInt, math.MaxInt) // while the claim is held
	require.Eventually(t, func() bool { return r.Stats().Wakeups.Notify == before.Notify+1 }, 30*time.Second, time.Millisecond)
	q.release()
	require.Eventually(t, func() bool { return q.production.Load() == claims+1 }, 30*time.Second, time.Millisecond,
		"the wake-up during the pass was not followed by a claim")
	assert.Zero(t, r.Stats().Wakeups.Poll, "the poll is an hour: the claim again at once is not a poll")
}
