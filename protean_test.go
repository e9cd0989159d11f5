package laneway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

// openedEntry is an Opened event of account id as a stream entry, with the
// given priority in its metadata.
func openedEntry(t *testing.T, category, id string, priority laneway.Priority) string {
	t.Helper()
	data, err := json.Marshal(Opened{Owner: id})
	require.NoError(t, err)
	raw, err := envelope.Encode(envelope.Envelope{
		Data: data,
		Metadata: envelope.Metadata{
			Headers: envelope.Headers{ID: category + "-" + id + "-0.1", Time: time.Now().UTC().Format(time.RFC3339Nano),
				Type: "Bank.Opened.v1", Stream: category + "-" + id},
			Domain: envelope.Domain{Class: envelope.ClassEvent, StreamCategory: category, Priority: int(priority), Version: 1, SequenceID: "0.1"},
		},
	})
	require.NoError(t, err)
	return string(raw)
}

// seenIDs collects the message ids a handler ran for.
type seenIDs struct {
	mu  sync.Mutex
	ids []string
}

func (s *seenIDs) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, id)
}

func (s *seenIDs) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string(nil), s.ids...)
	sort.Strings(out)
	return out
}

// groupDomain has one projector, AccountProjector, with opts.
func groupDomain(t *testing.T, category string, seen *seenIDs, opts ...laneway.HandlerOption) *laneway.Domain {
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{Category: category})
	laneway.RegisterEvent[Account, Opened](b)
	h := laneway.NewHandler("AccountProjector", opts...)
	laneway.On(h, func(_ context.Context, _ *laneway.Tx, _ Opened, m laneway.Meta) error {
		seen.add(m.ID)
		return nil
	})
	b.AddHandler(h)
	d, err := b.Build()
	require.NoError(t, err)
	return d
}

func startEngine(t *testing.T, dom *laneway.Domain, cfg *lanewayconfig.Config, br lanewaybroker.Broker) (*laneway.App, *laneway.Engine) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir()+"/laneway.db")
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
	require.NoError(t, err)
	eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, DisableHTTP: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, eng.Start(ctx))
	t.Cleanup(func() { require.NoError(t, eng.Stop(context.Background())) })
	return app, eng
}

// TestConsumerGroupSharedWithAnotherService: a handler given another
// service's consumer group joins it, and the two share the entries: what
// the other consumer took (and acked) is not handled again, the rest is
// handled once, and no group named after the handler appears.
func TestConsumerGroupSharedWithAnotherService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	br, err := redisbroker.Open(ctx, testsvc.RedisURL(t), redisbroker.Options{})
	require.NoError(t, err)
	defer br.Close()
	cat := testsvc.Prefix() + "account"
	const group = "protean_bank.AccountProjector"

	var all []string
	publish := func(from, n int) {
		var pubs []lanewaybroker.Publication
		for i := from; i < from+n; i++ {
			id := fmt.Sprintf("a%02d", i)
			all = append(all, cat+"-"+id+"-0.1")
			pubs = append(pubs, lanewaybroker.Publication{Stream: cat, Data: openedEntry(t, cat, id, laneway.Normal)})
		}
		_, err := br.Publish(ctx, pubs)
		require.NoError(t, err)
	}
	// The other service's consumer takes the first 4 of 10 and acks them.
	publish(0, 10)
	require.NoError(t, br.EnsureGroup(ctx, cat, group))
	read, err := br.ReadGroup(ctx, lanewaybroker.ReadParams{Group: group, Consumer: "protean-worker-1", Streams: []string{cat}, Count: 4})
	require.NoError(t, err)
	require.Len(t, read, 1)
	require.Len(t, read[0].Entries, 4)
	var otherTook []string
	var ackIDs []string
	for _, e := range read[0].Entries {
		env, err := envelope.Decode([]byte(e.Data))
		require.NoError(t, err)
		otherTook = append(otherTook, env.Metadata.Headers.ID)
		ackIDs = append(ackIDs, e.ID)
	}
	require.NoError(t, br.Ack(ctx, []lanewaybroker.AckParams{{Stream: cat, Group: group, IDs: ackIDs}}))

	var seen seenIDs
	cfg := lanewayconfig.Default()
	cfg.Server.StreamSubscription.BlockingTimeoutMS = 200
	startEngine(t, groupDomain(t, cat, &seen, laneway.ConsumerGroup(group)), cfg, br)

	want := append([]string(nil), all[4:]...)
	sort.Strings(want)
	require.Eventually(t, func() bool { return len(seen.get()) >= len(want) }, opsWait, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		gs, err := br.Groups(ctx, cat)
		return err == nil && len(gs) == 1 && gs[0].Pending == 0 && gs[0].Lag == 0
	}, opsWait, 10*time.Millisecond)
	assert.Equal(t, want, seen.get(), "the engine handles exactly what the other consumer did not take")
	assert.NotContains(t, seen.get(), otherTook[0])
	gs, err := br.Groups(ctx, cat)
	require.NoError(t, err)
	require.Len(t, gs, 1)
	assert.Equal(t, group, gs[0].Name, "no group named after the handler")
	assert.Equal(t, int64(2), gs[0].Consumers, "the other service's consumer and the engine's")

	// Both running: every new entry is handled by exactly one of them.
	publish(10, 20)
	var mu sync.Mutex
	var otherGot []string
	require.Eventually(t, func() bool {
		res, err := br.ReadGroup(ctx, lanewaybroker.ReadParams{Group: group, Consumer: "protean-worker-1", Streams: []string{cat}, Count: 3})
		require.NoError(t, err)
		for _, s := range res {
			var ids []string
			for _, e := range s.Entries {
				env, err := envelope.Decode([]byte(e.Data))
				require.NoError(t, err)
				mu.Lock()
				otherGot = append(otherGot, env.Metadata.Headers.ID)
				mu.Unlock()
				ids = append(ids, e.ID)
			}
			require.NoError(t, br.Ack(ctx, []lanewaybroker.AckParams{{Stream: cat, Group: group, IDs: ids}}))
		}
		gs, err := br.Groups(ctx, cat)
		return err == nil && gs[0].Pending == 0 && gs[0].Lag == 0
	}, opsWait, 5*time.Millisecond)
	union := map[string]int{}
	for _, id := range append(seen.get(), otherTook...) {
		union[id]++
	}
	for _, id := range otherGot {
		union[id]++
	}
	assert.Len(t, union, len(all), "every entry handled by one of the two")
	for id, n := range union {
		assert.Equal(t, 1, n, "%s handled %d times", id, n)
	}
}

