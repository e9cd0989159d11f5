package outbox_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewaystore"
)

// gateBroker holds every publish that carries an entry it holds (by
// default a backfill entry) until open is closed: a batch stuck on its way
// to the broker.
type gateBroker struct {
	lanewaybroker.Broker
	holds   func(lanewaybroker.Publication) bool
	entered chan struct{} // closed when the first publish is held
	open    chan struct{}
	once    sync.Once
}

func newGate(b lanewaybroker.Broker) *gateBroker {
	return newGateOn(b, func(p lanewaybroker.Publication) bool { return strings.HasSuffix(p.Stream, ":backfill") })
}

func newGateOn(b lanewaybroker.Broker, holds func(lanewaybroker.Publication) bool) *gateBroker {
	return &gateBroker{Broker: b, holds: holds, entered: make(chan struct{}), open: make(chan struct{})}
}

func (g *gateBroker) Publish(ctx context.Context, pubs []lanewaybroker.Publication) ([]string, error) {
	for _, p := range pubs {
		if g.holds(p) {
			g.once.Do(func() { close(g.entered) })
			select {
			case <-g.open:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			break
		}
	}
	return g.Broker.Publish(ctx, pubs)
}

// release opens the gate once; tests defer it so a failing test does not
// leave the relay's Stop waiting on a held publish.
func (g *gateBroker) release() {
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *gateBroker) waitHeld(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no held batch reached the broker")
	}
}

func lanesOn() lanes.Config { return lanes.Config{Enabled: true} }

// A production row never waits for a backfill batch: while a backfill batch
// is held in its publish, a production row committed meanwhile is claimed,
// published to the primary stream and marked. Once the gate opens, the
// backfill rows follow in FIFO order. A relay with one claim loop fails this:
// the production row would wait behind the held batch.
func TestProductionPassesStuckBackfillBatch(t *testing.T) {
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			s := sc.open(t)
			b := openRedis(t)
			cat := testsvc.Prefix() + "customer"
			dropStream(t, b, cat)
			dropStream(t, b, cat+":backfill")
			var back []lanewaystore.OutboxRow
			var backIDs []string
			for range 20 {
				row, _ := newRow(t, cat, -50, "low")
				back = append(back, row)
				backIDs = append(backIDs, row.MessageID)
			}
			insert(t, s, back...)

			g := newGate(b)
			r := outbox.New(s, g, outbox.Config{BatchSize: 5, Lanes: lanesOn()})
			require.NoError(t, r.Start(ctx))
			defer stop(t, r)
			defer g.release()
			g.waitHeld(t)

			prod, _ := newRow(t, cat, 0, "prod")
			insert(t, s, prod)
			r.Notify()
			require.Eventually(t, func() bool {
				return listAll(t, s)[prod.MessageID].Status == lanewaystore.StatusPublished
			}, 30*time.Second, 5*time.Millisecond, "the production row is published while the backfill batch is held")
			assert.Equal(t, cat, publishedStream(t, s, prod.MessageID))
			got := decodeStream(t, b, cat)
			require.Len(t, got, 1)
			assert.Equal(t, prod.MessageID, got[0].Metadata.Headers.ID)
			assert.Empty(t, decodeStream(t, b, cat+":backfill"), "the backfill batch is still held")
			rows := listAll(t, s)
			for _, id := range backIDs {
				assert.NotEqual(t, lanewaystore.StatusPublished, rows[id].Status)
			}

			g.release()
			require.Eventually(t, func() bool { return r.Stats().Published == 21 }, 30*time.Second, 5*time.Millisecond)
			var order []string
			for _, e := range decodeStream(t, b, cat+":backfill") {
				order = append(order, e.Metadata.Headers.ID)
			}
			assert.Equal(t, backIDs, order, "FIFO within the backfill lane")
		})
	}
}

// claimLog records the limits of the backfill claims (priority range below
// the threshold), in the order they were made.
type claimLog struct {
	lanewaystore.Store
	mu     sync.Mutex
	limits []int
	nows   []time.Time // the relay's clock at each claim
}

