package dlq_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/cli/internal/dlq"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
)

// TestProteanDLQEntry: a DLQ entry exactly as Protean writes it (no
// failure_reason, failed_at = the message time, its handler's fully
// qualified name as the group) is listed with the reason shown as not
// recorded, and replayed to the lane it failed on, addressed to that group,
// with Protean's metadata kept.
func TestProteanDLQEntry(t *testing.T) {
	raw, err := os.ReadFile("../../../internal/protean/testdata/dlq-backfill-customer-updated.json")
	require.NoError(t, err)
	eachBroker(t, func(t *testing.T, b lanewaybroker.Broker, _ string) {
		ctx := context.Background()
		// The fixture's streams are "customers::..."; a prefix of the test's
		// own keeps tests on one Redis apart (only metadata strings change,
		// not the payload the checksum covers).
		domain := strings.TrimSuffix(testsvc.Prefix(), "_") + "customers"
		entry := strings.ReplaceAll(string(raw), "customers::", domain+"::")
		topo := lanes.New(lanes.Spec{Categories: []string{"customer"}},
			lanes.Config{Enabled: true, Naming: lanes.Naming{BackfillSuffix: "backfill", Prefix: domain + "::"}})
		backfill := domain + "::customer:backfill"
		_, err := b.Publish(ctx, []lanewaybroker.Publication{{Stream: backfill + ":dlq", Data: entry}})
		require.NoError(t, err)

		m := dlq.New(b, topo)
		res, err := m.List(ctx, dlq.ListParams{})
		require.NoError(t, err)
		require.Len(t, res.Entries, 1)
		e := res.Entries[0]
		assert.Empty(t, e.Problem)
		assert.Equal(t, envelope.ReasonNotRecorded, e.Meta.FailureReason)
		assert.Equal(t, "2026-11-30T09:18:00.100000+00:00", e.Meta.FailedAt)
		assert.Equal(t, "protean_customers.CustomerProjector", e.Meta.ConsumerGroup)
		assert.Equal(t, int64(3), e.Meta.RetryCount)
		assert.Equal(t, backfill, e.OriginalStream())
		assert.Equal(t, "Customers.CustomerUpdated.v2", e.Type)

		r, err := m.Replay(ctx, dlq.ReplayParams{ID: e.ID})
		require.NoError(t, err)
		assert.Equal(t, backfill, r.Target)
		es, err := b.Range(ctx, backfill, "-", "+", 0)
		require.NoError(t, err)
		require.Len(t, es, 1)
		env, err := envelope.Decode([]byte(es[0].Data))
		require.NoError(t, err, "the replayed entry decodes, checksum intact")
		assert.Equal(t, "protean_customers.CustomerProjector", env.Metadata.ReplayGroup)
		var got map[string]map[string]any
		require.NoError(t, json.Unmarshal([]byte(es[0].Data), &got))
		assert.NotContains(t, got, "_dlq_metadata")
		headers := got["metadata"]["headers"].(map[string]any)
		assert.Contains(t, headers, "traceparent")
		assert.Contains(t, headers, "idempotency_key")
		domainMeta := got["metadata"]["domain"].(map[string]any)
		assert.Equal(t, "protean_customers.CustomerUpdated", domainMeta["fqn"])
		n, err := b.Len(ctx, backfill+":dlq")
		require.NoError(t, err)
		assert.Zero(t, n)
	})
}