// TestConsumerGroupFromConfig: [handlers.NAME] consumer_group beats the
// code's option.
func TestConsumerGroupFromConfig(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	br, err := redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	defer br.Close()
	cat := testsvc.Prefix() + "account"
	var seen seenIDs
	dom := groupDomain(t, cat, &seen, laneway.ConsumerGroup("from.code"))
	cfg := lanewayconfig.Default()
	cfg.Server.PriorityLanes.Enabled = true
	cfg.Handlers = map[string]lanewayconfig.HandlerSettings{"AccountProjector": {ConsumerGroup: "from.config"}}
	startEngine(t, dom, cfg, br)
	for _, s := range []string{cat, cat + ":backfill"} {
		gs, err := br.Groups(ctx, s)
		require.NoError(t, err)
		require.Len(t, gs, 1, s)
		assert.Equal(t, "from.config", gs[0].Name, s)
	}
	_, err = br.Publish(ctx, []lanewaybroker.Publication{{Stream: cat + ":backfill", Data: openedEntry(t, cat, "x", laneway.Low)}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(seen.get()) == 1 }, opsWait, 10*time.Millisecond)
}

func TestConsumerGroupsRejects(t *testing.T) {
	t.Parallel()
	cat := testsvc.Prefix() + "account"
	var seen seenIDs
	two := func(g1, g2 string) *laneway.Domain {
		b := laneway.NewDomain("Bank")
		laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{Category: cat})
		laneway.RegisterEvent[Account, Opened](b)
		for _, h := range []*laneway.Handler{laneway.NewHandler("A", laneway.ConsumerGroup(g1)), laneway.NewHandler("B", laneway.ConsumerGroup(g2))} {
			laneway.On(h, func(_ context.Context, _ *laneway.Tx, _ Opened, m laneway.Meta) error { seen.add(m.ID); return nil })
			b.AddHandler(h)
		}
		d, err := b.Build()
		require.NoError(t, err)
		return d
	}
	cases := []struct {
		name     string
		dom      *laneway.Domain
		handlers map[string]lanewayconfig.HandlerSettings
		want     string
	}{
		{"two handlers in one group", two("g", "g"), nil, `handlers A and B are both in consumer group "g"`},
		{"config puts them together", two("g1", "g2"), map[string]lanewayconfig.HandlerSettings{"B": {ConsumerGroup: "g1"}}, `consumer group "g1"`},
		{"unknown handler", two("g1", "g2"), map[string]lanewayconfig.HandlerSettings{"C": {ConsumerGroup: "x"}}, `[handlers.C]: domain Bank has no handler "C" (its handlers: A, B)`},
		{"command group", two("g1", laneway.CommandGroup), nil, "reserved for command handling"},
	}
	for _, c := range cases {
		cfg := lanewayconfig.Default()
		cfg.Handlers = c.handlers
		_, err := c.dom.ConsumerGroups(cfg)
		require.Error(t, err, c.name)
		assert.Contains(t, err.Error(), c.want, c.name)
	}

	// A blank group in code is a Build error naming the handler.
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{Category: cat})
	laneway.RegisterEvent[Account, Opened](b)
	h := laneway.NewHandler("A", laneway.ConsumerGroup("has space"))
	laneway.On(h, func(context.Context, *laneway.Tx, Opened, laneway.Meta) error { return nil })
	b.AddHandler(h)
	_, err := b.Build()
	require.ErrorContains(t, err, `handler A: consumer group "has space" must not contain whitespace`)
}

