package laneway_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
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
					// waiting: until then a production row may be claimed. A
					// pass turns it on only if no production commit of this
					// process began while it ran, and the pass woken by a
					// warm-up's commit may still be running when that
					// warm-up's row is seen published (a pass woken earlier,
					// by PostgreSQL's notification, published it): so the
					// next warm-up waits a little longer each time, for that
					// pass to end.
					warm := 0
					for lane == "production" && eng.RelayStats().HandedOff == 0 {
						if warm > 0 {
							time.Sleep(time.Duration(warm) * 20 * time.Millisecond)
						}
						warm++
						require.Less(t, warm, 20, "the production hand-off never turned on")
						require.NoError(t, app.Process(pctx, OpenAccount{ID: fmt.Sprint("warm-", warm), Owner: "o"}))
						require.Eventually(t, func() bool { return eng.RelayStats().Published == int64(warm) }, 20*time.Second, time.Millisecond)
					}
					// PostgreSQL delivers the warm-up's NOTIFYs to the relay's
					// listener when its own connection reads them, possibly after
					// the warm-up rows were published on the in-process signal;
					// so whether the rows below notify is read from a listener
					// of the test's own, which hears only what commits after it.
					var notifications func() []string
					if lane == "production" && sc.name == "postgres" {
						notifications = outboxNotifications(t)
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
						// A warm-up commit's signal may still be pending when before
						// is read (the pass that published its row began before the
						// signal was taken); a channel of one holds at most one. A
						// signal per handed-off commit would add n.
						assert.LessOrEqual(t, w.Notify-before.Wakeups.Notify, int64(1), "a handed-off commit does not send a claim loop to claim nothing")
						if notifications != nil {
							assert.NotContains(t, notifications(), storeSchema(t, app), "rows inserted leased notify no relay")
						}
						return
					}
					assert.Zero(t, stats.HandedOff, "backfill rows are claimed")
					if sc.name == "sqlite" {
						assert.Zero(t, w.Listen)
						// Every publish came from the in-process signal. Each commit
						// signals the backfill loop once; a signal that arrives
						// while one is pending joins it (the relay's first pass, or
						// a pass under way, may claim that commit's row), so n
						// commits wake it at most n times. Signals to the
						// production loop too would add n of their own.
						assert.GreaterOrEqual(t, w.Notify, int64(1))
						assert.LessOrEqual(t, w.Notify, int64(n), "the in-process signal goes to the backfill loop alone")
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

// outboxNotifications listens on the outbox channel from now on. The
// function it returns sends a marker on the channel and returns the
// payloads that arrived before it, in order: a session receives
// notifications in the order their transactions committed, so a NOTIFY
// committed before the marker cannot arrive after it.
func outboxNotifications(t *testing.T) func() []string {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testsvc.PostgresURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	_, err = conn.Exec(ctx, "LISTEN "+pgstore.NotifyChannel)
	require.NoError(t, err)
	return func() []string {
		marker := "marker-" + testsvc.RandomSuffix(6)
		_, err := conn.Exec(ctx, "SELECT pg_notify($1, $2)", pgstore.NotifyChannel, marker)
		require.NoError(t, err)
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var got []string
		for {
			n, err := conn.WaitForNotification(wctx)
			require.NoError(t, err, "the marker notification did not arrive")
			if n.Payload == marker {
				return got
			}
			got = append(got, n.Payload)
		}
	}
}

// storeSchema is the schema of app's PostgreSQL store: the payload of its
// outbox NOTIFYs.
func storeSchema(t *testing.T, app *laneway.App) string {
	var schema string
	err := app.Store().InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.QueryRow(ctx, "SELECT current_schema()").Scan(&schema)
	})
	require.NoError(t, err)
	require.NotEmpty(t, schema)
	return schema
}
