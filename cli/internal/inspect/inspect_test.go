package inspect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type order struct{ laneway.AggregateRoot }

type orderPlaced struct {
	ID string `json:"id"`
}

func (orderPlaced) Kind() string { return "OrderPlaced" }

// orderShipped is at v3; only v2 has an upcaster, so v1 entries are stuck.
type orderShipped struct {
	ID string `json:"id"`
}

func (orderShipped) Kind() string { return "OrderShipped" }
func (orderShipped) Version() int { return 3 }

type placeOrder struct {
	ID string `json:"id"`
}

func (placeOrder) Kind() string       { return "PlaceOrder" }
func (c placeOrder) TargetID() string { return c.ID }

// bundle is one test's world: a domain whose category is unique to the
// test (so tests share one Redis), its config with lanes on, a broker.
type bundle struct {
	b      lanewaybroker.Broker
	cfg    *lanewayconfig.Config
	topo   inspect.Topology
	in     *inspect.Inspector
	cat    string
	dom    *laneway.Domain
	domain string
}

func setup(t *testing.T, embedded bool) *bundle {
	t.Helper()
	ctx := context.Background()
	var b lanewaybroker.Broker
	var err error
	if embedded {
		b, err = redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	} else {
		b, err = redisbroker.Open(ctx, testsvc.RedisURL(t), redisbroker.Options{})
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })

	cat := testsvc.Prefix() + "order"
	name := "Shop" + testsvc.RandomSuffix(4)
	db := laneway.NewDomain(name)
	laneway.RegisterAggregate[order](db, laneway.AggregateOptions{Category: cat})
	laneway.RegisterEvent[order, orderPlaced](db)
	laneway.RegisterEvent[order, orderShipped](db)
	laneway.RegisterCommand[order](db, func(context.Context, *laneway.Tx, placeOrder) error { return nil })
	db.AddUpcaster(laneway.Upcaster{Event: "OrderShipped", From: 2, To: 3, Fn: func(p map[string]any) (map[string]any, error) { return p, nil }})
	billing := laneway.NewHandler("Billing")
	laneway.On(billing, func(context.Context, *laneway.Tx, orderPlaced, laneway.Meta) error { return nil })
	laneway.On(billing, func(context.Context, *laneway.Tx, orderShipped, laneway.Meta) error { return nil })
	mailer := laneway.NewHandler("Mailer")
	laneway.On(mailer, func(context.Context, *laneway.Tx, orderPlaced, laneway.Meta) error { return nil })
	db.AddHandler(billing)
	db.AddHandler(mailer)
	dom, err := db.Build()
	require.NoError(t, err)

	cfg := lanewayconfig.Default()
	cfg.Server.PriorityLanes.Enabled = true
	topo, err := inspect.NewTopology(dom, cfg)
	require.NoError(t, err)
	return &bundle{b: b, cfg: cfg, topo: topo, in: inspect.New(b, topo, inspect.Options{}), cat: cat, dom: dom, domain: name}
}

func forBrokers(t *testing.T, fn func(t *testing.T, embedded bool)) {
	for _, embedded := range []bool{true, false} {
		name := "redis"
		if embedded {
			name = "embedded"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, embedded)
		})
	}
}

func (x *bundle) publish(t *testing.T, stream string, n int) []string {
	t.Helper()
	pubs := make([]lanewaybroker.Publication, n)
	for i := range pubs {
		pubs[i] = lanewaybroker.Publication{Stream: stream, Data: fmt.Sprintf(`{"n":%d}`, i)}
	}
	ids, err := x.b.Publish(context.Background(), pubs)
	require.NoError(t, err)
	return ids
}

func laneOf(t *testing.T, st inspect.Status, stream string) inspect.LaneStatus {
	t.Helper()
	for _, c := range st.Categories {
		for _, l := range c.Lanes {
			if l.Stream == stream {
				return l
			}
		}
	}
	t.Fatalf("no lane %s", stream)
	return inspect.LaneStatus{}
}

func TestTopology(t *testing.T) {
	x := setup(t, true)
	require.Len(t, x.topo.Categories, 2)
	assert.Equal(t, lanes.Category{Name: x.cat, Category: x.cat, Class: lanes.Events, Groups: []string{"Billing", "Mailer"}}, x.topo.Categories[0])
	assert.Equal(t, lanes.Category{Name: x.cat + ":command", Category: x.cat, Class: lanes.Commands, Groups: []string{laneway.CommandGroup}}, x.topo.Categories[1])
	assert.Equal(t, []string{x.cat + ":dlq", x.cat + ":backfill:dlq", x.cat + ":command:dlq", x.cat + ":command:backfill:dlq"}, x.topo.DLQStreams())

	f, err := x.topo.Filter(x.cat + ":command:backfill:dlq")
	require.NoError(t, err)
	assert.Equal(t, []lanes.Category{x.topo.Categories[1]}, f.Categories)
	_, err = x.topo.Filter("nope")
	assert.EqualError(t, err, fmt.Sprintf(`unknown stream "nope" in domain %s: use one of %s, %s:command (or their ":backfill" and ":dlq" streams)`, x.domain, x.cat, x.cat))
}