// reactorDomain: on Opened, the handler saves account "r-<owner>" with a
// Deposited event, i.e. it causes follow-up work whose lane depends on the
// priority it runs under.
func reactorDomain(t *testing.T, category string) *laneway.Domain {
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{Category: category})
	laneway.RegisterEvent[Account, Opened](b)
	laneway.RegisterEvent[Account, Deposited](b)
	h := laneway.NewHandler("Reactor")
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, e Opened, _ laneway.Meta) error {
		a := laneway.New[Account]("r-" + e.Owner)
		a.Raise(Deposited{Amount: 1})
		return tx.Save(ctx, a)
	})
	b.AddHandler(h)
	d, err := b.Build()
	require.NoError(t, err)
	return d
}

// TestBackfillEntryOfAnotherProducerPropagatesBelowThreshold: an entry on
// the backfill lane that says priority 0 (Protean's are all 0: it picks the
// lane from its outbox row) causes follow-up work at threshold-1, so the
// follow-up stays on the backfill lane; Laneway's own entries keep their
// exact priority; primary entries are untouched.
func TestBackfillEntryOfAnotherProducerPropagatesBelowThreshold(t *testing.T) {
	t.Parallel()
	for _, threshold := range []int{0, 10} {
		t.Run(fmt.Sprint("threshold=", threshold), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			br, err := redisbroker.Open(ctx, testsvc.RedisURL(t), redisbroker.Options{})
			require.NoError(t, err)
			defer br.Close()
			cat := testsvc.Prefix() + "account"
			cfg := lanewayconfig.Default()
			cfg.Server.PriorityLanes.Enabled = true
			cfg.Server.PriorityLanes.Threshold = threshold
			cfg.Server.StreamSubscription.BlockingTimeoutMS = 200
			app, _ := startEngine(t, reactorDomain(t, cat), cfg, br)

			_, err = br.Publish(ctx, []lanewaybroker.Publication{
				{Stream: cat + ":backfill", Data: openedEntry(t, cat, "protean", laneway.Normal)}, // Protean-shaped: 0 on backfill
				{Stream: cat + ":backfill", Data: openedEntry(t, cat, "high", laneway.High)},      // above the threshold too
				{Stream: cat + ":backfill", Data: openedEntry(t, cat, "bulk", laneway.Bulk)},      // Laneway's own: exact
				{Stream: cat, Data: openedEntry(t, cat, "primary", laneway.Normal)},
			})
			require.NoError(t, err)
			require.Eventually(t, func() bool { return len(publishedRows(t, app, cat)) == 4 }, opsWait, 10*time.Millisecond)
			rows := publishedRows(t, app, cat)
			got := map[string][2]any{}
			for _, r := range rows {
				got[r.stream] = [2]any{r.priority, r.published}
			}
			lane := func(p int) string {
				if p < threshold {
					return cat + ":backfill"
				}
				return cat
			}
			below := threshold - 1
			protean := min(int(laneway.Normal), below) // already below the threshold: kept
			assert.Equal(t, [2]any{protean, lane(protean)}, got[cat+"-r-protean"], "Protean-shaped backfill entry")
			assert.Equal(t, [2]any{below, lane(below)}, got[cat+"-r-high"], "backfill entry above the threshold")
			assert.Equal(t, [2]any{int(laneway.Bulk), cat + ":backfill"}, got[cat+"-r-bulk"], "Laneway's own backfill entry")
			assert.Equal(t, [2]any{int(laneway.Normal), lane(int(laneway.Normal))}, got[cat+"-r-primary"], "primary entry")
			assert.Equal(t, cat+":backfill", got[cat+"-r-protean"][1], "follow-up of a backfill entry stays on backfill")
		})
	}
}

type outboxRowInfo struct {
	stream    string
	priority  int
	published string
}

// publishedRows lists the published outbox rows of category.
func publishedRows(t *testing.T, app *laneway.App, category string) []outboxRowInfo {
	var out []outboxRowInfo
	require.NoError(t, app.Store().InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		rs, err := tx.Query(ctx, "SELECT stream_name, priority, published_stream FROM outbox WHERE stream_category = $1 AND published_stream IS NOT NULL", category)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var r outboxRowInfo
			if err := rs.Scan(&r.stream, &r.priority, &r.published); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rs.Err()
	}))
	return out
}