func (c *claimLog) ClaimOutbox(ctx context.Context, p lanewaystore.ClaimParams) ([]lanewaystore.OutboxRow, error) {
	if p.Priorities != nil && p.Priorities.Max < 0 {
		c.mu.Lock()
		c.limits = append(c.limits, p.Limit)
		c.nows = append(c.nows, p.Now)
		c.mu.Unlock()
	}
	return c.Store.ClaimOutbox(ctx, p)
}

func (c *claimLog) snapshot() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.limits...)
}

// since returns the limits of the claims made at or after the relay's
// clock read from.
func (c *claimLog) since(from time.Time) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, now := range c.nows {
		if !now.Before(from) {
			out = append(out, c.limits[i])
		}
	}
	return out
}

// relayBehindProduction commits backlog LOW rows of a fresh category,
// starts a relay with cfg and lanes on, holds its first backfill publish
// until a production row committed meanwhile is published, and returns once
// every row is published: the backfill claims made after the first two were
// sized while production rows were being relayed. It returns the store's
// claim log, the relay (stopped when the test ends) and a function that
// commits n more LOW rows.
func relayBehindProduction(t *testing.T, sc storeCase, backlog int, cfg outbox.Config) (*claimLog, *outbox.Relay, func(n int)) {
	t.Helper()
	log := &claimLog{Store: sc.open(t)}
	b := openRedis(t)
	cat := testsvc.Prefix() + "customer"
	dropStream(t, b, cat)
	dropStream(t, b, cat+":backfill")
	lows := func(n int) {
		rows := make([]lanewaystore.OutboxRow, n)
		for i := range rows {
			rows[i], _ = newRow(t, cat, -50, "low")
		}
		insert(t, log, rows...)
	}
	lows(backlog)

	g := newGate(b)
	cfg.Lanes = lanesOn()
	r := outbox.New(log, g, cfg)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() { stop(t, r) })
	t.Cleanup(g.release) // before the stop: a held publish would block it
	g.waitHeld(t)

	prod, _ := newRow(t, cat, 0, "prod")
	insert(t, log, prod)
	r.Notify()
	require.Eventually(t, func() bool { return r.Stats().Published == 1 }, 30*time.Second, 5*time.Millisecond)
	g.release()
	require.Eventually(t, func() bool { return r.Stats().Published == int64(backlog)+1 }, 30*time.Second, 5*time.Millisecond)
	return log, r, lows
}

// While production rows are being relayed the backfill worker claims at
// most BackfillBatchSize rows (short write transactions, short broker
// pipelines); once the production worker has claimed nothing for a while it
// claims full batches again. The clock stands still, so "a while" passes
// only when the test advances it.
func TestBackfillBatchesShrinkWhileProductionRelays(t *testing.T) {
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			clk := newClock()
			log, r, lows := relayBehindProduction(t, sc, 100, outbox.Config{BatchSize: 10, BackfillBatchSize: 3, Now: clk.Now, Lease: time.Minute})

			// The first claim and the one made while it was published were
			// sized before the production row arrived; every later one after.
			limits := log.snapshot()
			require.Greater(t, len(limits), 2)
			assert.Equal(t, []int{10, 10}, limits[:2])
			for i, l := range limits[2:] {
				assert.Equal(t, 3, l, "claim %d, made while production rows were being relayed", i+2)
			}

			// Production quiet for longer than the window: full batches.
			// (A claim sized before the clock moved, the backfill worker's
			// last one, may still run after this point: only the claims made
			// on the moved clock count.) The clock moves by less than the
			// lease: that last claim read the clock before it moved and may
			// lease some of the new rows; had the move outrun their lease, a
			// claim on the moved clock would have leased them again and they
			// would have been published twice.
			clk.Advance(2 * time.Second)
			quietFrom := clk.Now()
			lows(25)
			r.Notify()
			require.Eventually(t, func() bool { return r.Stats().Published == 126 }, 30*time.Second, 5*time.Millisecond)
			after := log.since(quietFrom)
			require.NotEmpty(t, after)
			for i, l := range after {
				assert.Equal(t, 10, l, "claim %d on the moved clock, production quiet", i)
			}
		})
	}
}

