package pgstore

import (
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaystore"
)

// The relay's claim is planned for its own arguments every time: a generic
// plan PostgreSQL would pick after five runs on an empty outbox made
// production claims slow once a backfill filled it (see relayTx).
func TestClaimIsNeverGenericallyPlanned(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// One connection, so every claim and the check below share a session
	// (prepared statements and their plan counters are per session).
	s, err := Open(ctx, testsvc.PostgresURL(t)+"&pool_max_conns=1")
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Migrate(ctx))
	prod := &lanewaystore.PriorityRange{Min: 0, Max: math.MaxInt}
	for range 12 {
		_, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: "w", Limit: 10, Priorities: prod, Lease: time.Second})
		require.NoError(t, err)
	}
	var generic, custom int64
	err = s.pool.with(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements
			WHERE statement LIKE 'WITH c AS MATERIALIZED%'`).Scan(&generic, &custom)
	})
	require.NoError(t, err)
	assert.Zero(t, generic, "claims run on a generic plan")
	assert.GreaterOrEqual(t, custom, int64(12))
}
