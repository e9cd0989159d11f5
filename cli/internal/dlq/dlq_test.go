package dlq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli/internal/dlq"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	waitFor = 30 * time.Second
	tick    = 5 * time.Millisecond
)

// eachBroker runs fn on the embedded broker and on the real Redis; streams
// are isolated by a unique category per test.
func eachBroker(t *testing.T, fn func(t *testing.T, b lanewaybroker.Broker, cat string)) {
	t.Run("embedded", func(t *testing.T) {
		b, err := redisbroker.OpenEmbedded(context.Background(), redisbroker.EmbeddedOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		raw[b] = redis.NewClient(&redis.Options{Addr: b.Addr()})
		t.Cleanup(func() { _ = raw[b].Close(); delete(raw, b) })
		fn(t, b, testsvc.Prefix()+"customer")
	})
	t.Run("redis", func(t *testing.T) {
		u := testsvc.RedisURL(t)
		b, err := redisbroker.Open(context.Background(), u, redisbroker.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		opt, err := redis.ParseURL(u)
		require.NoError(t, err)
		raw[b] = redis.NewClient(opt)
		t.Cleanup(func() { _ = raw[b].Close(); delete(raw, b) })
		fn(t, b, testsvc.Prefix()+"customer")
	})
}

// raw holds a plain client per broker under test, for what the seam cannot
// do (XADD with an explicit id). Tests in this package do not run in parallel.
var raw = map[*redisbroker.Broker]*redis.Client{}

// world is a test domain on category cat: customers' CustomerUpdated (v2)
// read by a projector whose failures the test switches on and off, and by
// an audit handler that never fails.
type world struct {
	cat     string
	failing atomic.Bool
	mu      sync.Mutex
	seen    []handled      // successful CustomerProjector runs
	audited map[string]int // successful AuditLog runs by customer id
}

const auditName = "AuditLog"

type handled struct {
	stream string
	lane   string
	ev     customers.CustomerUpdated
	ver    string // the type string on the wire
}

func (w *world) auditCounts() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for k, v := range w.audited {
		out[k] = v
	}
	return out
}

func (w *world) handledList() []handled {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]handled(nil), w.seen...)
}

// domain builds the test domain, with or without the v1 -> v2 upcaster.
func (w *world) domain(t *testing.T, upcaster bool) *laneway.Domain {
	t.Helper()
	b := laneway.NewDomain(customers.DomainName)
	laneway.RegisterAggregate[customers.Customer](b, laneway.AggregateOptions{Category: w.cat})
	laneway.RegisterEvent[customers.Customer, customers.CustomerUpdated](b)
	if upcaster {
		b.AddUpcaster(laneway.Upcaster{Event: "CustomerUpdated", From: 1, To: 2, Fn: customers.UpcastCustomerUpdatedV1})
	}
	h := laneway.NewHandler(customers.ProjectorName)
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, ev customers.CustomerUpdated, meta laneway.Meta) error {
		if w.failing.Load() {
			return errors.New("customer_summary is read-only (test)")
		}
		return nil
	})
	b.AddHandler(h)
	a := laneway.NewHandler(auditName)
	laneway.On(a, func(ctx context.Context, tx *laneway.Tx, ev customers.CustomerUpdated, meta laneway.Meta) error {
		return nil
	})
	b.AddHandler(a)
	d, err := b.Build()
	require.NoError(t, err)
	return d
}

