package brokertest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaybroker"
)

func testClaimIdleAndMinIdle(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G", st)
	id := s.publish(st, 1)[0]
	s.read("G", "dead", 0, 0, st)

	got, err := s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "thief", MinIdle: time.Hour, IDs: []string{id}, RetryCount: -1, Idle: -1})
	require.NoError(t, err)
	assert.Empty(t, got, "an entry idle less than MinIdle is not claimed")
	pe := s.pendingOne(st, "G", id)
	assert.Equal(t, "dead", pe.Consumer)
	assert.Equal(t, int64(1), pe.Deliveries)

	// Hand the entry back as if idle for two hours, keeping its count.
	got, err = s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "dead", IDs: []string{id}, RetryCount: 1, Idle: 2 * time.Hour})
	require.NoError(t, err)
	require.Len(t, got, 1)
	idle, err := s.b.Pending(s.ctx, lanewaybroker.PendingParams{Stream: st, Group: "G", MinIdle: time.Hour})
	require.NoError(t, err)
	require.Len(t, idle, 1, "IDLE set the entry's idle time")
	assert.GreaterOrEqual(t, idle[0].Idle, 2*time.Hour)

	got, err = s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "alive", MinIdle: time.Hour, IDs: []string{id}, RetryCount: -1, Idle: -1})
	require.NoError(t, err)
	assert.Equal(t, []string{id}, entryIDs(got), "an entry idle past MinIdle is claimed")
	pe = s.pendingOne(st, "G", id)
	assert.Equal(t, "alive", pe.Consumer)
	assert.Equal(t, int64(2), pe.Deliveries)
	assert.Less(t, pe.Idle, time.Hour, "a claim resets the idle time")

	none, err := s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "alive", RetryCount: -1, Idle: -1})
	require.NoError(t, err)
	assert.Empty(t, none)
}

func testClaimOfDeletedEntry(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G", st)
	ids := s.publish(st, 2)
	s.read("G", "c1", 0, 0, st)
	s.del(st, ids[0])
	got, err := s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "c2", IDs: ids, RetryCount: -1, Idle: -1})
	require.NoError(t, err)
	assert.Equal(t, ids[1:], entryIDs(got), "a deleted entry is not returned")
	assert.Equal(t, ids[1:], pendingIDs(s.pending(st, "G", "")), "and leaves the pending list")
}

func testAutoClaimFromDeadConsumer(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G", st)
	id := s.publish(st, 1)[0]
	s.read("G", "dead", 0, 0, st)

	res, err := s.b.AutoClaim(s.ctx, lanewaybroker.AutoClaimParams{Stream: st, Group: "G", Consumer: "alive", MinIdle: time.Hour, Start: "0-0"})
	require.NoError(t, err)
	assert.Empty(t, res.Entries, "not before MinIdle")
	assert.Equal(t, "0-0", res.Next)
	assert.Equal(t, "dead", s.pendingOne(st, "G", id).Consumer)

	require.Eventually(t, func() bool {
		res, err = s.b.AutoClaim(s.ctx, lanewaybroker.AutoClaimParams{Stream: st, Group: "G", Consumer: "alive", MinIdle: 50 * time.Millisecond})
		require.NoError(t, err)
		return len(res.Entries) > 0
	}, waitFor, 10*time.Millisecond, "claimed once idle past MinIdle")
	assert.Equal(t, []string{id}, entryIDs(res.Entries))
	assert.Equal(t, "0", res.Entries[0].Data)
	assert.Equal(t, "0-0", res.Next)
	assert.Empty(t, res.Deleted)
	pe := s.pendingOne(st, "G", id)
	assert.Equal(t, "alive", pe.Consumer)
	assert.Equal(t, int64(2), pe.Deliveries, "an autoclaim counts a delivery")
}

func testAutoClaimPagesWithCursor(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G", st)
	ids := s.publish(st, 3)
	s.read("G", "dead", 0, 0, st)

	res, err := s.b.AutoClaim(s.ctx, lanewaybroker.AutoClaimParams{Stream: st, Group: "G", Consumer: "alive", Start: "0-0", Count: 2})
	require.NoError(t, err)
	assert.Equal(t, ids[:2], entryIDs(res.Entries))
	require.NotEqual(t, "0-0", res.Next, "more pending entries: the scan is not complete")

	res, err = s.b.AutoClaim(s.ctx, lanewaybroker.AutoClaimParams{Stream: st, Group: "G", Consumer: "alive", Start: res.Next, Count: 2})
	require.NoError(t, err)
	assert.Equal(t, ids[2:], entryIDs(res.Entries))
	assert.Equal(t, "0-0", res.Next)
}

func testAutoClaimReportsDeletedEntries(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G", st)
	ids := s.publish(st, 2)
	s.read("G", "dead", 0, 0, st)
	s.del(st, ids[0])

	res, err := s.b.AutoClaim(s.ctx, lanewaybroker.AutoClaimParams{Stream: st, Group: "G", Consumer: "alive", Start: "0-0"})
	require.NoError(t, err)
	assert.Equal(t, ids[1:], entryIDs(res.Entries))
	assert.Equal(t, ids[:1], res.Deleted)
	assert.Equal(t, ids[1:], pendingIDs(s.pending(st, "G", "")), "the deleted entry left the pending list")
}

func testAckRemovesFromPending(t *testing.T, s *suite) {
	a, b := s.name("primary"), s.name("backfill")
	s.ensure("G", a, b)
	idsA := s.publish(a, 3)
	idsB := s.publish(b, 1)
	s.read("G", "c1", 0, 0, a, b)

	require.NoError(t, s.b.Ack(s.ctx, []lanewaybroker.AckParams{
		{Stream: a, Group: "G", IDs: idsA[:2]},
		{Stream: b, Group: "G", IDs: idsB},
		{Stream: a, Group: "G"}, // nothing to ack
	}))
	assert.Equal(t, idsA[2:], pendingIDs(s.pending(a, "G", "")))
	assert.Empty(t, s.pending(b, "G", ""))
	require.NoError(t, s.b.Ack(s.ctx, nil))
	assert.Equal(t, int64(3), s.len(a), "ack does not delete the entry")
}

func testPendingFilters(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G", st)
	ids := s.publish(st, 3)
	s.read("G", "c1", 2, 0, st)
	s.read("G", "c2", 1, 0, st)

	assert.Equal(t, ids, pendingIDs(s.pending(st, "G", "")))
	assert.Equal(t, ids[:2], pendingIDs(s.pending(st, "G", "c1")))
	c2 := s.pending(st, "G", "c2")
	assert.Equal(t, ids[2:], pendingIDs(c2))
	assert.Equal(t, "c2", c2[0].Consumer)

	page, err := s.b.Pending(s.ctx, lanewaybroker.PendingParams{Stream: st, Group: "G", Start: ids[1], End: "+", Count: 1})
	require.NoError(t, err)
	assert.Equal(t, ids[1:2], pendingIDs(page), "Start and Count")

	idle, err := s.b.Pending(s.ctx, lanewaybroker.PendingParams{Stream: st, Group: "G", MinIdle: time.Hour})
	require.NoError(t, err)
	assert.Empty(t, idle, "nothing idle for an hour")
}