// Unset, the backfill cap is BackfillBatchSizeDefault on both stores: the
// claims made while production rows are being relayed take at most that
// many rows. The clock stands still: on the wall clock a slow machine
// could take longer than productionActive over the backlog, and the last
// claims would rightly be full again.
func TestBackfillBatchDefault(t *testing.T) {
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			clk := newClock()
			log, _, _ := relayBehindProduction(t, sc, 400, outbox.Config{BatchSize: 100, Now: clk.Now, Lease: time.Minute})
			limits := log.snapshot()
			require.Greater(t, len(limits), 2)
			assert.Equal(t, []int{100, 100}, limits[:2], "sized before the production row")
			for i, l := range limits[2:] {
				assert.Equal(t, outbox.BackfillBatchSizeDefault, l, "claim %d, made while production rows were being relayed", i+2)
			}
		})
	}
}

// While production is quiet the backfill worker claims at most
// BackfillQuietBatchSize rows, not a full batch: on SQLite the first
// production commit after a quiet spell waits for the backfill transaction
// in flight, so none may be long. The quiet cap defaults to 100, yields to
// a smaller BatchSize and is never below BackfillBatchSize.
func TestBackfillQuietBatches(t *testing.T) {
	cases := []struct {
		name string
		cfg  outbox.Config
		want int
	}{
		{"default", outbox.Config{}, outbox.BackfillQuietBatchSizeDefault},
		{"set", outbox.Config{BatchSize: 20, BackfillBatchSize: 3, BackfillQuietBatchSize: 7}, 7},
		{"batch size below it", outbox.Config{BatchSize: 5, BackfillQuietBatchSize: 7}, 5},
		{"raised to the busy cap", outbox.Config{BatchSize: 20, BackfillBatchSize: 9, BackfillQuietBatchSize: 4}, 9},
	}
	for _, sc := range storeCases() {
		for _, tc := range cases {
			t.Run(sc.name+"/"+tc.name, func(t *testing.T) {
				log := &claimLog{Store: sc.open(t)}
				b := openRedis(t)
				cat := testsvc.Prefix() + "customer"
				dropStream(t, b, cat)
				dropStream(t, b, cat+":backfill")
				backlog := 2*tc.want + tc.want/2
				var ids []string
				rows := make([]lanewaystore.OutboxRow, backlog)
				for i := range rows {
					rows[i], _ = newRow(t, cat, -50, "low")
					ids = append(ids, rows[i].MessageID)
				}
				insert(t, log, rows...)

				cfg := tc.cfg
				cfg.Lanes = lanesOn()
				r := outbox.New(log, b, cfg)
				require.NoError(t, r.Start(context.Background()))
				t.Cleanup(func() { stop(t, r) })
				require.Eventually(t, func() bool { return r.Stats().Published == int64(backlog) }, 30*time.Second, 5*time.Millisecond)

				limits := log.snapshot()
				require.GreaterOrEqual(t, len(limits), 3, "three claims at least: two full, one short (%v)", limits)
				for i, l := range limits {
					assert.Equal(t, tc.want, l, "claim %d, production quiet", i)
				}
				var order []string
				for _, e := range decodeStream(t, b, cat+":backfill") {
					order = append(order, e.Metadata.Headers.ID)
				}
				assert.Equal(t, ids, order, "every row once, FIFO")
			})
		}
	}
}