func TestStatus(t *testing.T) {
	forBrokers(t, func(t *testing.T, embedded bool) {
		x := setup(t, embedded)
		ctx := context.Background()
		primary, backfill := x.cat, x.cat+":backfill"
		for _, s := range []string{primary, backfill} {
			for _, g := range []string{"Billing", "Mailer"} {
				require.NoError(t, x.b.EnsureGroup(ctx, s, g))
			}
		}
		ids := x.publish(t, primary, 3)
		bids := x.publish(t, backfill, 2)
		x.publish(t, primary+":dlq", 1)
		// Billing reads two and acks the first: one pending, one undelivered.
		got, err := x.b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: "Billing", Consumer: "c1", Streams: []string{primary}, Count: 2})
		require.NoError(t, err)
		require.Len(t, got[0].Entries, 2)
		require.NoError(t, x.b.Ack(ctx, []lanewaybroker.AckParams{{Stream: primary, Group: "Billing", IDs: ids[:1]}}))

		st, err := x.in.Status(ctx, x.cfg)
		require.NoError(t, err)
		assert.Equal(t, x.domain, st.Domain)
		assert.True(t, st.LanesEnabled)
		assert.Empty(t, st.Engines)

		p := laneOf(t, st, primary)
		assert.Equal(t, lanes.Primary, p.Lane)
		assert.True(t, p.Enabled)
		assert.True(t, p.Exists)
		assert.Equal(t, int64(3), p.Length)
		assert.Equal(t, int64(1), p.Pending)
		assert.Equal(t, int64(3), p.Lag, "Mailer has read nothing")
		assert.Equal(t, int64(3), p.Unhandled)
		assert.Equal(t, ids[0], p.OldestUnhandledID)
		assert.Zero(t, p.Consumers, "c1 belongs to no running engine")
		assert.Zero(t, p.ActiveConsumers)
		// Once an engine whose consumers end with "c1" runs, c1 counts.
		hb, err := json.Marshal(laneway.Heartbeat{ID: "e1", Domain: x.domain, ConsumerSuffix: "c1"})
		require.NoError(t, err)
		require.NoError(t, x.b.SetKey(ctx, laneway.HeartbeatPrefix+"e1", string(hb), time.Minute))
		t.Cleanup(func() { _ = x.b.DeleteKey(context.Background(), laneway.HeartbeatPrefix+"e1") })
		withEngine, err := x.in.Status(ctx, x.cfg)
		require.NoError(t, err)
		require.Len(t, withEngine.Engines, 1)
		assert.Equal(t, int64(1), laneOf(t, withEngine, primary).Consumers)
		assert.Equal(t, int64(1), laneOf(t, withEngine, primary).ActiveConsumers)
		require.NoError(t, x.b.DeleteKey(ctx, laneway.HeartbeatPrefix+"e1"))
		assert.Equal(t, int64(1), p.DLQDepth)
		assert.Empty(t, p.MissingGroups)
		require.Len(t, p.Groups, 2)
		bill := p.Groups[0]
		assert.Equal(t, "Billing", bill.Name)
		assert.True(t, bill.Expected)
		assert.Equal(t, int64(1), bill.Pending)
		assert.Equal(t, int64(1), bill.Lag, "lag is derived when the server does not report it")
		assert.Equal(t, ids[1], bill.LastDeliveredID)
		assert.Equal(t, ids[1], bill.OldestPendingID)
		assert.Equal(t, ids[1], bill.OldestUnhandledID)
		mail := p.Groups[1]
		assert.Equal(t, int64(3), mail.Lag)
		assert.Equal(t, ids[0], mail.OldestUnhandledID)

		b := laneOf(t, st, backfill)
		assert.Equal(t, lanes.Backfill, b.Lane)
		assert.Equal(t, int64(2), b.Length)
		assert.Equal(t, int64(2), b.Lag)
		assert.Equal(t, bids[0], b.OldestUnhandledID)
		assert.Empty(t, b.Warning)

		cmd := laneOf(t, st, x.cat+":command")
		assert.False(t, cmd.Exists)
		assert.Equal(t, []string{laneway.CommandGroup}, cmd.MissingGroups)
		assert.Equal(t, []string{laneway.CommandGroup}, laneOf(t, st, x.cat+":command:backfill").MissingGroups)

		// Lanes off: the backfill lane is not read and its leftovers warn.
		x.cfg.Server.PriorityLanes.Enabled = false
		offTopo, err := inspect.NewTopology(x.dom, x.cfg)
		require.NoError(t, err)
		off := inspect.New(x.b, offTopo, inspect.Options{})
		st, err = off.Status(ctx, x.cfg)
		require.NoError(t, err)
		b = laneOf(t, st, backfill)
		assert.False(t, b.Enabled)
		assert.Empty(t, b.MissingGroups)
		assert.Equal(t, fmt.Sprintf("lanes are disabled but %s holds 2 unhandled entries that no engine will read: enable [server.priority_lanes] and restart the engine to drain them", backfill), b.Warning)
		assert.Equal(t, []string{b.Warning}, st.Warnings)

		// Handled entries the trimmer has not removed yet are not leftovers.
		for _, g := range []string{"Billing", "Mailer"} {
			_, err := x.b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: g, Consumer: "c1", Streams: []string{backfill}, Count: 10})
			require.NoError(t, err)
			require.NoError(t, x.b.Ack(ctx, []lanewaybroker.AckParams{{Stream: backfill, Group: g, IDs: bids}}))
		}
		st, err = off.Status(ctx, x.cfg)
		require.NoError(t, err)
		b = laneOf(t, st, backfill)
		assert.Equal(t, int64(2), b.Length)
		assert.Zero(t, b.Unhandled)
		assert.Empty(t, b.Warning)
		assert.Empty(t, st.Warnings)
	})
}

