package laneway_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// heldBackfill holds every publish that carries a backfill entry until
// release: a backfill batch stuck on its way to Redis. It keeps the Redis
// client visible, so the engine runs with its lane controls as usual.
type heldBackfill struct {
	lanewaybroker.Broker
	rc      redis.UniversalClient
	entered chan struct{}
	open    chan struct{}
	once    sync.Once
	closeMu sync.Mutex
}

func (h *heldBackfill) RedisClient() redis.UniversalClient { return h.rc }

func (h *heldBackfill) Publish(ctx context.Context, pubs []lanewaybroker.Publication) ([]string, error) {
	for _, p := range pubs {
		if strings.HasSuffix(p.Stream, ":backfill") {
			h.once.Do(func() { close(h.entered) })
			select {
			case <-h.open:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			break
		}
	}
	return h.Broker.Publish(ctx, pubs)
}

func (h *heldBackfill) release() {
	h.closeMu.Lock()
	defer h.closeMu.Unlock()
	select {
	case <-h.open:
	default:
		close(h.open)
	}
}

// End to end, a production command never waits for a backfill batch in the
// relay: with a migration's LOW commands committed by ProcessBatch and their
// batch held on its way to Redis, a production command sent through Process
// is published and handled, and no backfill event is, until the hold ends.
func TestProductionOvertakesHeldBackfillBatch(t *testing.T) {
	for _, sc := range stores() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			cat := testsvc.Prefix() + "account"
			var mu sync.Mutex
			var handled []laneway.Meta
			dom := engineDomain(t, cat, func(m laneway.Meta) {
				mu.Lock()
				handled = append(handled, m)
				mu.Unlock()
			})
			seen := func() (prod, back int) {
				mu.Lock()
				defer mu.Unlock()
				for _, m := range handled {
					if m.Priority >= laneway.Normal {
						prod++
					} else {
						back++
					}
				}
				return prod, back
			}
			cfg := lanewayconfig.Default()
			cfg.Server.PriorityLanes.Enabled = true
			app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: sc.open(t)})
			require.NoError(t, err)
			var cmds []laneway.Command
			for i := range 10 {
				cmds = append(cmds, OpenAccount{ID: fmt.Sprint("b", i), Owner: "o"})
			}
			require.NoError(t, app.ProcessBatch(ctx, cmds, laneway.AtPriority(laneway.Low)))

			b, err := redisbroker.Open(ctx, testsvc.RedisURL(t), redisbroker.Options{})
			require.NoError(t, err)
			t.Cleanup(func() {
				for _, s := range []string{cat, cat + ":backfill"} {
					_, _ = b.TrimMinID(context.Background(), s, "18446744073709551615-18446744073709551615")
				}
				_ = b.Close()
			})
			held := &heldBackfill{Broker: b, rc: b.RedisClient(),
				entered: make(chan struct{}), open: make(chan struct{})}
			eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: held, DisableHTTP: true})
			require.NoError(t, eng.Start(ctx))
			defer func() { require.NoError(t, eng.Stop(context.Background())) }()
			defer held.release()
			select {
			case <-held.entered:
			case <-time.After(30 * time.Second):
				t.Fatal("the backfill batch never reached the broker")
			}

			require.NoError(t, app.Process(ctx, OpenAccount{ID: "p1", Owner: "o"}))
			require.Eventually(t, func() bool { p, _ := seen(); return p == 1 }, 30*time.Second, 5*time.Millisecond,
				"the production event is handled while the backfill batch is held")
			_, back := seen()
			assert.Zero(t, back, "no backfill event got past the hold")

			held.release()
			require.Eventually(t, func() bool { p, b := seen(); return p == 1 && b == 10 }, 30*time.Second, 5*time.Millisecond)
		})
	}
}
