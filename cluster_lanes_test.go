package laneway_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/retention"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// TestClusterPrimaryFirstAcrossPartitions: one engine at concurrency 1 on
// a partitioned category of a real cluster, with backfill loaded in one
// partition and primary in another before it starts: every primary entry
// is handled before the first backfill entry starts, though each
// partition has its own consumer, and nothing is lost. A third partition
// stays empty (its consumer must not hold the others).
func TestClusterPrimaryFirstAcrossPartitions(t *testing.T) {
	for _, tc := range []struct {
		name           string
		bfPart, prPart int
	}{{"backfill0_primary1", 0, 1}, {"primary0_backfill1", 1, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cl := testsvc.Cluster(t)
			b, err := redisbroker.Open(ctx, cl.URL(), redisbroker.Options{})
			require.NoError(t, err)
			defer b.Close()

			const parts, nBackfill, nPrimary = 3, 120, 40
			cat := testsvc.Prefix() + "account"
			cfg := lanewayconfig.Default()
			cfg.Brokers[lanewayconfig.DefaultEntry] = lanewayconfig.Broker{Provider: lanewayconfig.BrokerProviderRedis, URL: cl.URL()}
			cfg.Server.PriorityLanes.Enabled = true
			cfg.Server.MessagesPerTick = 10 // primary takes several reads
			cfg.Server.StreamSubscription.Concurrency = 1
			cfg.Outbox.TickIntervalMS = 5
			cfg.Server.CategoryPartitions = map[string]int{cat: parts}
			lc, err := lanes.FromConfig(cfg, "Bank")
			require.NoError(t, err)

			// Aggregate ids by partition: backfill ids in one, primary in another.
			isPrimary := map[string]bool{}
			var bf, pr []string
			for i := 0; len(bf) < nBackfill || len(pr) < nPrimary; i++ {
				id := fmt.Sprint(i)
				switch p := lanes.PartitionOf(id, parts); {
				case p == tc.bfPart && len(bf) < nBackfill:
					bf = append(bf, id)
				case p == tc.prPart && len(pr) < nPrimary:
					pr = append(pr, id)
					isPrimary[cat+"-"+id] = true
				}
			}
			st := stores()[0].open(t) // SQLite
			loader, err := laneway.Open(ctx, relayOnlyDomain(t, cat), cfg, laneway.Options{Store: st})
			require.NoError(t, err)
			for _, id := range bf {
				require.NoError(t, loader.Process(ctx, OpenAccount{ID: id, Owner: "o"}, laneway.AtPriority(laneway.Low)))
			}
			for _, id := range pr {
				require.NoError(t, loader.Process(ctx, OpenAccount{ID: id, Owner: "o"}, laneway.AtPriority(laneway.Normal)))
			}
			le := laneway.NewEngine(loader, laneway.EngineOptions{Broker: b, DisableHTTP: true})
			require.NoError(t, le.Start(ctx))
			require.Eventually(t, func() bool { return le.RelayStats().Published == nBackfill+nPrimary }, 60*time.Second, 10*time.Millisecond)
			require.NoError(t, le.Stop(ctx))
			streams := lc.Naming.EventPartitions(cat)
			for p, s := range streams {
				np, err := b.Len(ctx, s)
				require.NoError(t, err)
				nb, err := b.Len(ctx, lc.Naming.Backfill(s))
				require.NoError(t, err)
				assert.Equal(t, map[bool]int64{true: nPrimary}[p == tc.prPart], np, s)
				assert.Equal(t, map[bool]int64{true: nBackfill}[p == tc.bfPart], nb, s)
			}

			// Handler starts, in order (the handler records them).
			var mu sync.Mutex
			var order []string
			app, err := laneway.Open(ctx, engineDomain(t, cat, func(m laneway.Meta) {
				mu.Lock()
				order = append(order, m.Stream)
				mu.Unlock()
			}), cfg, laneway.Options{Store: st})
			require.NoError(t, err)
			e := laneway.NewEngine(app, laneway.EngineOptions{Broker: b, DisableHTTP: true})
			require.NoError(t, e.Start(ctx))
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(order) >= nBackfill+nPrimary
			}, 60*time.Second, 10*time.Millisecond)
			require.NoError(t, e.Stop(ctx))

			mu.Lock()
			defer mu.Unlock()
			seen := map[string]int{}
			firstBackfill, lastPrimary := -1, -1
			for i, s := range order {
				seen[s]++
				if isPrimary[s] {
					lastPrimary = i
				} else if firstBackfill < 0 {
					firstBackfill = i
				}
			}
			assert.Len(t, seen, nBackfill+nPrimary, "every event handled")
			assert.Len(t, order, nBackfill+nPrimary, "each once")
			require.Less(t, lastPrimary, firstBackfill, "a backfill entry started before the last primary entry: %v", order[:min(len(order), nPrimary+5)])
			for _, s := range streams {
				for _, lane := range []string{s, lc.Naming.Backfill(s)} {
					g, err := b.Groups(ctx, lane)
					require.NoError(t, err)
					require.Len(t, g, 1, lane)
					assert.Zero(t, g[0].Pending, lane)
					assert.Zero(t, g[0].Lag, lane)
				}
			}
		})
	}
}