// start runs the real engine for dom on b until the test ends (or stop).
func (w *world) start(t *testing.T, b lanewaybroker.Broker, dom *laneway.Domain, lanes bool) (stop func()) {
	t.Helper()
	ctx := context.Background()
	cfg := lanewayconfig.Default()
	cfg.Server.PriorityLanes.Enabled = lanes
	cfg.Server.StreamSubscription.MaxRetries = 2
	cfg.Server.StreamSubscription.RetryDelaySeconds = 0.01
	cfg.Server.StreamSubscription.BlockingTimeoutMS = 100
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "laneway.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
	require.NoError(t, err)
	eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: b, DisableHTTP: true,
		OnHandled: func(m laneway.Handled) {
			if m.Err != nil {
				return
			}
			var ev customers.CustomerUpdated
			payload, _, uerr := dom.Upcast("CustomerUpdated", m.Version, m.Payload)
			if uerr == nil {
				_ = json.Unmarshal(payload, &ev)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if m.Group == auditName {
				if w.audited == nil {
					w.audited = map[string]int{}
				}
				w.audited[ev.CustomerID]++
				return
			}
			w.seen = append(w.seen, handled{stream: m.Stream, lane: m.Lane, ev: ev, ver: m.Meta.Type})
		}})
	require.NoError(t, eng.Start(ctx))
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, eng.Stop(ctx))
		})
	}
	t.Cleanup(stop)
	return stop
}

func layout(cat string, enabled bool) lanes.Topology {
	return lanes.New(lanes.Spec{Categories: []string{cat}}, lanes.Config{Enabled: enabled, Naming: lanes.Naming{BackfillSuffix: "backfill"}})
}

// publishEvent appends a CustomerUpdated envelope (version v, payload p) to stream.
func publishEvent(t *testing.T, b lanewaybroker.Broker, stream, cat string, v int, p any) string {
	t.Helper()
	data, err := json.Marshal(p)
	require.NoError(t, err)
	id := testsvc.RandomSuffix(8)
	raw, err := envelope.Encode(envelope.Envelope{Data: data, Metadata: envelope.Metadata{
		Headers: envelope.Headers{ID: id, Time: time.Now().UTC().Format(time.RFC3339Nano),
			Type: fmt.Sprintf("%s.CustomerUpdated.v%d", customers.DomainName, v), Stream: cat + "-" + id},
		Domain: envelope.Domain{Class: envelope.ClassEvent, StreamCategory: cat, Version: v, SequenceID: "1"},
	}})
	require.NoError(t, err)
	ids, err := b.Publish(context.Background(), []lanewaybroker.Publication{{Stream: stream, Data: string(raw)}})
	require.NoError(t, err)
	return ids[0]
}

func depth(t *testing.T, b lanewaybroker.Broker, stream string) int64 {
	t.Helper()
	n, err := b.Len(context.Background(), stream)
	require.NoError(t, err)
	return n
}

