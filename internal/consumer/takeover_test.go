package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/internal/tools/syncio"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
)

// readAs leaves n entries of stream pending on consumer name, as an engine
// that read them and then died would.
func readAs(t *testing.T, b lanewaybroker.Broker, stream, group, name string, n int) {
	t.Helper()
	require.NoError(t, b.EnsureGroup(context.Background(), stream, group))
	got := 0
	for got < n {
		res, err := b.ReadGroup(context.Background(), lanewaybroker.ReadParams{Group: group, Consumer: name, Streams: []string{stream}, Count: n - got})
		require.NoError(t, err)
		require.NotEmpty(t, res, "nothing left to read for %s", name)
		got += len(res[0].Entries)
	}
}

func consumerNames(t *testing.T, b lanewaybroker.Broker, stream, group string) map[string]int64 {
	t.Helper()
	cs, err := b.Consumers(context.Background(), stream, group)
	require.NoError(t, err)
	out := map[string]int64{}
	for _, c := range cs {
		out[c.Name] = c.Pending
	}
	return out
}

// A consumer whose engine is dead (Alive says so) loses all its entries to
// a survivor in one takeover, primary lane first, long before ClaimIdle;
// the dead consumer is then deleted. A live engine's consumer keeps its
// entries however idle they are.
func TestTakeoverOfDeadEngine(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat, bf := p+"customer", p+"customer:backfill"
		nDead, nLive, nBackfill := 2500, 300, 400
		if strings.HasSuffix(t.Name(), "embedded") {
			nDead, nLive, nBackfill = 600, 100, 100 // the embedded server's XPENDING and XCLAIM are slow on long lists
		}
		var datas []string
		for i := range nDead + nLive {
			datas = append(datas, encode(t, fmt.Sprintf("p%d", i), fmt.Sprintf("k%d", i), i))
		}
		publish(t, k.b, cat, datas...)
		datas = datas[:0]
		for i := range nBackfill {
			datas = append(datas, encode(t, fmt.Sprintf("b%d", i), fmt.Sprintf("k%d", i), i))
		}
		publish(t, k.b, bf, datas...)
		dead, live := "Projector-host-1-dead01", "Projector-host-2-live01"
		readAs(t, k.b, cat, "Projector", dead, nDead)
		readAs(t, k.b, cat, "Projector", live, nLive)
		readAs(t, k.b, bf, "Projector", dead, nBackfill)

		var rec recorder
		var lb syncio.Buffer
		c := startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Consumer: "Projector-host-3-me0001", Primary: cat, Backfill: bf,
			Concurrency: 8, BackfillConcurrency: 2, ClaimIdle: time.Hour,
			Logger: slog.New(slog.NewTextHandler(&lb, &slog.HandlerOptions{Level: slog.LevelInfo})),
			Alive: func(context.Context) (func(string) bool, error) {
				return func(name string) bool { return strings.HasSuffix(name, "-live01") }, nil
			},
			Handle: func(_ context.Context, m *consumer.Message) error {
				rec.add(m)
				return nil
			},
		})
		require.Eventually(t, func() bool { return rec.len() == nDead+nBackfill }, waitFor, 10*time.Millisecond, "handled %d\n%s", rec.len(), lb.String())
		assert.Equal(t, int64(nDead+nBackfill), c.TakenOver())
		// Primary first: every taken-over primary entry started before the
		// last backfill one.
		order := rec.snapshot()
		lastB := 0
		for i, id := range order {
			if strings.HasPrefix(id, "b") {
				lastB = i
			}
		}
		assert.Greater(t, lastB, nDead/2, "backfill finished before most primary entries")
		// All of the dead consumer's primary entries in one takeover.
		assert.Contains(t, lb.String(), fmt.Sprintf("n=%d", nDead), "the primary backlog was not taken in one tick:\n%s", lb.String())
		for i := range nLive {
			require.Equal(t, -1, rec.index(fmt.Sprintf("p%d", nDead+i)), "a live engine's entry was taken")
		}
		require.Eventually(t, func() bool {
			_, there := consumerNames(t, k.b, cat, "Projector")[dead]
			_, thereB := consumerNames(t, k.b, bf, "Projector")[dead]
			return !there && !thereB
		}, waitFor, 50*time.Millisecond, "the dead consumer was not deleted")
		assert.Equal(t, int64(nLive), consumerNames(t, k.b, cat, "Projector")[live], "the live consumer lost entries")
	})
}