func heartbeat(t *testing.T, x *bundle, id, fingerprint string, domain string) {
	t.Helper()
	v, err := json.Marshal(laneway.Heartbeat{ID: id, Domain: domain, LanesFingerprint: fingerprint, StartedAt: time.Now(), LanesEnabled: true})
	require.NoError(t, err)
	require.NoError(t, x.b.SetKey(context.Background(), laneway.HeartbeatPrefix+id, string(v), time.Minute))
	t.Cleanup(func() { _ = x.b.DeleteKey(context.Background(), laneway.HeartbeatPrefix+id) })
}

func TestEngines(t *testing.T) {
	forBrokers(t, func(t *testing.T, embedded bool) {
		x := setup(t, embedded)
		heartbeat(t, x, "a-"+x.cat, x.cfg.LanesFingerprint(), x.domain)
		heartbeat(t, x, "b-"+x.cat, "0123", x.domain)
		heartbeat(t, x, "c-"+x.cat, x.cfg.LanesFingerprint(), "OtherDomain"+x.cat)
		es, err := x.in.Engines(context.Background(), x.cfg.LanesFingerprint())
		require.NoError(t, err)
		require.Len(t, es, 2, "engines of other domains are not listed")
		byID := map[string]bool{}
		for _, e := range es {
			byID[e.ID] = e.FingerprintMatches
		}
		assert.Equal(t, map[string]bool{"a-" + x.cat: true, "b-" + x.cat: false}, byID)
	})
}

func dlqEntry(t *testing.T, x *bundle, name string, version int, group, reason string) string {
	t.Helper()
	raw, err := envelope.Encode(envelope.Envelope{
		Data: json.RawMessage(`{"id":"o1"}`),
		Metadata: envelope.Metadata{
			Headers: envelope.Headers{ID: "m1", Time: time.Now().UTC().Format(time.RFC3339Nano), Type: envelope.TypeString(x.domain, name, version), Stream: x.cat + "-o1"},
			Domain:  envelope.Domain{Class: envelope.ClassEvent, StreamCategory: x.cat, Version: version, SequenceID: "1"},
		},
	})
	require.NoError(t, err)
	env, err := envelope.Decode(raw)
	require.NoError(t, err)
	b, err := envelope.NewDLQ(env, envelope.DLQMetadata{OriginalStream: x.cat, OriginalID: "1-0", ConsumerGroup: group, FailureReason: reason, RetryCount: 3})
	require.NoError(t, err)
	return string(b)
}

