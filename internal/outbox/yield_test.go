package outbox_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

// overlapBroker counts the backfill publishes in flight.
type overlapBroker struct {
	lanewaybroker.Broker
	backfill atomic.Int64
}

func (b *overlapBroker) Publish(ctx context.Context, pubs []lanewaybroker.Publication) ([]string, error) {
	bf := len(pubs) > 0 && strings.HasSuffix(pubs[0].Stream, ":backfill")
	if bf {
		b.backfill.Add(1)
		defer b.backfill.Add(-1)
	}
	return b.Broker.Publish(ctx, pubs)
}

// overlapStore records, for each backfill claim, its limit and whether a
// backfill publish or mark was in flight when it began, and the rows it got.
type overlapStore struct {
	lanewaystore.Store
	b       *overlapBroker
	marking atomic.Int64
	mu      sync.Mutex
	limits  []int
	overlap []bool
	got     []int
}

func (s *overlapStore) ClaimOutbox(ctx context.Context, p lanewaystore.ClaimParams) ([]lanewaystore.OutboxRow, error) {
	if p.Priorities != nil && p.Priorities.Max < 0 {
		s.mu.Lock()
		s.limits = append(s.limits, p.Limit)
		s.overlap = append(s.overlap, s.b.backfill.Load() > 0 || s.marking.Load() > 0)
		s.mu.Unlock()
	}
	rows, err := s.Store.ClaimOutbox(ctx, p)
	if p.Priorities != nil && p.Priorities.Max < 0 {
		s.mu.Lock()
		s.got = append(s.got, len(rows))
		s.mu.Unlock()
	}
	return rows, err
}

func (s *overlapStore) MarkPublished(ctx context.Context, p lanewaystore.MarkPublishedParams) error {
	if len(p.Rows) > 0 && strings.HasSuffix(p.Rows[0].Stream, ":backfill") {
		s.marking.Add(1)
		defer s.marking.Add(-1)
	}
	return s.Store.MarkPublished(ctx, p)
}

func (s *overlapStore) claims() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// While production rows are being relayed the backfill worker yields: it
// claims no batch ahead of the one it publishes, so no backfill claim
// begins while a backfill publish or mark is in flight, and every batch is
// small. (It also pauses after each batch as long as the batch took; the
// test does not time it.) The clock stands still, so production stays
// "being relayed" for the whole test.
func TestBackfillYieldsWhileProductionRelays(t *testing.T) {
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			b := &overlapBroker{Broker: openRedis(t)}
			st := &overlapStore{Store: sc.open(t), b: b}
			cat := testsvc.Prefix() + "customer"
			dropStream(t, b, cat)
			dropStream(t, b, cat+":backfill")
			prod, _ := newRow(t, cat, 0, "prod")
			insert(t, st, prod)

			clk := newClock()
			r := outbox.New(st, b, outbox.Config{BatchSize: 10, BackfillBatchSize: 3, Lanes: lanesOn(), Now: clk.Now})
			require.NoError(t, r.Start(ctx))
			defer stop(t, r)
			require.Eventually(t, func() bool { return r.Stats().Published == 1 }, 30*time.Second, 5*time.Millisecond)
			// The backfill worker's drain at start has claimed (nothing).
			require.Eventually(t, func() bool { return st.claims() >= 1 }, 30*time.Second, 5*time.Millisecond)

			rows := make([]lanewaystore.OutboxRow, 60)
			for i := range rows {
				rows[i], _ = newRow(t, cat, -50, "low")
			}
			insert(t, st, rows...)
			r.Notify()
			require.Eventually(t, func() bool { return r.Stats().Published == 61 }, 30*time.Second, 5*time.Millisecond)

			st.mu.Lock()
			defer st.mu.Unlock()
			var during []bool
			for i, l := range st.limits {
				if l == 3 { // claims made while production was being relayed
					during = append(during, st.overlap[i])
				}
			}
			require.GreaterOrEqual(t, len(during), 20, "60 rows in claims of 3: %v", st.limits)
			assert.NotContains(t, during, true, "a backfill claim began while a backfill batch was being published or marked")
		})
	}
}