// A handler failure on each lane lands in that lane's DLQ; once the handler
// is fixed, a replay with the default target goes back to the lane it
// failed on and is handled there, and the entry leaves the DLQ.
func TestReplayToTheLaneItFailedOn(t *testing.T) {
	eachBroker(t, func(t *testing.T, b lanewaybroker.Broker, cat string) {
		ctx := context.Background()
		w := &world{cat: cat}
		w.failing.Store(true)
		w.start(t, b, w.domain(t, true), true)
		m := dlq.New(b, layout(cat, true))

		publishEvent(t, b, cat, cat, 2, customers.CustomerUpdated{CustomerID: "c1", LoyaltyTier: "gold"})
		publishEvent(t, b, cat+":backfill", cat, 2, customers.CustomerUpdated{CustomerID: "c2", LoyaltyTier: "silver"})
		require.Eventually(t, func() bool {
			return depth(t, b, cat+":dlq") == 1 && depth(t, b, cat+":backfill:dlq") == 1
		}, waitFor, tick)
		require.Eventually(t, func() bool { return len(w.auditCounts()) == 2 }, waitFor, tick)

		res, err := m.List(ctx, dlq.ListParams{})
		require.NoError(t, err)
		require.Len(t, res.Entries, 2)
		assert.Equal(t, int64(2), res.Total)
		require.Len(t, res.Streams, 2)
		assert.Equal(t, []string{cat + ":backfill:dlq", cat + ":dlq"}, []string{res.Streams[0].Name, res.Streams[1].Name})
		assert.Equal(t, lanes.Backfill, res.Streams[0].Lane)
		for _, e := range res.Entries {
			assert.Equal(t, customers.ProjectorName, e.Meta.ConsumerGroup)
			assert.Equal(t, int64(2), e.Meta.RetryCount)
			assert.Contains(t, e.Meta.FailureReason, "customer_summary is read-only")
			assert.Equal(t, e.Stream, e.Meta.OriginalStream+":dlq")
			assert.NotEmpty(t, e.Meta.Consumer)
			_, err := time.Parse(time.RFC3339Nano, e.Meta.FailedAt)
			assert.NoError(t, err, "failed_at is RFC 3339: %q", e.Meta.FailedAt)
			assert.NotContains(t, string(e.Payload), "_dlq_metadata")
			assert.Equal(t, customers.DomainName+".CustomerUpdated.v2", e.Type)
		}
		// Find by id alone searches every DLQ stream.
		bf := res.Streams[0]
		got, err := m.List(ctx, dlq.ListParams{Stream: bf.Source})
		require.NoError(t, err)
		require.Len(t, got.Entries, 1)
		bfID := got.Entries[0].ID
		found, err := m.Find(ctx, bfID, "")
		if res.Entries[0].ID == res.Entries[1].ID {
			// Both failed in the same millisecond: ids are times per stream.
			require.ErrorIs(t, err, dlq.ErrAmbiguous)
		} else {
			require.NoError(t, err)
			assert.Equal(t, cat+":backfill:dlq", found.Stream)
		}

		w.failing.Store(false) // the handler is fixed
		for _, e := range res.Entries {
			r, err := m.Replay(ctx, dlq.ReplayParams{ID: e.ID, Stream: e.Stream})
			require.NoError(t, err)
			assert.Equal(t, e.Meta.OriginalStream, r.Target)
		}
		require.Eventually(t, func() bool { return len(w.handledList()) == 2 }, waitFor, tick)
		byCustomer := map[string]handled{}
		for _, h := range w.handledList() {
			byCustomer[h.ev.CustomerID] = h
		}
		assert.Equal(t, laneway.LanePrimary, byCustomer["c1"].lane)
		assert.Equal(t, cat, byCustomer["c1"].stream)
		assert.Equal(t, laneway.LaneBackfill, byCustomer["c2"].lane, "a backfill failure is replayed to backfill, not primary")
		assert.Equal(t, cat+":backfill", byCustomer["c2"].stream)
		assert.Zero(t, depth(t, b, cat+":dlq"))
		assert.Zero(t, depth(t, b, cat+":backfill:dlq"))

		// The replay was addressed to the projector: the audit handler,
		// which had handled the originals, skipped the replays (the
		// reference re-delivers to every group).
		es, err := b.Range(ctx, cat+":backfill", "-", "+", 0)
		require.NoError(t, err)
		require.NotEmpty(t, es)
		env, err := envelope.Decode([]byte(es[len(es)-1].Data))
		require.NoError(t, err)
		assert.Equal(t, customers.ProjectorName, env.Metadata.ReplayGroup)
		require.Eventually(t, func() bool {
			g, err := b.Groups(ctx, cat+":backfill")
			require.NoError(t, err)
			for _, x := range g {
				if x.Name == auditName {
					return x.Lag == 0 && x.Pending == 0
				}
			}
			return false
		}, waitFor, tick)
		assert.Equal(t, map[string]int{"c1": 1, "c2": 1}, w.auditCounts())

		// Replaying again finds nothing: the entry left the DLQ.
		_, err = m.Replay(ctx, dlq.ReplayParams{ID: bfID})
		assert.ErrorIs(t, err, dlq.ErrNotFound)
	})
}

