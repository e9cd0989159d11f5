package laneway_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

// engineDomain registers a projector on a unique category so tests can share
// one Redis.
func engineDomain(t *testing.T, category string, seen func(laneway.Meta)) *laneway.Domain {
	return accountDomain(t, category, func(_ context.Context, tx *laneway.Tx, m laneway.Meta) {
		if tx.Priority() != m.Priority {
			t.Errorf("handler ran at %v, message priority %v", tx.Priority(), m.Priority)
		}
		seen(m)
	})
}

// accountDomain: OpenAccount raises Opened, and handler AccountProjector
// passes every Opened event's context, Tx and Meta to seen.
func accountDomain(t *testing.T, category string, seen func(context.Context, *laneway.Tx, laneway.Meta)) *laneway.Domain {
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{Category: category})
	laneway.RegisterEvent[Account, Opened](b)
	laneway.RegisterEvent[Account, Deposited](b)
	laneway.RegisterCommand[Account, OpenAccount](b, func(ctx context.Context, tx *laneway.Tx, c OpenAccount) error {
		a := laneway.New[Account](c.ID)
		a.Raise(Opened{Owner: c.Owner})
		return tx.Save(ctx, a)
	})
	h := laneway.NewHandler("AccountProjector")
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, _ Opened, m laneway.Meta) error {
		seen(ctx, tx, m)
		return nil
	})
	b.AddHandler(h)
	d, err := b.Build()
	require.NoError(t, err)
	return d
}

// testBrokers opens the embedded broker and real Redis, by name.
func testBrokers() map[string]func(t *testing.T) lanewaybroker.Broker {
	return map[string]func(t *testing.T) lanewaybroker.Broker{
		"embedded": func(t *testing.T) lanewaybroker.Broker {
			b, err := redisbroker.OpenEmbedded(context.Background(), redisbroker.EmbeddedOptions{})
			require.NoError(t, err)
			return b
		},
		"redis": func(t *testing.T) lanewaybroker.Broker {
			b, err := redisbroker.Open(context.Background(), testsvc.RedisURL(t), redisbroker.Options{})
			require.NoError(t, err)
			return b
		},
	}
}

func TestEngineEndToEnd(t *testing.T) {
	for bname, openBroker := range testBrokers() {
		for _, sc := range stores() {
			t.Run(bname+"/"+sc.name, func(t *testing.T) {
				ctx := context.Background()
				cat := testsvc.Prefix() + "account"
				var mu sync.Mutex
				var got []laneway.Meta
				dom := engineDomain(t, cat, func(m laneway.Meta) { mu.Lock(); got = append(got, m); mu.Unlock() })
				cfg := lanewayconfig.Default()
				cfg.Server.PriorityLanes.Enabled = true
				cfg.Server.StreamSubscription.BlockingTimeoutMS = 200
				app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: sc.open(t)})
				require.NoError(t, err)
				br := openBroker(t)
				defer br.Close()
				eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, DisableHTTP: true})
				require.NoError(t, eng.Start(ctx))
				defer func() { require.NoError(t, eng.Stop(context.Background())) }()

				require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "a"}))
				require.NoError(t, app.Process(laneway.WithPriority(ctx, laneway.Low), OpenAccount{ID: "2", Owner: "b"}))
				require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 }, 20*time.Second, 10*time.Millisecond)

				mu.Lock()
				prios := map[string]laneway.Priority{}
				for _, m := range got {
					prios[m.Stream] = m.Priority
				}
				mu.Unlock()
				require.Equal(t, laneway.Normal, prios[cat+"-1"])
				require.Equal(t, laneway.Low, prios[cat+"-2"])

				// The LOW event went through the backfill lane: its outbox row says
				// so once the relay has marked it (a handler may run before that).
				var stream *string
				require.Eventually(t, func() bool {
					require.NoError(t, app.Store().InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
						return tx.QueryRow(ctx, "SELECT published_stream FROM outbox WHERE priority = -50").Scan(&stream)
					}))
					return stream != nil
				}, 20*time.Second, 10*time.Millisecond)
				require.Equal(t, cat+":backfill", *stream)
				groups, err := br.Groups(ctx, cat+":backfill")
				require.NoError(t, err)
				require.Len(t, groups, 1)
				require.Equal(t, "AccountProjector", groups[0].Name)
				_ = consumer.Primary
			})
		}
	}
}
