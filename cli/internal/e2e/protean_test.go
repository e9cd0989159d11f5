package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/envelope"
)

// proteanFixtures are the entries a Protean service of the Customers
// domain writes, in its exact bytes (see their README).
const proteanFixtures = "../../../internal/protean/testdata"

// fixture reads one golden entry: its data field and message id.
func fixture(t *testing.T, name string) (data, id string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(proteanFixtures, name))
	require.NoError(t, err)
	env, err := envelope.Decode(b)
	require.NoError(t, err, name)
	return string(b), env.Metadata.Headers.ID
}

// TestProteanStreamsAgainstServer: with stream_naming = "protean", a real
// `laneway server` of the customers domain reads Protean's stream names,
// handles every entry a Protean service wrote on both lanes (LOW priority
// and non-ASCII included) and dead-letters nothing; its CustomerProjector
// reads in the Protean handler's consumer group; the operator commands use
// the same names; and a DLQ entry Protean wrote is listed, inspected and
// replayed to the handler of that group.
func TestProteanStreamsAgainstServer(t *testing.T) {
	const group = "protean_customers.CustomerProjector"
	e := newEnv(t, envParams{Lanes: true, Tables: `
[server]
stream_naming = "protean"

[handlers.CustomerProjector]
consumer_group = "` + group + `"
`})
	ctx := context.Background()
	const primary, backfill = "customers::customer", "customers::customer:backfill"
	xadd := func(stream, file string) string {
		data, id := fixture(t, file)
		require.NoError(t, e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"data": data}}).Err())
		return id
	}
	// The backfill entries wait in Redis before the engine starts (its
	// groups are created at 0 and read them); the primary ones come while
	// it runs.
	ids := []string{xadd(backfill, "backfill-customer-registered-low.json"), xadd(backfill, "backfill-customer-updated-low.json")}

	eng := e.startEngine()
	out := eng.stderr.String()
	assert.Contains(t, out, `Initialized priority lanes for `+group+`: primary='customers::customer', backfill='customers::customer:backfill'`)
	assert.Contains(t, out, `Initialized priority lanes for NotificationHandler: primary='customers::customer', backfill='customers::customer:backfill'`)
	assert.Contains(t, out, `Initialized priority lanes for CommandDispatcher: primary='customers::customer:command', backfill='customers::customer:command:backfill'`)
	ids = append(ids, xadd(primary, "primary-customer-registered.json"), xadd(primary, "primary-customer-updated.json"))

	// Every entry handled by both groups on both lanes.
	for _, stream := range []string{primary, backfill} {
		require.Eventually(t, func() bool {
			gs := e.groupInfo(stream)
			if len(gs) != 2 {
				return false
			}
			for _, g := range gs {
				if g.Pending != 0 || g.Lag != 0 || g.EntriesRead != 2 {
					return false
				}
			}
			return true
		}, wait, tick, "groups of %s: %+v", stream, e.groupInfo(stream))
		gs := e.groupInfo(stream)
		assert.Contains(t, gs, group)
		assert.Contains(t, gs, customers.NotificationName)
		assert.NotContains(t, gs, customers.ProjectorName, "the projector reads in the Protean handler's group")
	}
	require.Eventually(t, func() bool { return e.summaryCount() == 2 }, wait, tick)
	assert.Equal(t, "Zoë Ångström|gold", e.summaryOf("c-pr-1"))
	assert.Equal(t, "José Müller – 山田|platinum", e.summaryOf("c-bf-1"))
	assert.Equal(t, 4, e.count(`SELECT count(*) FROM laneway_processed WHERE handler = $1`, customers.ProjectorName), "one processed marker per message: %v", ids)

	// Nothing dead-lettered, and no stream of the default naming appeared.
	keys, err := e.rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	var streams []string
	for _, k := range keys {
		if typ, _ := e.rdb.Type(ctx, k).Result(); typ == "stream" {
			streams = append(streams, k)
		}
	}
	sort.Strings(streams)
	assert.Equal(t, []string{"customers::customer", "customers::customer:backfill", "customers::customer:command", "customers::customer:command:backfill",
		"customers::product:command", "customers::product:command:backfill"}, streams)

	// The operator commands name the same streams.
	code, stdout, stderr := e.runCLI(nil, "lanes", "status", "--json")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, `"customers::customer:backfill"`)
	assert.NotContains(t, stdout, `"customer:backfill"`)
	code, stdout, stderr = e.runCLI(nil, "dlq", "list")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "No DLQ entries.")
	// doctor finds the groups on the prefixed backfill streams (it would
	// fail "backfill consumer groups" on the default names).
	code, stdout, stderr = e.runCLI(nil, "doctor")
	assert.Equal(t, 0, code, "%s%s", stdout, stderr)
	assert.Contains(t, stdout, "PASS  backfill consumer groups              all 4 subscriptions have their consumer group on the backfill stream")
	assert.Contains(t, stdout, "PASS  pending entries nobody takes over")
	assert.Contains(t, stdout, "PASS  dead-letter queues                    no entries in the 8 DLQ streams")

	// A DLQ entry as Protean writes it: no failure_reason.
	dlqData, dlqMsg := fixture(t, "dlq-backfill-customer-updated.json")
	dlqID, err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: backfill + ":dlq", Values: map[string]any{"data": dlqData}}).Result()
	require.NoError(t, err)
	code, stdout, stderr = e.runCLI(nil, "dlq", "list")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "customers::customer:backfill:dlq")
	assert.Contains(t, stdout, dlqID)
	assert.Contains(t, stdout, envelope.ReasonNotRecorded)
	code, stdout, stderr = e.runCLI(nil, "dlq", "inspect", dlqID, "--json")
	require.Equal(t, 0, code, stderr)
	var insp struct {
		Metadata     envelope.DLQMetadata `json:"metadata"`
		MessageID    string               `json:"message_id"`
		ReplayTarget string               `json:"replay_target"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &insp), stdout)
	assert.Equal(t, envelope.ReasonNotRecorded, insp.Metadata.FailureReason)
	assert.Equal(t, "2026-11-30T09:18:00.100000+00:00", insp.Metadata.FailedAt)
	assert.Equal(t, group, insp.Metadata.ConsumerGroup)
	assert.Equal(t, dlqMsg, insp.MessageID)
	assert.Equal(t, backfill, insp.ReplayTarget)
	code, stdout, stderr = e.runCLI(nil, "dlq", "replay", dlqID)
	require.Equal(t, 0, code, "%s%s", stdout, stderr)
	// Addressed to the Protean handler's group, which the projector joined.
	require.Eventually(t, func() bool { return e.summaryOf("c-dl-1") == "|silver" }, wait, tick)
	assert.Zero(t, e.rdb.XLen(ctx, backfill+":dlq").Val())
	assert.Zero(t, e.rdb.Exists(ctx, primary+":dlq").Val(), "nothing dead-lettered on primary")

	eng.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng.wait(t, wait))
	assert.False(t, strings.Contains(eng.stderr.String(), "level=ERROR"), "no errors logged:\n%s", tail(eng.stderr.String(), 4000))
}

// summaryOf is "<name>|<tier>" of a customer_summary row, "" when the row
// (or the table) does not exist yet.
func (e *env) summaryOf(id string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pgMu.Lock()
	defer e.pgMu.Unlock()
	var name, tier string
	err := e.pg.QueryRow(ctx, `SELECT name, loyalty_tier FROM customer_summary WHERE customer_id = $1`, id).Scan(&name, &tier)
	if errors.Is(err, pgx.ErrNoRows) || err != nil && strings.Contains(err.Error(), "does not exist") {
		return ""
	}
	require.NoError(e.t, err)
	return name + "|" + tier
}