// otherHoldsTwoAndReadsFail leaves two entries of a new category pending
// on another consumer and returns the category and a broker whose reads
// fail (an outage) until healed.
func otherHoldsTwoAndReadsFail(t *testing.T, k brokerKit) (string, *brokertest.Faulty) {
	t.Helper()
	cat := testsvc.Prefix() + "customer"
	publish(t, k.b, cat, encode(t, "p1", "k1", 1), encode(t, "p2", "k2", 2))
	readAs(t, k.b, cat, "Projector", "Projector-host-1-other1", 2)
	f := brokertest.NewFaulty(k.b)
	f.FailReadGroup(errors.New("dial tcp: connection refused"))
	return cat, f
}

// Right after a broker outage heartbeats may have expired without their
// engines being dead: no takeover until the broker has answered this
// consumer again and TakeoverGrace has passed.
func TestNoTakeoverRightAfterAnOutage(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		cat, f := otherHoldsTwoAndReadsFail(t, k)
		var rec recorder
		c := startConsumer(t, f, consumer.Config{
			Group: "Projector", Consumer: "Projector-host-3-me0001", Primary: cat, ClaimIdle: time.Hour,
			Block: 50 * time.Millisecond, TakeoverGrace: 3 * time.Second,
			Alive: func(context.Context) (func(string) bool, error) {
				return func(name string) bool { return strings.HasSuffix(name, "-me0001") }, nil
			},
			Handle: func(_ context.Context, m *consumer.Message) error { rec.add(m); return nil },
		})
		require.Eventually(t, func() bool { return f.Injected() >= 3 }, waitFor, time.Millisecond)
		time.Sleep(2 * time.Second) // the other consumer's entries are idle past takeoverMinIdle
		healed := time.Now()
		f.Heal()
		require.Eventually(t, func() bool { return c.TakenOver() == 2 }, waitFor, 10*time.Millisecond)
		assert.GreaterOrEqual(t, time.Since(healed), 3*time.Second, "taken over before the grace after the outage")
		require.Eventually(t, func() bool { return rec.len() == 2 }, waitFor, time.Millisecond)
	})
}

// After a broker outage the ClaimIdle reclaim waits ReclaimGrace, longer
// than the takeover's grace: a live consumer's entries looked idle during
// the outage, and their owner touches them only once its own backoff and
// a read that may have to time out first let it back.
func TestNoReclaimRightAfterAnOutage(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		cat, f := otherHoldsTwoAndReadsFail(t, k)
		var rec recorder
		c := startConsumer(t, f, consumer.Config{
			Group: "Projector", Consumer: "Projector-host-3-me0001", Primary: cat, ClaimIdle: time.Second,
			Block: 50 * time.Millisecond, TakeoverGrace: 100 * time.Millisecond, ReclaimGrace: 3 * time.Second,
			Alive: func(context.Context) (func(string) bool, error) {
				return func(string) bool { return true }, nil // the other consumer's engine is alive
			},
			Handle: func(_ context.Context, m *consumer.Message) error { rec.add(m); return nil },
		})
		require.Eventually(t, func() bool { return f.Injected() >= 3 }, waitFor, time.Millisecond)
		time.Sleep(2 * time.Second) // the other consumer's entries are idle past ClaimIdle
		healed := time.Now()
		f.Heal()
		require.Eventually(t, func() bool { return rec.len() == 2 }, waitFor, time.Millisecond, "reclaimed once idle")
		assert.GreaterOrEqual(t, time.Since(healed), 3*time.Second, "reclaimed before the grace after the outage")
		assert.Zero(t, c.TakenOver(), "a live engine's entries are reclaimed, not taken over")
	})
}