// putDLQ appends a DLQ entry for a CustomerUpdated that failed on source.
func putDLQ(t *testing.T, b lanewaybroker.Broker, cat, source, group string) string {
	t.Helper()
	data, _ := json.Marshal(customers.CustomerUpdated{CustomerID: "c9", LoyaltyTier: "gold"})
	raw, err := envelope.NewDLQ(envelope.Envelope{Data: data, Metadata: envelope.Metadata{
		Headers: envelope.Headers{ID: testsvc.RandomSuffix(8), Type: customers.DomainName + ".CustomerUpdated.v2", Stream: cat + "-c9"},
		Domain:  envelope.Domain{Class: envelope.ClassEvent, StreamCategory: cat, Version: 2},
	}}, envelope.DLQMetadata{OriginalStream: source, OriginalID: "1-0", ConsumerGroup: group, Consumer: group + "-x",
		FailedAt: time.Now().UTC().Format(time.RFC3339), RetryCount: 3, FailureReason: "boom"})
	require.NoError(t, err)
	ids, err := b.Publish(context.Background(), []lanewaybroker.Publication{{Stream: source + ":dlq", Data: string(raw)}})
	require.NoError(t, err)
	return ids[0]
}

// Discovery sees every handler kind and both lanes whatever the current
// configuration says, and replay refuses targets nothing reads.
func TestDiscoveryAndTargets(t *testing.T) {
	eachBroker(t, func(t *testing.T, b lanewaybroker.Broker, cat string) {
		ctx := context.Background()
		putDLQ(t, b, cat, cat, "CustomerProjector")
		bfID := putDLQ(t, b, cat, cat+":backfill", "NotificationHandler")
		putDLQ(t, b, cat, cat+":command", laneway.CommandGroup)
		putDLQ(t, b, cat, cat+":command:backfill", laneway.CommandGroup)
		oldID := putDLQ(t, b, cat, cat+":bulk", "CustomerProjector") // an earlier backfill_suffix
		putDLQ(t, b, "other"+cat, "other"+cat, "X")                  // another domain's category

		off := dlq.New(b, layout(cat, false))
		streams, err := off.Streams(ctx)
		require.NoError(t, err)
		var names []string
		for _, s := range streams {
			names = append(names, s.Name)
			assert.Equal(t, int64(1), s.Depth)
		}
		assert.Equal(t, []string{cat + ":backfill:dlq", cat + ":bulk:dlq", cat + ":command:backfill:dlq", cat + ":command:dlq", cat + ":dlq"}, names)
		kinds := map[string]string{}
		for _, s := range streams {
			kinds[s.Name] = string(s.Class) + "/" + string(s.Lane) + "/" + s.Primary
		}
		assert.Equal(t, "command/backfill/"+cat+":command", kinds[cat+":command:backfill:dlq"])
		assert.Equal(t, "event/backfill/"+cat, kinds[cat+":bulk:dlq"])

		// Lanes off: the backfill lane is not read, so a default replay is
		// refused with the way out; --to primary works.
		_, err = off.Replay(ctx, dlq.ReplayParams{ID: bfID, Stream: cat + ":backfill"})
		require.ErrorIs(t, err, dlq.ErrUnreadTarget)
		assert.Contains(t, err.Error(), "--to primary")
		assert.Equal(t, int64(1), depth(t, b, cat+":backfill:dlq"), "a refused replay changes nothing")
		_, err = off.ReplayAll(ctx, cat+":backfill", dlq.ToOriginal)
		require.ErrorIs(t, err, dlq.ErrUnreadTarget, "refused for the whole stream")
		assert.Equal(t, int64(1), depth(t, b, cat+":backfill:dlq"))
		r, err := off.Replay(ctx, dlq.ReplayParams{ID: bfID, Stream: cat + ":backfill:dlq", To: dlq.ToPrimary})
		require.NoError(t, err)
		assert.Equal(t, cat, r.Target)
		assert.Equal(t, int64(1), depth(t, b, cat))

		// Lanes on: an entry from an old suffix goes to today's backfill lane
		// with --to backfill; its original lane is refused.
		on := dlq.New(b, layout(cat, true))
		_, err = on.Replay(ctx, dlq.ReplayParams{ID: oldID, Stream: cat + ":bulk"})
		require.ErrorIs(t, err, dlq.ErrUnreadTarget)
		r, err = on.Replay(ctx, dlq.ReplayParams{ID: oldID, Stream: cat + ":bulk", To: dlq.ToBackfill})
		require.NoError(t, err)
		assert.Equal(t, cat+":backfill", r.Target)

		// Command DLQs replay to command lanes.
		res, err := on.ReplayAll(ctx, cat+":command:backfill:dlq", dlq.ToOriginal)
		require.NoError(t, err)
		assert.Equal(t, map[string]int64{cat + ":command:backfill": 1}, res.Targets)

		// Unknown streams name the domain's DLQs.
		_, err = on.Resolve(ctx, "nope")
		require.ErrorIs(t, err, dlq.ErrUnknownStream)
		assert.Contains(t, err.Error(), cat+":backfill:dlq")
		_, err = on.Resolve(ctx, "other"+cat)
		require.ErrorIs(t, err, dlq.ErrUnknownStream)
	})
}

