package pgstore

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/internal/outboxsql"
)

// openOneSession opens a migrated store on a fresh schema with one
// connection, so every statement of a test shares a session (prepared
// statements, their plan counters and SET LOCAL are per session).
func openOneSession(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), testsvc.PostgresURL(t)+"&pool_max_conns=1")
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Migrate(t.Context()))
	return s
}

// The relay's claim is planned for its own arguments every time: a generic
// plan PostgreSQL would pick after five runs on an empty outbox made
// production claims slow once a backfill filled it (see relayTx).
func TestClaimIsNeverGenericallyPlanned(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openOneSession(t)
	prod := &lanewaystore.PriorityRange{Min: 0, Max: math.MaxInt}
	for range 12 {
		_, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: "w", Limit: 10, Priorities: prod, Lease: time.Second})
		require.NoError(t, err)
	}
	var generic, custom int64
	err := s.pool.with(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements
			WHERE statement LIKE 'WITH c AS MATERIALIZED%'`).Scan(&generic, &custom)
	})
	require.NoError(t, err)
	assert.Zero(t, generic, "claims run on a generic plan")
	assert.GreaterOrEqual(t, custom, int64(12))
}

// The claim walks outbox_claim_idx in order even on a table PostgreSQL has
// no statistics for, as when a migration fills a new service's outbox
// faster than autovacuum analyzes it. Left to itself the planner then
// sorts every backfill row for each claim (checked first, so the test
// shows what the settings guard against); with claimPlan it does not.
func TestClaimPlanWithoutStatistics(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openOneSession(t)

	// Rows of the size of an engine's envelope: with fewer or smaller ones
	// the planner's guess from the table's size still favours the index.
	const backlog = 20000
	back := &lanewaystore.PriorityRange{Min: math.MinInt, Max: -1}
	c, _, err := outboxsql.NewClaim(lanewaystore.ClaimParams{WorkerID: "w", Limit: 10, Lease: time.Minute, Priorities: back})
	require.NoError(t, err)
	args := []any{c.WorkerID, pgTime(c.LockedUntil), pgTime(c.Now), c.Limit, c.MinPriority, c.MaxPriority}
	plan := func(settings []string) string {
		var lines []string
		err := s.pool.with(ctx, func(c *pgx.Conn) error {
			tx, err := c.Begin(ctx)
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback(ctx) }()
			for _, set := range append([]string{"SET LOCAL plan_cache_mode TO force_custom_plan"}, settings...) {
				if _, err := tx.Exec(ctx, set); err != nil {
					return err
				}
			}
			rows, err := tx.Query(ctx, "EXPLAIN "+claimSQL, args...)
			if err != nil {
				return err
			}
			lines, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		require.NoError(t, err)
		return strings.Join(lines, "\n")
	}
	err = s.pool.with(ctx, func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, `ALTER TABLE outbox SET (autovacuum_enabled = off)`); err != nil {
			return err
		}
		_, err := c.Exec(ctx, `INSERT INTO outbox (message_id, stream_name, stream_category, type, data, metadata, priority)
			SELECT 'm-' || g, 'customer-' || g, 'customer', 'Shop.CustomerImported.v1',
				json_build_object('name', repeat('a', 600)), '{}', -50
			FROM generate_series(1, $1::int) g`, backlog)
		return err
	})
	require.NoError(t, err)

	require.Contains(t, plan(nil), "Sort", "without statistics the planner sorts the backlog (what claimPlan prevents)")
	steered := plan(claimPlan)
	assert.Contains(t, steered, "Index Scan using outbox_claim_idx")
	assert.NotContains(t, steered, "Sort")

	rows, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: "w", Limit: 10, Priorities: back, Lease: time.Minute})
	require.NoError(t, err)
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.MessageID)
	}
	assert.Equal(t, []string{"m-1", "m-2", "m-3", "m-4", "m-5", "m-6", "m-7", "m-8", "m-9", "m-10"}, ids, "the oldest rows, in order")
}
