package laneway_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

// silentNotifier gives a store a cross-process notifier that never fires.
// The relay caps its idle poll at 25ms on stores without one (SQLite);
// with it, the configured hour-long tick holds, so a publish can only have
// been caused by the in-process signal.
type silentNotifier struct{ lanewaystore.Store }

func (silentNotifier) ListenOutbox(ctx context.Context, _ func()) (func(), error) {
	return func() {}, nil
}

func (s silentNotifier) LeasesOnInsert() bool {
	li, ok := s.Store.(lanewaystore.LeasingInserter)
	return ok && li.LeasesOnInsert()
}

// A commit wakes the relay at once, never after a poll: a production
// commit through App.Process hands its rows to the engine's relay in
// memory, and a backfill commit wakes the relay's backfill claim loop
// through the in-process signal.
func TestProcessWakesRelayInProcess(t *testing.T) {
	brokers := []struct {
		name string
		open func(t *testing.T) lanewaybroker.Broker
	}{
		{"embedded", func(t *testing.T) lanewaybroker.Broker {
			b, err := redisbroker.OpenEmbedded(context.Background(), redisbroker.EmbeddedOptions{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = b.Close() })
			return b
		}},
		{"redis", func(t *testing.T) lanewaybroker.Broker {
			b, err := redisbroker.Open(context.Background(), testsvc.RedisURL(t), redisbroker.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = b.Close() })
			return b
		}},
	}
	for _, bc := range brokers {
		for _, sc := range stores() {
			for _, lane := range []string{"production", "backfill"} {
				t.Run(bc.name+"/"+sc.name+"/"+lane, func(t *testing.T) {
					ctx := context.Background()
					cat := testsvc.Prefix() + "account"
					var handled atomic.Int64
					dom := engineDomain(t, cat, func(laneway.Meta) { handled.Add(1) })
					cfg := lanewayconfig.Default()
					cfg.Outbox.TickIntervalMS = int(time.Hour / time.Millisecond)
					cfg.Outbox.MaxTickIntervalMS = cfg.Outbox.TickIntervalMS
					// Lanes on: the relay has a production and a backfill claim
					// loop, and a production commit wakes only the first.
					cfg.Server.PriorityLanes.Enabled = true
					st := sc.open(t)
					if sc.name == "sqlite" {
						st = silentNotifier{st}
					}
					app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
					require.NoError(t, err)
					b := bc.open(t)
					t.Cleanup(func() {
						_, _ = b.TrimMinID(context.Background(), cat, "18446744073709551615-18446744073709551615")
					})
					eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: b, DisableHTTP: true})
					require.NoError(t, eng.Start(ctx))
					defer func() { require.NoError(t, eng.Stop(context.Background())) }()

					pctx := ctx
					if lane == "backfill" {
						pctx = laneway.WithPriority(ctx, laneway.Low)
					}
					// The hand-off turns on once a claim pass after the relay's
					// start found none of this process's production rows
					// waiting: until then a production row may be claimed.
					warm := 0
					for lane == "production" && eng.RelayStats().HandedOff == 0 {
						warm++
						require.Less(t, warm, 10, "the production hand-off never turned on")
						require.NoError(t, app.Process(pctx, OpenAccount{ID: fmt.Sprint("warm-", warm), Owner: "o"}))
						require.Eventually(t, func() bool { return eng.RelayStats().Published == int64(warm) }, 20*time.Second, time.Millisecond)
					}
					before := eng.RelayStats()
					const n = 3
					for i := 1; i <= n; i++ {
						require.NoError(t, app.Process(pctx, OpenAccount{ID: fmt.Sprint(i), Owner: "o"}))
						// Wait for each publish before the next commit, so each
						// needs a wake-up of its own.
						require.Eventually(t, func() bool { return eng.RelayStats().Published == int64(warm+i) }, 20*time.Second, time.Millisecond)
					}
					require.Eventually(t, func() bool { return handled.Load() == int64(warm+n) }, 20*time.Second, 5*time.Millisecond)

					stats := eng.RelayStats()
					w := stats.Wakeups
					assert.Zero(t, w.Poll, "no poll: the tick is an hour")
					if lane == "production" {
						assert.Equal(t, int64(n), stats.HandedOff-before.HandedOff, "every production row handed over in memory, none claimed")
						assert.Equal(t, before.Wakeups.Notify, w.Notify, "a handed-off commit does not send a claim loop to claim nothing")
						assert.Equal(t, before.Wakeups.Listen, w.Listen, "rows inserted leased notify no relay")
						return
					}
					assert.Zero(t, stats.HandedOff, "backfill rows are claimed")
					if sc.name == "sqlite" {
						assert.Zero(t, w.Listen)
						assert.Equal(t, int64(n), w.Notify, "the only possible cause: the in-process signal, to the backfill loop alone")
					} else {
						// PostgreSQL's LISTEN/NOTIFY may wake the relay too; the
						// in-process signal arrives regardless.
						assert.GreaterOrEqual(t, w.Notify, int64(1))
					}
				})
			}
		}
	}
}
