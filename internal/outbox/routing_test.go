package outbox_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

// The reference's routing table (test_priority_outbox_processor.py) through
// the real relay, on both stores and both brokers. Each configuration's rows
// are claimed as one mixed batch, so every row is routed on its own.
func TestRoutingTable(t *testing.T) {
	type row struct {
		command  bool
		priority int
		lane     string // "" primary, else the suffix
	}
	configs := []struct {
		name      string
		enabled   bool
		threshold int
		suffix    string
		rows      []row
	}{
		{"lanes off", false, 0, "backfill", []row{
			{false, -100, ""}, {false, -50, ""}, {false, 0, ""}, {false, 50, ""}, {true, -50, ""},
		}},
		{"lanes off ignores a threshold", false, 10, "backfill", []row{{false, 0, ""}, {false, -100, ""}}},
		{"lanes on", true, 0, "backfill", []row{
			{false, 0, ""},          // equal to the threshold stays primary
			{false, -1, "backfill"}, // threshold-1 goes to backfill
			{false, -50, "backfill"}, {false, -100, "backfill"}, {false, 50, ""}, {false, 100, ""},
			{true, -50, "backfill"}, {true, 0, ""},
		}},
		{"custom threshold -25 and suffix migration", true, -25, "migration", []row{
			{false, -25, ""}, {false, -26, "migration"}, {false, -50, "migration"}, {false, -10, ""}, {false, 0, ""},
			{true, -26, "migration"}, {true, -25, ""},
		}},
	}
	for _, sc := range storeCases() {
		for _, bc := range brokerCases() {
			for _, cc := range configs {
				t.Run(sc.name+"/"+bc.name+"/"+cc.name, func(t *testing.T) {
					ctx := context.Background()
					s, b := sc.open(t), bc.open(t)
					cat := testsvc.Prefix() + "customer"
					cfg := lanewayconfig.Default()
					cfg.Server.PriorityLanes.Enabled = cc.enabled
					cfg.Server.PriorityLanes.Threshold = cc.threshold
					cfg.Server.PriorityLanes.BackfillSuffix = cc.suffix
					rcfg, err := outbox.ConfigFrom(cfg, "Customers")
					require.NoError(t, err)
					r := outbox.New(s, b, rcfg)

					type want struct {
						row    lanewaystore.OutboxRow
						stream string
					}
					var wants []want
					candidates := map[string]bool{}
					var rows []lanewaystore.OutboxRow
					for i, rr := range cc.rows {
						category := cat
						if rr.command {
							category += ":command"
						}
						stream := category
						if rr.lane != "" {
							stream += ":" + rr.lane
						}
						or, _ := newRow(t, category, rr.priority, fmt.Sprint(i))
						rows = append(rows, or)
						wants = append(wants, want{or, stream})
						for _, s := range []string{category, category + ":" + cc.suffix, category + ":backfill"} {
							candidates[s] = true
						}
					}
					for st := range candidates {
						dropStream(t, b, st)
					}
					insert(t, s, rows...)

					n, err := r.RunOnce(ctx)
					require.NoError(t, err)
					require.Equal(t, len(rows), n, "one batch")

					entries := map[string]lanewaybroker.Entry{} // by message id
					where := map[string]string{}
					total := 0
					for st := range candidates {
						es, err := b.Range(ctx, st, "-", "+", 0)
						require.NoError(t, err)
						total += len(es)
						decodeStream(t, b, st) // every entry decodes, checksum included
						for _, e := range es {
							id := decodeOne(t, e)
							entries[id] = e
							where[id] = st
						}
					}
					assert.Equal(t, len(rows), total, "each row published once, nothing else")
					stored := listAll(t, s)
					for _, w := range wants {
						id := w.row.MessageID
						e, ok := entries[id]
						require.True(t, ok, "row at priority %d not published", w.row.Priority)
						assert.Equal(t, w.stream, where[id], "priority %d of %s", w.row.Priority, w.row.StreamCategory)
						// Routing touches neither payload nor metadata: the
						// entry is the stored envelope, byte for byte.
						assert.Equal(t, `{"data":`+string(w.row.Data)+`,"metadata":`+string(w.row.Metadata)+`}`, e.Data)
						got := stored[id]
						assert.Equal(t, lanewaystore.StatusPublished, got.Status)
						assert.Equal(t, w.stream, publishedStream(t, s, id))
						assert.Equal(t, string(w.row.Data), string(got.Data), "stored payload unchanged")
						assert.Equal(t, string(w.row.Metadata), string(got.Metadata), "stored metadata unchanged")
					}
				})
			}
		}
	}
}

type storeCase struct {
	name string
	open func(t testing.TB) lanewaystore.Store
}

func storeCases() []storeCase {
	return []storeCase{
		{"sqlite", openSQLite},
		{"postgres", func(t testing.TB) lanewaystore.Store { return openPG(t, testsvc.PostgresURL(t)) }},
	}
}

type brokerCase struct {
	name string
	open func(t testing.TB) lanewaybroker.Broker
}

func brokerCases() []brokerCase {
	return []brokerCase{{"embedded", openEmbedded}, {"redis", openRedis}}
}

func decodeOne(t testing.TB, e lanewaybroker.Entry) string {
	t.Helper()
	var env struct {
		Metadata struct {
			Headers struct {
				ID string `json:"id"`
			} `json:"headers"`
		} `json:"metadata"`
	}
	require.NoError(t, jsonUnmarshal([]byte(e.Data), &env), "entry %s", e.ID)
	require.NotEmpty(t, env.Metadata.Headers.ID)
	return env.Metadata.Headers.ID
}