// A consumer just started takes nothing over for StartGrace, neither a
// dead-looking engine's entries nor idle ones: their owner may be a live
// engine back from an outage that ended a moment before, still renewing
// its heartbeat and touching what it holds.
func TestNothingTakenRightAfterStart(t *testing.T) {
	t.Parallel()
	for _, way := range []string{"takeover", "reclaim"} {
		t.Run(way, func(t *testing.T) {
			t.Parallel()
			eachBroker(t, func(t *testing.T, k brokerKit) {
				cat := testsvc.Prefix() + "customer"
				publish(t, k.b, cat, encode(t, "p1", "k1", 1), encode(t, "p2", "k2", 2))
				readAs(t, k.b, cat, "Projector", "Projector-host-1-other1", 2)
				time.Sleep(2 * time.Second) // idle past takeoverMinIdle and ClaimIdle
				var rec recorder
				cfg := consumer.Config{
					Group: "Projector", Consumer: "Projector-host-3-me0001", Primary: cat, ClaimIdle: time.Hour,
					Block: 50 * time.Millisecond, StartGrace: 3 * time.Second,
					Handle: func(_ context.Context, m *consumer.Message) error { rec.add(m); return nil },
				}
				if way == "takeover" {
					cfg.Alive = func(context.Context) (func(string) bool, error) {
						return func(name string) bool { return strings.HasSuffix(name, "-me0001") }, nil
					}
				} else {
					cfg.ClaimIdle = time.Second
				}
				started := time.Now()
				startConsumer(t, k.b, cfg)
				require.Eventually(t, func() bool { return rec.len() == 2 }, waitFor, time.Millisecond)
				assert.GreaterOrEqual(t, time.Since(started), 3*time.Second, "taken before the grace after the start")
			})
		})
	}
}

// A dead consumer's backfill entries are shared: on first sight a survivor
// takes what brings its backlog to the average of the live consumers'
// (here half of the 300 between it, holding nothing, and a live peer
// holding 100 that does not take its part), and the rest only once the
// peer has had its chance. Its primary entries are taken all at once.
func TestTakeoverSharesBackfill(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, k brokerKit) {
		p := testsvc.Prefix()
		cat, bf := p+"customer", p+"customer:backfill"
		var datas []string
		for i := range 300 {
			datas = append(datas, encode(t, fmt.Sprintf("b%d", i), fmt.Sprintf("k%d", i), i))
		}
		publish(t, k.b, bf, datas...)
		datas = datas[:0]
		for i := range 50 {
			datas = append(datas, encode(t, fmt.Sprintf("p%d", i), fmt.Sprintf("k%d", i), i))
		}
		publish(t, k.b, cat, datas...)
		dead, live := "Projector-host-1-dead01", "Projector-host-2-live01"
		readAs(t, k.b, bf, "Projector", dead, 200)
		readAs(t, k.b, bf, "Projector", live, 100)
		readAs(t, k.b, cat, "Projector", dead, 50)

		var rec recorder
		var lb syncio.Buffer
		c := startConsumer(t, k.b, consumer.Config{
			Group: "Projector", Consumer: "Projector-host-3-me0001", Primary: cat, Backfill: bf,
			Concurrency: 4, BackfillConcurrency: 2, ClaimIdle: time.Hour,
			Logger: slog.New(slog.NewTextHandler(&lb, &slog.HandlerOptions{Level: slog.LevelInfo})),
			Alive: func(context.Context) (func(string) bool, error) {
				return func(name string) bool { return strings.HasSuffix(name, "-live01") }, nil
			},
			Handle: func(_ context.Context, m *consumer.Message) error {
				rec.add(m)
				return nil
			},
		})
		require.Eventually(t, func() bool { return rec.len() == 250 }, waitFor, 10*time.Millisecond, "handled %d\n%s", rec.len(), lb.String())
		assert.Equal(t, int64(250), c.TakenOver())
		var taken []string
		for _, line := range strings.Split(lb.String(), "\n") {
			if _, rest, ok := strings.Cut(line, "stream="); ok && strings.Contains(line, "took over") {
				taken = append(taken, "stream="+rest)
			}
		}
		require.Len(t, taken, 3, "%s", lb.String())
		assert.True(t, strings.HasPrefix(taken[0], "stream="+cat) && strings.HasSuffix(taken[0], "n=50"), "primary first, all of it: %s", taken[0])
		assert.True(t, strings.HasPrefix(taken[1], "stream="+bf) && strings.HasSuffix(taken[1], "n=150"), "backfill: the share first: %s", taken[1])
		assert.True(t, strings.HasPrefix(taken[2], "stream="+bf) && strings.HasSuffix(taken[2], "n=50"), "backfill: then the rest: %s", taken[2])
		assert.Equal(t, int64(100), consumerNames(t, k.b, bf, "Projector")[live], "the live consumer lost entries")
	})
}
