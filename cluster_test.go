package laneway_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// clusterPartitions is the partition count of the drained category.
const clusterPartitions = 8

// TestClusterPartitionedDrainTwoEngines drains a partitioned category on a
// real three-master Redis Cluster with two engines. Backfill and primary
// events are all in the streams before the engines start; then:
// every event is handled, each engine handles every primary entry it gets,
// of any partition, before its first backfill entry, every partition is
// served, and the entries sit on every master.
func TestClusterPartitionedDrainTwoEngines(t *testing.T) {
	ctx := context.Background()
	cl := testsvc.Cluster(t)
	b, err := redisbroker.Open(ctx, cl.URL(), redisbroker.Options{})
	require.NoError(t, err)
	defer b.Close()

	cfg := lanewayconfig.Default()
	cfg.Brokers[lanewayconfig.DefaultEntry] = lanewayconfig.Broker{Provider: lanewayconfig.BrokerProviderRedis, URL: cl.URL()}
	cfg.Server.PriorityLanes.Enabled = true
	cfg.Server.MessagesPerTick = 10
	cfg.Outbox.TickIntervalMS = 5

	// A category whose partitions' slots are served by every master (the
	// slots of eight names usually are; the test picks a name for which
	// they surely are, so it cannot depend on luck).
	var cat string
	for i := 0; cat == ""; i++ {
		require.Less(t, i, 100)
		c := testsvc.Prefix() + "account"
		cfg.Server.CategoryPartitions = map[string]int{c: clusterPartitions}
		lc, err := lanes.FromConfig(cfg, "Bank")
		require.NoError(t, err)
		masters := map[string]bool{}
		for _, s := range lc.Naming.EventPartitions(c) {
			m, err := b.MasterOf(ctx, s)
			require.NoError(t, err)
			masters[m] = true
		}
		if len(masters) == testsvc.ClusterMasters {
			cat = c
		}
	}
	lc, err := lanes.FromConfig(cfg, "Bank")
	require.NoError(t, err)
	streams := lc.Naming.EventPartitions(cat)
	require.Len(t, streams, clusterPartitions)
	require.Equal(t, "{"+cat+"}", streams[0])
	require.Equal(t, "{"+cat+".3}", streams[3])

	st := stores()[1].open(t) // PostgreSQL
	const backfill, primary = 400, 200
	// Load: a relay-only engine (its domain has no handler) publishes every
	// row, backfill first, then stops.
	loader, err := laneway.Open(ctx, relayOnlyDomain(t, cat), cfg, laneway.Options{Store: st})
	require.NoError(t, err)
	for i := range backfill + primary {
		p := laneway.Low
		if i >= backfill {
			p = laneway.Normal
		}
		require.NoError(t, loader.Process(ctx, OpenAccount{ID: fmt.Sprint(i), Owner: "o"}, laneway.AtPriority(p)))
	}
	le := laneway.NewEngine(loader, laneway.EngineOptions{Broker: b, DisableHTTP: true})
	require.NoError(t, le.Start(ctx))
	require.Eventually(t, func() bool { return le.RelayStats().Published == backfill+primary }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, le.Stop(ctx))

	// Where the entries are: per master, and every aggregate in its partition.
	perMaster := map[string]int64{}
	var inStreams int64
	for _, s := range streams {
		m, err := b.MasterOf(ctx, s)
		require.NoError(t, err)
		for _, lane := range []string{s, lc.Naming.Backfill(s)} {
			n, err := b.Len(ctx, lane)
			require.NoError(t, err)
			perMaster[m] += n
			inStreams += n
		}
	}
	require.Equal(t, int64(backfill+primary), inStreams)
	require.Len(t, perMaster, testsvc.ClusterMasters)
	for m, n := range perMaster {
		assert.Positive(t, n, "master %s holds no entry", m)
	}
	t.Logf("entries per master: %v", perMaster)

	// Drain with two engines.
	type rec struct {
		stream string
		lane   string
		id     string
	}
	var mu sync.Mutex
	handled := map[int][]rec{} // by engine
	engines := make([]*laneway.Engine, 2)
	for i := range engines {
		app, err := laneway.Open(ctx, engineDomain(t, cat, func(laneway.Meta) {}), cfg, laneway.Options{Store: st})
		require.NoError(t, err)
		engines[i] = laneway.NewEngine(app, laneway.EngineOptions{Broker: b, DisableHTTP: true,
			OnHandled: func(h laneway.Handled) {
				if h.Err != nil {
					return
				}
				mu.Lock()
				handled[i] = append(handled[i], rec{h.Stream, h.Lane, h.Meta.Stream})
				mu.Unlock()
			}})
	}
	var wg sync.WaitGroup
	for _, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, e.Start(ctx))
		}()
	}
	wg.Wait()
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled[0]) + len(handled[1])
	}
	require.Eventually(t, func() bool { return total() >= backfill+primary }, 120*time.Second, 10*time.Millisecond)
	for _, e := range engines {
		require.NoError(t, e.Stop(ctx))
	}

	mu.Lock()
	defer mu.Unlock()
	seen := map[string]int{}
	served := map[string]bool{}
	for eng, recs := range handled {
		assert.NotEmpty(t, recs, "engine %d handled nothing", eng)
		backfillStarted := map[string]bool{} // by primary stream
		anyBackfill := false                 // on this engine, in any partition
		for _, r := range recs {
			// Across partitions too (the engine's gate): once this engine
			// started backfill, every primary entry it could read was handled.
			if r.lane == string(lanes.Backfill) {
				anyBackfill = true
			} else {
				assert.False(t, anyBackfill, "engine %d handled primary %s of %s after backfill of another partition", eng, r.id, r.stream)
			}
			seen[r.id]++
			src, ok := lc.Naming.Classify([]string{cat}, r.stream)
			require.True(t, ok, r.stream)
			served[src.Primary] = true
			// Each aggregate's events travel through its own partition.
			assert.Equal(t, lc.Naming.PrimaryFor(cat, r.id), src.Primary, r.id)
			if r.lane == string(lanes.Backfill) {
				backfillStarted[src.Primary] = true
			} else if backfillStarted[src.Primary] {
				var seq []string
				for _, x := range recs {
					if x.stream == src.Primary || x.stream == lc.Naming.Backfill(src.Primary) {
						seq = append(seq, x.lane[:1]+x.id)
					}
				}
				t.Fatalf("engine %d handled a primary entry of %s after backfill: %v", eng, src.Primary, seq)
			}
		}
	}
	assert.Len(t, seen, backfill+primary, "every event handled")
	assert.Len(t, served, clusterPartitions, "every partition served")
	for _, s := range streams {
		for _, lane := range []string{s, lc.Naming.Backfill(s)} {
			g, err := b.Groups(ctx, lane)
			require.NoError(t, err)
			require.Len(t, g, 1, lane)
			assert.Zero(t, g[0].Pending, lane)
			assert.Zero(t, g[0].Lag, lane)
		}
	}
}

// relayOnlyDomain is engineDomain without its handler: its engine only
// relays.
func relayOnlyDomain(t *testing.T, category string) *laneway.Domain {
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{Category: category})
	laneway.RegisterEvent[Account, Opened](b)
	laneway.RegisterEvent[Account, Deposited](b)
	laneway.RegisterCommand[Account, OpenAccount](b, func(ctx context.Context, tx *laneway.Tx, c OpenAccount) error {
		a := laneway.New[Account](c.ID)
		a.Raise(Opened{Owner: c.Owner})
		return tx.Save(ctx, a)
	})
	d, err := b.Build()
	require.NoError(t, err)
	return d
}