func TestFindErrors(t *testing.T) {
	eachBroker(t, func(t *testing.T, b lanewaybroker.Broker, cat string) {
		ctx := context.Background()
		m := dlq.New(b, layout(cat, true))
		_, err := m.Find(ctx, "1-0", "")
		require.ErrorIs(t, err, dlq.ErrNotFound)
		_, err = m.Find(ctx, "x-1", "")
		require.ErrorIs(t, err, dlq.ErrBadID)

		// The same id in two streams (ids are times, so it happens).
		id := "1700000000000-0"
		for _, s := range []string{cat + ":dlq", cat + ":backfill:dlq"} {
			data := putRawID(t, b, cat)
			require.NoError(t, addWithID(t, b, s, id, data))
		}
		_, err = m.Find(ctx, id, "")
		require.ErrorIs(t, err, dlq.ErrAmbiguous)
		assert.Contains(t, err.Error(), "--stream")
		e, err := m.Find(ctx, id, cat+":backfill")
		require.NoError(t, err)
		assert.Equal(t, cat+":backfill:dlq", e.Stream)
		_, err = m.Find(ctx, "1700000000000", cat) // "<ms>" means "<ms>-0"
		require.NoError(t, err)
	})
}

func putRawID(t *testing.T, b lanewaybroker.Broker, cat string) string {
	t.Helper()
	raw, err := envelope.NewDLQRaw("not json", envelope.DLQMetadata{OriginalStream: cat, FailureReason: "malformed envelope"})
	require.NoError(t, err)
	return string(raw)
}

// addWithID is XADD with an explicit id, through a second broker client on
// the same server (the seam only has auto ids).
func addWithID(t *testing.T, b lanewaybroker.Broker, stream, id, data string) error {
	t.Helper()
	rb, ok := b.(*redisbroker.Broker)
	require.True(t, ok)
	return raw[rb].XAdd(context.Background(), &redis.XAddArgs{Stream: stream, ID: id, Values: map[string]any{"data": data}}).Err()
}