func TestDLQSummaries(t *testing.T) {
	forBrokers(t, func(t *testing.T, embedded bool) {
		x := setup(t, embedded)
		ctx := context.Background()
		dlq := x.cat + ":backfill:dlq"
		garbage, err := envelope.NewDLQRaw("not json", envelope.DLQMetadata{FailureReason: "malformed envelope: not JSON", ConsumerGroup: "Billing"})
		require.NoError(t, err)
		_, err = x.b.Publish(ctx, []lanewaybroker.Publication{
			{Stream: dlq, Data: dlqEntry(t, x, "OrderPlaced", 1, "Billing", "boom")},
			{Stream: dlq, Data: dlqEntry(t, x, "OrderPlaced", 1, "Mailer", "boom")},
			{Stream: dlq, Data: dlqEntry(t, x, "OrderShipped", 1, "Billing", "no upcaster")},
			{Stream: dlq, Data: dlqEntry(t, x, "OrderShipped", 2, "Billing", "transient")},
			{Stream: dlq, Data: string(garbage)},
			{Stream: dlq, Data: "{{{"},
		})
		require.NoError(t, err)

		sums, err := x.in.DLQSummaries(ctx, 0)
		require.NoError(t, err)
		require.Len(t, sums, 1, "only DLQ streams with entries")
		s := sums[0]
		assert.Equal(t, dlq, s.Stream)
		assert.Equal(t, int64(6), s.Depth)
		assert.Equal(t, 6, s.Scanned)
		require.Len(t, s.Reasons, 5)
		assert.Equal(t, inspect.ReasonCount{Reason: "boom", Count: 2, FirstID: s.Reasons[0].FirstID, Groups: []string{"Billing", "Mailer"}}, s.Reasons[0])
		assert.Equal(t, []inspect.UpcastGap{{Event: "OrderShipped", Version: 1, Count: 1,
			Fix: "write an upcaster from v1 for OrderShipped (to v3), then replay"}}, s.Upcast, "v2 has an upcaster; OrderPlaced is current")

		limited, err := x.in.DLQSummaries(ctx, 2)
		require.NoError(t, err)
		assert.Equal(t, int64(6), limited[0].Depth)
		assert.Equal(t, 2, limited[0].Scanned)

		entries, err := x.b.Range(ctx, dlq, "-", "+", 0)
		require.NoError(t, err)
		raw := x.topo.ParseDLQ(dlq, entries[4])
		assert.True(t, raw.Raw)
		assert.Equal(t, "malformed envelope: not JSON", raw.Meta.FailureReason)
		bad := x.topo.ParseDLQ(dlq, entries[5])
		assert.True(t, bad.Raw)
		assert.Contains(t, bad.Meta.FailureReason, "unreadable DLQ entry")
		ok := x.topo.ParseDLQ(dlq, entries[0])
		assert.Equal(t, "OrderPlaced", ok.Event)
		assert.Equal(t, 1, ok.Version)
		assert.Equal(t, envelope.ClassEvent, ok.Class)
		assert.Empty(t, ok.UpcastFix)
	})
}

// TestDoctorStuckConsumer: a running engine (heartbeat) whose consumer holds
// backfill entries and handles nothing between the two samples fails the
// draining check; once it acks, the check passes.
func TestDoctorStuckConsumer(t *testing.T) {
	forBrokers(t, func(t *testing.T, embedded bool) {
		x := setup(t, embedded)
		ctx := context.Background()
		backfill := x.cat + ":backfill"
		for _, s := range []string{x.cat, backfill} {
			for _, g := range []string{"Billing", "Mailer"} {
				require.NoError(t, x.b.EnsureGroup(ctx, s, g))
			}
		}
		for _, s := range []string{x.cat + ":command", x.cat + ":command:backfill"} {
			require.NoError(t, x.b.EnsureGroup(ctx, s, laneway.CommandGroup))
		}
		heartbeat(t, x, "e-"+x.cat, x.cfg.LanesFingerprint(), x.domain)
		x.publish(t, backfill, 3)
		var held []string
		for _, g := range []string{"Billing", "Mailer"} {
			got, err := x.b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: g, Consumer: g + "-1", Streams: []string{backfill}, Count: 10})
			require.NoError(t, err)
			require.Len(t, got[0].Entries, 3)
			if g == "Billing" {
				for _, e := range got[0].Entries {
					held = append(held, e.ID)
				}
			} else {
				ids := []string{}
				for _, e := range got[0].Entries {
					ids = append(ids, e.ID)
				}
				require.NoError(t, x.b.Ack(ctx, []lanewaybroker.AckParams{{Stream: backfill, Group: g, IDs: ids}}))
			}
		}

		checks, err := inspect.Doctor(ctx, x.in, inspect.DoctorParams{Config: x.cfg, Sample: 10 * time.Millisecond})
		require.NoError(t, err)
		byID := map[string]inspect.Check{}
		for _, c := range checks {
			byID[c.ID] = c
		}
		assert.Equal(t, inspect.Pass, byID["engine"].Status)
		assert.Equal(t, inspect.Pass, byID["backfill_groups"].Status)
		d := byID["backfill_draining"]
		assert.Equal(t, inspect.Fail, d.Status)
		assert.Contains(t, d.Detail, "Billing on "+backfill+": 3 unhandled and nothing handled in 10ms")
		assert.NotContains(t, d.Detail, "Mailer")
		assert.Contains(t, d.Fix, "a handler is hung")
		assert.True(t, inspect.Failed(checks))

		require.NoError(t, x.b.Ack(ctx, []lanewaybroker.AckParams{{Stream: backfill, Group: "Billing", IDs: held}}))
		checks, err = inspect.Doctor(ctx, x.in, inspect.DoctorParams{Config: x.cfg, Sample: 10 * time.Millisecond})
		require.NoError(t, err)
		for _, c := range checks {
			assert.Equal(t, inspect.Pass, c.Status, "%s: %s", c.ID, c.Detail)
		}
		assert.False(t, inspect.Failed(checks))
	})
}