// With lanes on, an unreachable broker pauses both workers: every row keeps
// its attempts and stays pending, claims stop (one publish at most per
// worker), and after the broker answers again both lanes are published,
// each in FIFO order.
func TestUnreachableBrokerPausesBothLanes(t *testing.T) {
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			s := sc.open(t)
			b := openRedis(t)
			cat := testsvc.Prefix() + "customer"
			dropStream(t, b, cat)
			dropStream(t, b, cat+":backfill")
			f := brokertest.NewFaulty(b)
			top := &countingBroker{Broker: f}
			down := errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
			f.FailPublish(down)
			f.FailPing(down)
			h := &countHandler{}
			r := outbox.New(s, top, outbox.Config{Logger: slog.New(h), Lanes: lanesOn(), BatchSize: 2,
				Retry: outbox.Retry{MaxAttempts: 1, BaseDelay: time.Millisecond}, TickInterval: time.Millisecond, MaxTickInterval: time.Millisecond})
			var prodIDs, backIDs []string
			for i := range 6 {
				prio := 0
				if i%2 == 1 {
					prio = -50
				}
				row, _ := newRow(t, cat, prio, "x")
				insert(t, s, row)
				if prio == 0 {
					prodIDs = append(prodIDs, row.MessageID)
				} else {
					backIDs = append(backIDs, row.MessageID)
				}
			}
			require.NoError(t, r.Start(ctx))
			defer stop(t, r)
			require.Eventually(t, r.BrokerUnreachable, 30*time.Second, time.Millisecond)
			pings := f.Injected()
			require.Eventually(t, func() bool { r.Notify(); return f.Injected() >= pings+10 }, 30*time.Second, time.Millisecond)
			assert.LessOrEqual(t, top.calls.Load(), int64(2), "one publish per worker found the broker down")
			for _, row := range listAll(t, s) {
				assert.Equal(t, lanewaystore.StatusPending, row.Status, "MaxAttempts 1 would have abandoned it")
				assert.Zero(t, row.RetryCount)
			}
			assert.Zero(t, r.Stats().Abandoned+r.Stats().Failed)

			f.Heal()
			require.Eventually(t, func() bool { return r.Stats().Published == 6 }, 30*time.Second, time.Millisecond)
			assert.False(t, r.BrokerUnreachable())
			ids := func(stream string) []string {
				var out []string
				for _, e := range decodeStream(t, b, stream) {
					out = append(out, e.Metadata.Headers.ID)
				}
				return out
			}
			assert.Equal(t, prodIDs, ids(cat))
			assert.Equal(t, backIDs, ids(cat+":backfill"))
			assert.Equal(t, 1, h.count(slog.LevelWarn), "one WARN for the outage")
			require.Eventually(t, func() bool { return h.count(slog.LevelInfo) == 1 }, 30*time.Second, time.Millisecond, "one INFO for its end")
			assert.Zero(t, h.count(slog.LevelError))
		})
	}
}

// With lanes on each lane keeps the claim order of its rows: priority DESC,
// then FIFO, over several batches of each worker.
func TestLanesKeepOrderWithinEachLane(t *testing.T) {
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			s := sc.open(t)
			b := openRedis(t)
			cat := testsvc.Prefix() + "customer"
			dropStream(t, b, cat)
			dropStream(t, b, cat+":backfill")
			seq := []struct {
				prio int
				tag  string
			}{{-50, "L0"}, {0, "N0"}, {50, "H0"}, {-100, "B0"}, {-50, "L1"}, {0, "N1"}, {-50, "L2"}, {50, "H1"}, {0, "N2"}, {-50, "L3"}, {-100, "B1"}}
			for _, x := range seq {
				row, _ := newRow(t, cat, x.prio, x.tag)
				insert(t, s, row)
			}
			r := outbox.New(s, b, outbox.Config{BatchSize: 2, Lanes: lanesOn()})
			require.NoError(t, r.Start(ctx))
			defer stop(t, r)
			require.Eventually(t, func() bool { return r.Stats().Published == int64(len(seq)) }, 30*time.Second, 5*time.Millisecond)
			tags := func(stream string) []string {
				var out []string
				for _, e := range decodeStream(t, b, stream) {
					var p struct{ Tag string }
					require.NoError(t, jsonUnmarshal(e.Data, &p))
					out = append(out, p.Tag)
				}
				return out
			}
			assert.Equal(t, []string{"H0", "H1", "N0", "N1", "N2"}, tags(cat))
			assert.Equal(t, []string{"L0", "L1", "L2", "L3", "B0", "B1"}, tags(cat+":backfill"))
		})
	}
}
