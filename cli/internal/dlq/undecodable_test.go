package dlq_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli/internal/dlq"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

// calls records which handler functions really ran (OnHandled also fires for
// an event a handler does not handle, so it cannot tell a no-op from a run).
type calls struct {
	mu  sync.Mutex
	got map[string][]string // handler name -> customer ids, in order
}

func (c *calls) add(handler, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got == nil {
		c.got = map[string][]string{}
	}
	c.got[handler] = append(c.got[handler], id)
}

func (c *calls) of(handler string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got[handler]...)
}

// garbageDomain: Customers with CustomerRegistered (v1) and CustomerUpdated
// (v2, no upcaster) on category cat; the projector handles both, the audit
// log only CustomerUpdated.
func garbageDomain(t *testing.T, cat string, c *calls) *laneway.Domain {
	t.Helper()
	b := laneway.NewDomain(customers.DomainName)
	laneway.RegisterAggregate[customers.Customer](b, laneway.AggregateOptions{Category: cat})
	laneway.RegisterEvent[customers.Customer, customers.CustomerRegistered](b)
	laneway.RegisterEvent[customers.Customer, customers.CustomerUpdated](b)
	p := laneway.NewHandler(customers.ProjectorName)
	laneway.On(p, func(_ context.Context, _ *laneway.Tx, ev customers.CustomerRegistered, _ laneway.Meta) error {
		c.add(customers.ProjectorName, ev.CustomerID)
		return nil
	})
	laneway.On(p, func(_ context.Context, _ *laneway.Tx, ev customers.CustomerUpdated, _ laneway.Meta) error {
		c.add(customers.ProjectorName, ev.CustomerID)
		return nil
	})
	b.AddHandler(p)
	a := laneway.NewHandler(auditName)
	laneway.On(a, func(_ context.Context, _ *laneway.Tx, ev customers.CustomerUpdated, _ laneway.Meta) error {
		c.add(auditName, ev.CustomerID)
		return nil
	})
	b.AddHandler(a)
	d, err := b.Build()
	require.NoError(t, err)
	return d
}

// publishTyped appends a well-formed envelope (valid checksum) whose type
// string is typ, so only the domain can object to it.
func publishTyped(t *testing.T, b lanewaybroker.Broker, stream, cat, typ string, v int, p any) {
	t.Helper()
	data, err := json.Marshal(p)
	require.NoError(t, err)
	id := testsvc.RandomSuffix(8)
	raw, err := envelope.Encode(envelope.Envelope{Data: data, Metadata: envelope.Metadata{
		Headers: envelope.Headers{ID: id, Time: time.Now().UTC().Format(time.RFC3339Nano), Type: typ, Stream: cat + "-" + id},
		Domain:  envelope.Domain{Class: envelope.ClassEvent, StreamCategory: cat, Version: v, SequenceID: "1"},
	}})
	require.NoError(t, err)
	_, err = b.Publish(context.Background(), []lanewaybroker.Publication{{Stream: stream, Data: string(raw)}})
	require.NoError(t, err)
}

func pendingOf(t *testing.T, b lanewaybroker.Broker, stream, group string) int {
	t.Helper()
	ps, err := b.Pending(context.Background(), lanewaybroker.PendingParams{Stream: stream, Group: group, Start: "-", End: "+", Count: 1000})
	require.NoError(t, err)
	return len(ps)
}

