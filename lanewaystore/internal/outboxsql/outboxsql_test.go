package outboxsql

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

func TestNewClaimDefaults(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

	c, ok, err := NewClaim(lanewaystore.ClaimParams{WorkerID: "w", Limit: 5, Now: now})
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, Claim{WorkerID: "w", Limit: 5, Now: now, LockedUntil: now.Add(LeaseDefault),
		MinPriority: math.MinInt32, MaxPriority: math.MaxInt32}, c, "no lease: the default; no priorities: every row")

	c, _, err = NewClaim(lanewaystore.ClaimParams{WorkerID: "w", Limit: 5, Now: now, Lease: time.Second,
		Priorities: &lanewaystore.PriorityRange{Min: math.MinInt, Max: -1}})
	require.NoError(t, err)
	assert.Equal(t, now.Add(time.Second), c.LockedUntil)
	assert.Equal(t, [2]int32{math.MinInt32, -1}, [2]int32{c.MinPriority, c.MaxPriority}, "bounds beyond int4 are clamped")

	before := time.Now()
	c, _, err = NewClaim(lanewaystore.ClaimParams{WorkerID: "w", Limit: 1})
	require.NoError(t, err)
	assert.False(t, c.Now.Before(before), "no Now: the wall clock")
}

func TestNewClaimNothingOrInvalid(t *testing.T) {
	for _, limit := range []int{0, -1} {
		_, ok, err := NewClaim(lanewaystore.ClaimParams{WorkerID: "w", Limit: limit})
		assert.NoError(t, err)
		assert.False(t, ok, "limit %d claims nothing", limit)
	}
	_, ok, err := NewClaim(lanewaystore.ClaimParams{Limit: 1})
	assert.False(t, ok)
	assert.EqualError(t, err, "claim outbox: empty WorkerID")
}

func TestSortClaimed(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	rows := []lanewaystore.OutboxRow{
		{ID: 4, Priority: 0, CreatedAt: t0},
		{ID: 3, Priority: 0, CreatedAt: t0},
		{ID: 1, Priority: 0, CreatedAt: t0.Add(-time.Second)},
		{ID: 2, Priority: 5, CreatedAt: t0.Add(time.Hour)},
	}
	SortClaimed(rows)
	var ids []int64
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	assert.Equal(t, []int64{2, 1, 3, 4}, ids, "priority DESC, then created_at, then id")
}

func TestCleanupLimit(t *testing.T) {
	assert.Equal(t, CleanupLimitDefault, CleanupLimit(lanewaystore.CleanupParams{}))
	assert.Equal(t, 7, CleanupLimit(lanewaystore.CleanupParams{Limit: 7}))
}