// TestClusterReclaimDLQRetention: on a real cluster, with a partitioned
// category, entries left pending by a consumer that went away are
// reclaimed by an engine, an entry its handler keeps failing on is moved
// to its lane's DLQ (in the lane's slot), and once handled the lanes are
// trimmed empty.
func TestClusterReclaimDLQRetention(t *testing.T) {
	ctx := context.Background()
	cl := testsvc.Cluster(t)
	b, err := redisbroker.Open(ctx, cl.URL(), redisbroker.Options{})
	require.NoError(t, err)
	defer b.Close()

	const parts, n = 2, 30
	cat := testsvc.Prefix() + "account"
	cfg := lanewayconfig.Default()
	cfg.Brokers[lanewayconfig.DefaultEntry] = lanewayconfig.Broker{Provider: lanewayconfig.BrokerProviderRedis, URL: cl.URL()}
	cfg.Server.PriorityLanes.Enabled = true
	cfg.Server.MessagesPerTick = 10
	cfg.Server.CategoryPartitions = map[string]int{cat: parts}
	sc := &cfg.Server.StreamSubscription
	sc.MaxRetries, sc.RetryDelaySeconds, sc.ClaimIdleSeconds, sc.EnableDLQ = 3, 0.05, 0.3, true
	cfg.Outbox.TickIntervalMS = 5
	lc, err := lanes.FromConfig(cfg, "Bank")
	require.NoError(t, err)

	st := stores()[0].open(t) // SQLite
	loader, err := laneway.Open(ctx, relayOnlyDomain(t, cat), cfg, laneway.Options{Store: st})
	require.NoError(t, err)
	ids := []string{"poison"}
	for i := range n {
		ids = append(ids, fmt.Sprint(i))
	}
	for i, id := range ids {
		p := laneway.Normal
		if i%2 == 1 {
			p = laneway.Low
		}
		require.NoError(t, loader.Process(ctx, OpenAccount{ID: id, Owner: "o"}, laneway.AtPriority(p)))
	}
	le := laneway.NewEngine(loader, laneway.EngineOptions{Broker: b, DisableHTTP: true})
	require.NoError(t, le.Start(ctx))
	require.Eventually(t, func() bool { return le.RelayStats().Published == int64(len(ids)) }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, le.Stop(ctx))

	var mu sync.Mutex
	handled := map[string]int{}
	dom := engineDomain(t, cat, func(m laneway.Meta) {
		mu.Lock()
		handled[m.Stream]++
		mu.Unlock()
	})
	groups, err := dom.ConsumerGroups(cfg)
	require.NoError(t, err)
	group := groups["AccountProjector"]
	require.NotEmpty(t, group)

	// A consumer that is gone: it read every entry, both lanes of a
	// partition in one read (one slot), and never acked.
	streams := lc.Naming.EventPartitions(cat)
	ghostRead := 0
	for _, s := range streams {
		for _, lane := range []string{s, lc.Naming.Backfill(s)} {
			require.NoError(t, b.EnsureGroup(ctx, lane, group))
		}
		res, err := b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: group, Consumer: "gone-consumer",
			Streams: []string{s, lc.Naming.Backfill(s)}, Count: 1000})
		require.NoError(t, err)
		for _, r := range res {
			ghostRead += len(r.Entries)
		}
	}
	require.Equal(t, len(ids), ghostRead)

	// The poison entry fails every attempt (the handler sees it, then fails).
	poisonStream := cat + "-poison"
	app, err := laneway.Open(ctx, failingDomain(t, cat, poisonStream, func(m laneway.Meta) {
		mu.Lock()
		handled[m.Stream]++
		mu.Unlock()
	}), cfg, laneway.Options{Store: st})
	require.NoError(t, err)
	e := laneway.NewEngine(app, laneway.EngineOptions{Broker: b, DisableHTTP: true})
	require.NoError(t, e.Start(ctx))
	poisonLane := lc.Naming.PrimaryFor(cat, poisonStream) // loaded at Normal: primary
	dlq := lc.Naming.DLQ(poisonLane)
	require.Eventually(t, func() bool {
		mu.Lock()
		good := 0
		for _, id := range ids[1:] {
			if handled[cat+"-"+id] > 0 {
				good++
			}
		}
		mu.Unlock()
		d, err := b.Len(ctx, dlq)
		return err == nil && good == n && d == 1
	}, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, e.Stop(ctx))

	mu.Lock()
	for _, id := range ids[1:] {
		assert.Equal(t, 1, handled[cat+"-"+id], id)
	}
	// The gone consumer's delivery was attempt 1: the handler ran attempts 2 and 3.
	assert.Equal(t, 2, handled[poisonStream], "attempts 2 and 3")
	mu.Unlock()
	mDLQ, err := b.MasterOf(ctx, dlq)
	require.NoError(t, err)
	mLane, err := b.MasterOf(ctx, poisonLane)
	require.NoError(t, err)
	assert.Equal(t, mLane, mDLQ, "a lane's DLQ is on its master")

	for _, s := range streams {
		for _, lane := range []string{s, lc.Naming.Backfill(s)} {
			g, err := b.Groups(ctx, lane)
			require.NoError(t, err)
			require.Len(t, g, 1, lane)
			assert.Zero(t, g[0].Pending, "%s: the gone consumer's entries were reclaimed and acked", lane)
			_, err = retention.Trim(ctx, b, lane)
			require.NoError(t, err)
			l, err := b.Len(ctx, lane)
			require.NoError(t, err)
			assert.Zero(t, l, "%s trimmed", lane)
		}
	}
}

// failingDomain is engineDomain whose handler fails on every event of
// aggregate stream poison (after recording it).
func failingDomain(t *testing.T, category, poison string, seen func(laneway.Meta)) *laneway.Domain {
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{Category: category})
	laneway.RegisterEvent[Account, Opened](b)
	laneway.RegisterEvent[Account, Deposited](b)
	h := laneway.NewHandler("AccountProjector")
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, e Opened, m laneway.Meta) error {
		seen(m)
		if m.Stream == poison {
			return errors.New("poisoned")
		}
		return nil
	})
	b.AddHandler(h)
	d, err := b.Build()
	require.NoError(t, err)
	return d
}