// Issue 4, garbage in a lane, through the real engine: an unregistered type
// and a version newer than the code go to the lane's DLQ at once (one
// attempt, the reason named), are acked, and the lane keeps flowing; a
// registered event a handler does not handle is a silent no-op for it.
func TestGarbageTypesThroughEngine(t *testing.T) {
	eachBroker(t, func(t *testing.T, b lanewaybroker.Broker, cat string) {
		ctx := context.Background()
		var c calls
		dom := garbageDomain(t, cat, &c)
		cfg := lanewayconfig.Default()
		cfg.Server.PriorityLanes.Enabled = true
		// Retries would hide "at once": with 3 attempts allowed, a
		// retry_count of 1 in the DLQ proves nothing was retried.
		cfg.Server.StreamSubscription.MaxRetries = 3
		cfg.Server.StreamSubscription.RetryDelaySeconds = 0.01
		cfg.Server.StreamSubscription.BlockingTimeoutMS = 100
		st, err := sqlitestore.Open(ctx, t.TempDir()+"/laneway.db")
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
		require.NoError(t, err)
		eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: b, DisableHTTP: true})
		require.NoError(t, eng.Start(ctx))
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, eng.Stop(sctx))
		})

		for _, lane := range []string{cat, cat + ":backfill"} {
			dn := customers.DomainName
			publishTyped(t, b, lane, cat, dn+".Nope.v1", 1, map[string]string{"customer_id": "nope"})
			publishTyped(t, b, lane, cat, dn+".CustomerUpdated.v3", 3, map[string]string{"customer_id": "v3", "loyalty_tier": "gold"})
			publishTyped(t, b, lane, cat, dn+".CustomerUpdated.v2", 2, customers.CustomerUpdated{CustomerID: "good-" + lane, LoyaltyTier: "gold"})
			publishTyped(t, b, lane, cat, dn+".CustomerRegistered.v1", 1, customers.CustomerRegistered{CustomerID: "reg-" + lane})
		}

		groups := []string{customers.ProjectorName, auditName}
		require.Eventually(t, func() bool {
			return len(c.of(customers.ProjectorName)) == 4 && len(c.of(auditName)) == 2
		}, waitFor, tick)
		require.Eventually(t, func() bool {
			for _, lane := range []string{cat, cat + ":backfill"} {
				for _, g := range groups {
					if pendingOf(t, b, lane, g) != 0 {
						return false
					}
				}
			}
			return true
		}, waitFor, tick, "every entry acked by every group")

		// Each lane in its own order. Across lanes the order is not
		// asserted: the entries are written while the engine runs, so a
		// backfill entry may arrive before later primary ones are read.
		inLane := func(handled []string, suffix string) []string {
			var out []string
			for _, h := range handled {
				if strings.HasSuffix(h, suffix) {
					out = append(out, h)
				}
			}
			return out
		}
		proj := c.of(customers.ProjectorName)
		assert.Equal(t, []string{"good-" + cat, "reg-" + cat}, inLane(proj, "-"+cat), "the primary lane flows past garbage, in order")
		assert.Equal(t, []string{"good-" + cat + ":backfill", "reg-" + cat + ":backfill"}, inLane(proj, ":backfill"),
			"the backfill lane flows past garbage, in order")
		assert.ElementsMatch(t, []string{"good-" + cat, "good-" + cat + ":backfill"}, c.of(auditName),
			"CustomerRegistered is not the audit log's: it never ran for it")

		m := dlq.New(b, layout(cat, true))
		for _, lane := range []string{cat, cat + ":backfill"} {
			res, err := m.List(ctx, dlq.ListParams{Stream: lane + ":dlq", Limit: 100})
			require.NoError(t, err)
			// Two bad entries, dead-lettered once by each consumer group;
			// the unhandled CustomerRegistered is not among them.
			require.Len(t, res.Entries, 4, "DLQ of %s", lane)
			var got []string
			for _, e := range res.Entries {
				assert.Equal(t, lane, e.Meta.OriginalStream)
				assert.Equal(t, int64(1), e.Meta.RetryCount, "dead-lettered at once: %s", e.Meta.FailureReason)
				assert.NotContains(t, e.Type, "CustomerRegistered")
				switch e.Type {
				case customers.DomainName + ".Nope.v1":
					assert.Contains(t, e.Meta.FailureReason, "Customers.Nope.v1 is not registered")
				case customers.DomainName + ".CustomerUpdated.v3":
					assert.Contains(t, e.Meta.FailureReason, "CustomerUpdated v3 is newer than this code knows (v2)")
				default:
					t.Errorf("unexpected DLQ entry of type %q: %s", e.Type, e.Meta.FailureReason)
				}
				got = append(got, e.Meta.ConsumerGroup+" "+e.Type)
			}
			sort.Strings(got)
			assert.Equal(t, []string{
				auditName + " Customers.CustomerUpdated.v3", auditName + " Customers.Nope.v1",
				customers.ProjectorName + " Customers.CustomerUpdated.v3", customers.ProjectorName + " Customers.Nope.v1",
			}, got)
		}
		assert.Zero(t, depth(t, b, cat+":command:dlq"))
	})
}
