package dlq_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/cli/internal/dlq"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/lanewaybroker"
)

func TestFilterMatch(t *testing.T) {
	e := dlq.Entry{Type: "Customers.CustomerRegistered.v1", Meta: envelope.DLQMetadata{ConsumerGroup: "CustomerProjector", FailureReason: "violates check constraint"}}
	cases := map[string]struct {
		f    dlq.Filter
		want bool
	}{
		"zero keeps all":          {dlq.Filter{}, true},
		"handler, any case":       {dlq.Filter{Handler: "customerprojector"}, true},
		"handler is exact":        {dlq.Filter{Handler: "Customer"}, false},
		"reason substring":        {dlq.Filter{Reason: "CHECK constraint"}, true},
		"reason absent":           {dlq.Filter{Reason: "timeout"}, false},
		"type substring":          {dlq.Filter{Type: "registered"}, true},
		"type absent":             {dlq.Filter{Type: "Updated"}, false},
		"all must match":          {dlq.Filter{Handler: "CustomerProjector", Reason: "constraint", Type: "Updated"}, false},
		"all three matching":      {dlq.Filter{Handler: "CustomerProjector", Reason: "constraint", Type: "v1"}, true},
		"problem counts as cause": {dlq.Filter{Reason: "not a JSON"}, false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) { assert.Equal(t, c.want, c.f.Match(e)) })
	}
	assert.True(t, dlq.Filter{Reason: "not a JSON"}.Match(dlq.Entry{Problem: "the entry is not a JSON object"}))
}

// A filtered list reads past the first page of entries: the matches are
// counted over the whole stream and the first Limit of them are returned.
func TestListFiltered(t *testing.T) {
	eachBroker(t, func(t *testing.T, b lanewaybroker.Broker, cat string) {
		ctx := context.Background()
		m := dlq.New(b, layout(cat, true))
		for range 250 { // more than one walk batch before the matches
			putDLQ(t, b, cat, cat, "AuditLog")
		}
		want := map[string]bool{}
		for range 3 {
			want[cat+":dlq "+putDLQ(t, b, cat, cat, "CustomerProjector")] = true
		}
		want[cat+":backfill:dlq "+putDLQ(t, b, cat, cat+":backfill", "CustomerProjector")] = true

		res, err := m.List(ctx, dlq.ListParams{Limit: 2, Filter: dlq.Filter{Handler: "CustomerProjector"}})
		require.NoError(t, err)
		assert.Equal(t, int64(254), res.Total)
		assert.Equal(t, int64(4), res.Matched)
		require.Len(t, res.Entries, 2)
		for _, e := range res.Entries {
			assert.True(t, want[e.Stream+" "+e.ID], "%s %s is not one of the matching entries", e.Stream, e.ID)
		}

		res, err = m.List(ctx, dlq.ListParams{Stream: cat, Limit: 10, Filter: dlq.Filter{Handler: "CustomerProjector", Reason: "BOOM"}})
		require.NoError(t, err)
		assert.Equal(t, int64(3), res.Matched)
		assert.Len(t, res.Entries, 3)

		res, err = m.List(ctx, dlq.ListParams{Filter: dlq.Filter{Type: "NoSuchEvent"}})
		require.NoError(t, err)
		assert.Zero(t, res.Matched)
		assert.Empty(t, res.Entries)

		res, err = m.List(ctx, dlq.ListParams{Limit: 5})
		require.NoError(t, err)
		assert.Equal(t, res.Total, res.Matched, "without a filter every entry matches")
	})
}