// ReplayAll replays what was there when it started, keeps what it cannot
// replay, and Purge deletes everything it saw.
func TestReplayAllAndPurge(t *testing.T) {
	eachBroker(t, func(t *testing.T, b lanewaybroker.Broker, cat string) {
		ctx := context.Background()
		m := dlq.New(b, layout(cat, true))
		for range 450 { // more than one batch
			putDLQ(t, b, cat, cat+":backfill", "CustomerProjector")
		}
		_, err := b.Publish(ctx, []lanewaybroker.Publication{{Stream: cat + ":backfill:dlq", Data: "garbage"}})
		require.NoError(t, err)

		res, err := m.ReplayAll(ctx, cat+":backfill", dlq.ToOriginal)
		require.NoError(t, err)
		assert.Equal(t, int64(450), res.Replayed)
		assert.Equal(t, map[string]int64{cat + ":backfill": 450}, res.Targets)
		require.Len(t, res.Skipped, 1)
		assert.Contains(t, res.Skipped[0].Problem, "not a JSON object")
		assert.Equal(t, int64(1), depth(t, b, cat+":backfill:dlq"))
		assert.Equal(t, int64(450), depth(t, b, cat+":backfill"))

		// Replayed payloads are the envelopes without DLQ metadata.
		es, err := b.Range(ctx, cat+":backfill", "-", "+", 1)
		require.NoError(t, err)
		env, err := envelope.Decode([]byte(es[0].Data))
		require.NoError(t, err)
		assert.Nil(t, env.DLQ)

		for range 3 {
			putDLQ(t, b, cat, cat, "CustomerProjector")
		}
		s, n, err := m.Purge(ctx, cat+":dlq")
		require.NoError(t, err)
		assert.Equal(t, int64(3), n)
		assert.Equal(t, cat+":dlq", s.Name)
		assert.Zero(t, depth(t, b, cat+":dlq"))
		assert.Equal(t, int64(1), depth(t, b, cat+":backfill:dlq"), "purge touches only its stream")

		_, err = m.ReplayAll(ctx, "nope", dlq.ToOriginal)
		assert.ErrorIs(t, err, dlq.ErrUnknownStream)
	})
}

