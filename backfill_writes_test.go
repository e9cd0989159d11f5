package laneway_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

// markStore records, for each transaction and each relay claim, whether its
// context was marked as backfill work.
type markStore struct {
	lanewaystore.Store
	mu     sync.Mutex
	txs    []bool
	claims map[bool][]bool // production claim (Priorities.Min >= 0) -> marks
}

func (s *markStore) InTx(ctx context.Context, fn func(ctx context.Context, tx lanewaystore.Tx) error) error {
	s.mu.Lock()
	s.txs = append(s.txs, lanewaystore.IsBackfill(ctx))
	s.mu.Unlock()
	return s.Store.InTx(ctx, fn)
}

func (s *markStore) ClaimOutbox(ctx context.Context, p lanewaystore.ClaimParams) ([]lanewaystore.OutboxRow, error) {
	s.mu.Lock()
	if s.claims == nil {
		s.claims = map[bool][]bool{}
	}
	prod := p.Priorities != nil && p.Priorities.Min >= 0
	s.claims[prod] = append(s.claims[prod], lanewaystore.IsBackfill(ctx))
	s.mu.Unlock()
	return s.Store.ClaimOutbox(ctx, p)
}

// lastTx returns the mark of the latest transaction.
func (s *markStore) lastTx() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txs[len(s.txs)-1]
}

// Backfill work reaches the store marked (lanewaystore.AsBackfill), so a
// store with one writer can let production writes go first: the commits of
// commands below the lanes threshold (Process and ProcessBatch), the
// backfill relay worker's claims, and the transactions of handlers run from
// the backfill lane. Production work is never marked, and nothing is with
// lanes off.
func TestBackfillWorkIsMarkedForTheStore(t *testing.T) {
	ctx := context.Background()
	cat := testsvc.Prefix() + "account"
	var mu sync.Mutex
	handled := map[laneway.Priority][]bool{}
	dom := accountDomain(t, cat, func(ctx context.Context, _ *laneway.Tx, m laneway.Meta) {
		mu.Lock()
		handled[m.Priority] = append(handled[m.Priority], lanewaystore.IsBackfill(ctx))
		mu.Unlock()
	})
	cfg := lanewayconfig.Default()
	cfg.Server.PriorityLanes.Enabled = true
	cfg.Server.StreamSubscription.BlockingTimeoutMS = 200
	st := &markStore{Store: stores()[0].open(t)}
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
	require.NoError(t, err)

	require.NoError(t, app.Process(ctx, OpenAccount{ID: "n1", Owner: "a"}))
	assert.False(t, st.lastTx(), "a NORMAL command's commit")
	require.NoError(t, app.Process(ctx, OpenAccount{ID: "l1", Owner: "a"}, laneway.AtPriority(laneway.Low)))
	assert.True(t, st.lastTx(), "a LOW command's commit")
	require.NoError(t, app.Process(ctx, OpenAccount{ID: "c1", Owner: "a"}, laneway.AtPriority(laneway.Critical)))
	assert.False(t, st.lastTx(), "a CRITICAL command's commit")
	require.NoError(t, app.ProcessBatch(ctx, []laneway.Command{OpenAccount{ID: "l2", Owner: "b"}, OpenAccount{ID: "l3", Owner: "b"}}, laneway.AtPriority(laneway.Bulk)))
	assert.True(t, st.lastTx(), "a BULK batch's commit")
	require.NoError(t, app.ProcessBatch(ctx, []laneway.Command{OpenAccount{ID: "n2", Owner: "b"}}))
	assert.False(t, st.lastTx(), "a NORMAL batch's commit")

	br, err := redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	defer br.Close()
	eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, DisableHTTP: true})
	require.NoError(t, eng.Start(ctx))
	defer func() { require.NoError(t, eng.Stop(context.Background())) }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled[laneway.Normal])+len(handled[laneway.Critical]) == 3 && len(handled[laneway.Low])+len(handled[laneway.Bulk]) == 3
	}, 20*time.Second, 10*time.Millisecond)
	mu.Lock()
	assert.Equal(t, []bool{false, false}, handled[laneway.Normal], "handlers of the primary lane")
	assert.Equal(t, []bool{false}, handled[laneway.Critical], "handlers of the primary lane")
	assert.Equal(t, []bool{true}, handled[laneway.Low], "handlers of the backfill lane")
	assert.Equal(t, []bool{true, true}, handled[laneway.Bulk], "handlers of the backfill lane")
	mu.Unlock()
	st.mu.Lock()
	assert.NotEmpty(t, st.claims[true])
	assert.NotContains(t, st.claims[true], true, "the production relay worker's claims")
	assert.NotEmpty(t, st.claims[false])
	assert.NotContains(t, st.claims[false], false, "the backfill relay worker's claims")
	st.mu.Unlock()

	// Lanes off: nothing is backfill work.
	cfg.Server.PriorityLanes.Enabled = false
	off, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
	require.NoError(t, err)
	require.NoError(t, off.Process(ctx, OpenAccount{ID: "l4", Owner: "a"}, laneway.AtPriority(laneway.Low)))
	assert.False(t, st.lastTx(), "a LOW command's commit with lanes off")
}