// TestDraining is the draining rule on hand-made snapshots.
func TestDraining(t *testing.T) {
	snap := func(unhandled int64, active int64, last, oldest string, pending int64) inspect.Status {
		var engines []inspect.Engine
		if active > 0 {
			engines = []inspect.Engine{{Heartbeat: laneway.Heartbeat{LanesEnabled: true}}}
		}
		return inspect.Status{LanesEnabled: true, Engines: engines, Categories: []inspect.CategoryStatus{{
			Lanes: []inspect.LaneStatus{{Stream: "c"}, {Stream: "c:backfill", Length: unhandled, Unhandled: unhandled, ActiveConsumers: active,
				Groups: []inspect.GroupStatus{{Name: "G", Expected: true, Pending: pending, Lag: unhandled - pending, LastDeliveredID: last, OldestPendingID: oldest}}}},
		}}}
	}
	cases := []struct {
		name          string
		before, after inspect.Status
		status        string
		detail        string
	}{
		{"empty", snap(0, 1, "", "", 0), snap(0, 1, "", "", 0), inspect.Pass, "every backfill lane is empty"},
		{"reading", snap(10, 1, "1-0", "1-0", 1), snap(8, 1, "3-0", "3-0", 1), inspect.Pass, "draining: c:backfill: 8 unhandled (was 10)"},
		{"acking without reading", snap(10, 1, "5-0", "1-0", 5), snap(9, 1, "5-0", "2-0", 4), inspect.Pass, "draining"},
		{"stuck", snap(10, 1, "5-0", "1-0", 5), snap(10, 1, "5-0", "1-0", 5), inspect.Fail, "G on c:backfill: 10 unhandled and nothing handled in 1s"},
		{"no consumer, growing", snap(10, 0, "", "", 0), snap(12, 0, "", "", 0), inspect.Fail, "c:backfill: 12 unhandled, grew by 2 in 1s, and no running engine reads backfill lanes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := inspect.Draining(c.before, c.after, time.Second, ".")
			assert.Equal(t, c.status, got.Status)
			assert.Contains(t, got.Detail, c.detail)
		})
	}
}

func TestDrainTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	st := func(sec int, unhandled int64) inspect.Status {
		return inspect.Status{TakenAt: t0.Add(time.Duration(sec) * time.Second), Categories: []inspect.CategoryStatus{{
			Lanes: []inspect.LaneStatus{{Stream: "c", Unhandled: 0}, {Stream: "c:backfill", Unhandled: unhandled}},
		}}}
	}
	tr := inspect.NewDrainTracker()
	d := tr.Observe(st(0, 100))[1]
	assert.Equal(t, inspect.Drain{Stream: "c:backfill", Unhandled: 100, Peak: 100}, d, "no rate before a second snapshot")
	assert.Equal(t, 0.0, d.Done())

	d = tr.Observe(st(1, 80))[1]
	assert.Equal(t, 20.0, d.Rate)
	assert.Equal(t, 4*time.Second, d.ETA)
	assert.InDelta(t, 0.2, d.Done(), 1e-9)

	d = tr.Observe(st(2, 40))[1]
	assert.Equal(t, 30.0, d.Rate, "smoothed: half the new 40/s, half the old 20/s")
	assert.Equal(t, int64(100), d.Peak)

	d = tr.Observe(st(3, 60))[1]
	assert.Equal(t, 5.0, d.Rate, "growing by 20/s pulls the smoothed rate down")

	d = tr.Observe(st(4, 0))[1]
	assert.Zero(t, d.Peak, "drained: the next batch starts a new bar")
	assert.Zero(t, d.ETA)
	assert.Equal(t, 1.0, d.Done())
}