// Issue 5: a CustomerUpdated v1 that a domain without the upcaster could
// not decode sits in the DLQ; after the upcaster is added (a new build of
// the domain), replay sends it back and the projector handles it as v2.
func TestReplayOldVersionAfterUpcasterIsAdded(t *testing.T) {
	eachBroker(t, func(t *testing.T, b lanewaybroker.Broker, cat string) {
		ctx := context.Background()
		w := &world{cat: cat}
		stopOld := w.start(t, b, w.domain(t, false), true)
		publishEvent(t, b, cat+":backfill", cat, 1, customers.CustomerUpdatedV1{CustomerID: "c7", Tier: "platinum"})
		// Each handler rejects it on its own: one DLQ entry per group.
		require.Eventually(t, func() bool { return depth(t, b, cat+":backfill:dlq") == 2 }, waitFor, tick)
		stopOld()
		assert.Empty(t, w.handledList())
		assert.Empty(t, w.auditCounts())

		m := dlq.New(b, layout(cat, true))
		res, err := m.List(ctx, dlq.ListParams{Stream: cat + ":backfill:dlq"})
		require.NoError(t, err)
		require.Len(t, res.Entries, 2)
		var groups []string
		for _, e := range res.Entries {
			groups = append(groups, e.Meta.ConsumerGroup)
			assert.Equal(t, customers.DomainName+".CustomerUpdated.v1", e.Type)
			assert.Contains(t, e.Meta.FailureReason, "no upcaster from CustomerUpdated v1")
		}
		assert.ElementsMatch(t, []string{customers.ProjectorName, auditName}, groups)
		t.Logf("failure reason without the upcaster: %s", res.Entries[0].Meta.FailureReason)

		w.start(t, b, w.domain(t, true), true) // the new build, with the upcaster
		r, err := m.Replay(ctx, dlq.ReplayParams{ID: res.Entries[0].ID})
		require.NoError(t, err)
		assert.Equal(t, cat+":backfill", r.Target)
		all, err := m.ReplayAll(ctx, cat+":backfill:dlq", dlq.ToOriginal)
		require.NoError(t, err)
		assert.Equal(t, int64(1), all.Replayed)
		require.Eventually(t, func() bool {
			return len(w.handledList()) == 1 && w.auditCounts()["c7"] == 1
		}, waitFor, tick)
		h := w.handledList()[0]
		assert.Equal(t, customers.CustomerUpdated{CustomerID: "c7", LoyaltyTier: "platinum"}, h.ev, "handled as v2")
		assert.Equal(t, customers.DomainName+".CustomerUpdated.v1", h.ver, "the wire entry is still v1")
		assert.Equal(t, laneway.LaneBackfill, h.lane)
		assert.Zero(t, depth(t, b, cat+":backfill:dlq"))
		// Each group handled its own replay once, not the other's.
		require.Eventually(t, func() bool {
			g, err := b.Groups(ctx, cat+":backfill")
			require.NoError(t, err)
			done := 0
			for _, x := range g {
				if x.Lag == 0 && x.Pending == 0 {
					done++
				}
			}
			return done == 2
		}, waitFor, tick)
		assert.Len(t, w.handledList(), 1)
		assert.Equal(t, map[string]int{"c7": 1}, w.auditCounts())
	})
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]dlq.Target{"": dlq.ToOriginal, "original": dlq.ToOriginal, "Primary": dlq.ToPrimary, "backfill": dlq.ToBackfill} {
		got, err := dlq.ParseTarget(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := dlq.ParseTarget("sideways")
	assert.EqualError(t, err, `--to "sideways": use original, primary or backfill`)
}

// An entry the reference wrote (failed_at null, no failure_reason, members
// we do not model) is listed as far as it goes and replayed with every
// member kept, addressed to its group through metadata.extensions.
func TestReferenceEntry(t *testing.T) {
	eachBroker(t, func(t *testing.T, b lanewaybroker.Broker, cat string) {
		ctx := context.Background()
		data := `{"customer_id":"c1","loyalty_tier":"gold"}`
		sum, err := envelope.Checksum([]byte(data))
		require.NoError(t, err)
		entry := fmt.Sprintf(`{"data":%s,"metadata":{"headers":{"id":"m1","type":"Customers.CustomerUpdated.v2","stream":"%s-c1","traceparent":null},`+
			`"envelope":{"specversion":"1.0","checksum":"%s"},"domain":{"kind":"EVENT","stream_category":"%s","version":"v2","priority":0},`+
			`"event_store":null,"extensions":{"tenant":"acme"}},`+
			`"_dlq_metadata":{"original_stream":"%s","original_id":"1-0","consumer_group":"CustomerProjector","consumer":"c","failed_at":null,"retry_count":3}}`,
			data, cat, sum, cat, cat)
		_, err = b.Publish(ctx, []lanewaybroker.Publication{{Stream: cat + ":dlq", Data: entry}})
		require.NoError(t, err)

		m := dlq.New(b, layout(cat, true))
		res, err := m.List(ctx, dlq.ListParams{})
		require.NoError(t, err)
		require.Len(t, res.Entries, 1)
		e := res.Entries[0]
		assert.Empty(t, e.Meta.FailedAt)
		assert.Equal(t, envelope.ReasonNotRecorded, e.Meta.FailureReason, "the reference writes no failure_reason")
		assert.Equal(t, int64(3), e.Meta.RetryCount)
		assert.Equal(t, "CustomerProjector", e.Meta.ConsumerGroup)
		assert.Empty(t, e.Problem)

		r, err := m.Replay(ctx, dlq.ReplayParams{ID: e.ID})
		require.NoError(t, err)
		assert.Equal(t, cat, r.Target)
		es, err := b.Range(ctx, cat, "-", "+", 0)
		require.NoError(t, err)
		require.Len(t, es, 1)
		var got map[string]any
		require.NoError(t, json.Unmarshal([]byte(es[0].Data), &got))
		assert.NotContains(t, got, "_dlq_metadata")
		meta := got["metadata"].(map[string]any)
		assert.Contains(t, meta, "event_store")
		assert.Contains(t, meta["headers"], "traceparent")
		assert.Equal(t, map[string]any{"tenant": "acme", envelope.ReplayGroupExtension: "CustomerProjector"}, meta["extensions"])
		env, err := envelope.Decode([]byte(es[0].Data))
		require.NoError(t, err, "the replayed entry still decodes (checksum intact)")
		assert.Equal(t, "CustomerProjector", env.Metadata.ReplayGroup)
		assert.JSONEq(t, data, string(env.Data))
	})
}
