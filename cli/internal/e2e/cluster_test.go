package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/testsvc"
)

// TestClusterOperatorCommands: the customers domain with two partitions on
// a real three-master Redis Cluster, through the built binary: the engine
// moves a poison entry to its lane's DLQ (hash-tagged, in the lane's slot),
// `dlq list` finds it, `dlq replay` sends it back once the handler is
// fixed, `lanes status` shows every partition's lanes and the engine, and
// `doctor` passes every check.
func TestClusterOperatorCommands(t *testing.T) {
	ctx := context.Background()
	cl := testsvc.Cluster(t)
	admin := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs})
	t.Cleanup(func() { _ = admin.Close() })
	// The customers domain's names are fixed: this package's own cluster
	// starts empty for this test.
	require.NoError(t, admin.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.FlushDB(ctx).Err() }))

	e := newEnv(t, envParams{Lanes: true, Broker: &brokerParams{URL: cl.URL(), Admin: admin},
		Tables: "\n[server.category_partitions]\ncustomer = 2\n"})
	n := lanes.Naming{Cluster: true, PartitionsByCategory: map[string]int{"customer": 2}}
	parts := n.EventPartitions("customer")
	require.Equal(t, []string{"{customer}", "{customer.1}"}, parts)
	poisonLane := n.Backfill(n.PrimaryFor("customer", "customer-c-poison"))
	dlq := poisonLane + ":dlq"

	app := e.openApp()
	require.NoError(t, customers.Migrate(ctx, app))
	fix := e.poison("c-poison")
	eng := e.startEngine()
	require.NoError(t, app.Process(ctx, customers.RegisterCustomer{CustomerID: "c-poison", Name: "Poison", Email: "p@example.com"},
		laneway.AtPriority(laneway.Low)))
	register(t, app, 0, 20, 2)
	low := laneway.WithPriority(ctx, laneway.Low)
	for i := 20; i < 30; i++ {
		id := fmt.Sprintf("c%06d", i)
		require.NoError(t, app.Process(low, customers.RegisterCustomer{CustomerID: id, Name: id, Email: id + "@example.com"}))
	}
	require.Eventually(t, func() bool { return e.rdbLen(dlq) == 1 && e.summaryCount() == 30 }, wait, tick)

	code, out, errs := e.cli(nil, "dlq", "list", "--json")
	require.Equal(t, 0, code, errs)
	var list dlqListJSON
	require.NoError(t, json.Unmarshal([]byte(out), &list), out)
	require.Len(t, list.Entries, 1, out)
	entry := list.Entries[0]
	assert.Equal(t, dlq, entry.Stream)
	assert.Equal(t, poisonLane, entry.Metadata.OriginalStream)
	assert.Contains(t, entry.Metadata.FailureReason, "e2e_poison_c_poison")

	fix()
	code, out, errs = e.cli(nil, "dlq", "replay", entry.ID)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "to "+poisonLane+" ")
	require.Eventually(t, func() bool {
		return e.count(`SELECT count(*) FROM customer_summary WHERE customer_id = 'c-poison'`) == 1
	}, wait, tick)
	assert.Zero(t, e.rdbLen(dlq))

	// Every lane of every partition drained, entries on more than one lane.
	require.Eventually(t, func() bool {
		for _, p := range parts {
			for _, s := range []string{p, n.Backfill(p)} {
				for _, g := range e.groupInfo(s) {
					if g.Pending != 0 || g.Lag != 0 {
						return false
					}
				}
			}
		}
		return true
	}, wait, tick)

	st := e.status()
	require.Len(t, st.Engines, 1)
	assert.True(t, st.Engines[0].FingerprintMatches)
	for _, p := range parts {
		for _, s := range []string{p, n.Backfill(p)} {
			l := lane(t, st, s)
			assert.True(t, l.Exists, s)
			assert.Equal(t, s+":dlq", l.DLQStream)
			assert.Empty(t, l.MissingGroups, s)
			assert.Positive(t, l.ActiveConsumers, s)
			var groups []string
			for _, g := range l.Groups {
				groups = append(groups, g.Name)
			}
			assert.Contains(t, groups, customers.ProjectorName, s)
		}
	}

	code, checks := e.doctor(nil)
	assert.Equal(t, 0, code)
	for id, c := range checks {
		assert.Equal(t, inspect.Pass, c.Status, "%s: %s (fix: %s)", id, c.Detail, c.Fix)
	}

	eng.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng.wait(t, wait))
}
