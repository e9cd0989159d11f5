package outbox_test

import (
	"context"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

// benchRows is the backlog of BenchmarkRelayPostgresToRedis (issue 3).
const benchRows = 200_000

// BenchmarkRelayPostgresToRedis measures the relay's drain rate, PostgreSQL
// to Redis, as the engine runs it (Start, woken once): each iteration
// pre-inserts benchRows pending rows of ~300 bytes (not timed), measures the
// raw ceiling (pipelined XADD of the same entries, in batches of the relay's
// size, on one connection) and then the relay publishing and marking them
// all. Metrics: rows/s, raw_xadd/s, pct_of_raw; the mean time of one claim,
// publish and mark call per batch (claim_ms, publish_ms, mark_ms: the relay
// overlaps them, so a batch costs about the slowest); and the peak Go heap
// while relaying (heap_MB: it must stay flat, not grow with the backlog);
// and the share of row updates PostgreSQL made in place (hot_pct: the claim
// is meant to be one, so about 50 with the mark's update being the other).
//
// Run with -benchtime 1x: one iteration is already 200,000 rows.
func BenchmarkRelayPostgresToRedis(b *testing.B) {
	ctx := context.Background()
	url := testsvc.PostgresURL(b)
	s := openPG(b, url)
	admin, err := pgx.Connect(ctx, url)
	require.NoError(b, err)
	defer admin.Close(ctx)
	br := openRedis(b)
	cat := testsvc.Prefix() + "customer"
	raw := cat + ":raw"
	dropStream(b, br, cat)
	dropStream(b, br, raw)
	emptyStream := func(stream string) {
		_, _ = br.TrimMinID(ctx, stream, "18446744073709551615-18446744073709551615")
	}

	var relayed, rawN int64
	var relayTime, rawTime time.Duration
	var peakHeap uint64
	var updates, hotUpdates int64
	ts, tb := &timedStore{Store: s}, &timedBroker{Broker: br}
	for range b.N {
		b.StopTimer()
		datas := make([]string, 0, benchRows)
		for i := 0; i < benchRows; i += 5000 {
			rows := make([]lanewaystore.OutboxRow, 5000)
			for j := range rows {
				rows[j], _ = newRow(b, cat, 0, "bench")
				datas = append(datas, `{"data":`+string(rows[j].Data)+`,"metadata":`+string(rows[j].Metadata)+`}`)
			}
			insert(b, s, rows...)
		}
		_, err := admin.Exec(ctx, `VACUUM ANALYZE outbox`)
		require.NoError(b, err)

		start := time.Now()
		pubs := make([]lanewaybroker.Publication, 0, outbox.BatchSizeDefault)
		for i := 0; i < len(datas); i += outbox.BatchSizeDefault {
			pubs = pubs[:0]
			for _, d := range datas[i:min(i+outbox.BatchSizeDefault, len(datas))] {
				pubs = append(pubs, lanewaybroker.Publication{Stream: raw, Data: d})
			}
			_, err := br.Publish(ctx, pubs)
			require.NoError(b, err)
		}
		rawTime += time.Since(start)
		rawN += int64(len(datas))
		datas = nil
		emptyStream(raw)
		runtime.GC()

		r := outbox.New(ts, tb, outbox.Config{Logger: slog.New(slog.DiscardHandler)})
		var stopSample atomic.Bool
		sampled := make(chan uint64)
		go func() {
			var peak uint64
			var ms runtime.MemStats
			for !stopSample.Load() {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
				time.Sleep(20 * time.Millisecond)
			}
			sampled <- peak
		}()
		upd0, hot0 := updateCounts(b, admin)
		b.StartTimer()
		start = time.Now()
		require.NoError(b, r.Start(ctx))
		for r.Stats().Published < benchRows {
			time.Sleep(time.Millisecond)
		}
		relayTime += time.Since(start)
		b.StopTimer()
		stopSample.Store(true)
		peakHeap = max(peakHeap, <-sampled)
		stop(b, r)
		upd1, hot1 := updateCounts(b, admin)
		updates, hotUpdates = updates+upd1-upd0, hotUpdates+hot1-hot0
		relayed += r.Stats().Published
		_, err = admin.Exec(ctx, `TRUNCATE outbox`)
		require.NoError(b, err)
		emptyStream(cat)
		b.StartTimer()
	}
	require.Equal(b, int64(benchRows*b.N), relayed)
	rate := float64(relayed) / relayTime.Seconds()
	rawRate := float64(rawN) / rawTime.Seconds()
	b.ReportMetric(rate, "rows/s")
	b.ReportMetric(rawRate, "raw_xadd/s")
	b.ReportMetric(100*rate/rawRate, "pct_of_raw")
	b.ReportMetric(float64(peakHeap)/(1<<20), "heap_MB")
	b.ReportMetric(ts.claim.mean(), "claim_ms")
	b.ReportMetric(ts.mark.mean(), "mark_ms")
	b.ReportMetric(tb.publish.mean(), "publish_ms")
	b.ReportMetric(100*float64(hotUpdates)/float64(max(updates, 1)), "hot_pct")
}

// updateCounts reads how many outbox rows were updated so far, and how many
// of those updates were HOT (in place, no index writes). The statistics of
// other sessions reach the server within a second of their transactions, so
// it waits that out first.
func updateCounts(b *testing.B, admin *pgx.Conn) (updates, hot int64) {
	b.Helper()
	time.Sleep(1500 * time.Millisecond)
	ctx := context.Background()
	_, err := admin.Exec(ctx, `SELECT pg_stat_clear_snapshot()`)
	require.NoError(b, err)
	require.NoError(b, admin.QueryRow(ctx,
		`SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'outbox'::regclass`).Scan(&updates, &hot))
	return updates, hot
}

// meanTimer accumulates call durations.
type meanTimer struct{ total, n atomic.Int64 }

func (m *meanTimer) since(t time.Time) { m.total.Add(int64(time.Since(t))); m.n.Add(1) }

// mean is the mean duration in milliseconds.
func (m *meanTimer) mean() float64 {
	return float64(m.total.Load()) / float64(max(m.n.Load(), 1)) / 1e6
}

// timedStore times the relay's two store calls.
type timedStore struct {
	lanewaystore.Store
	claim, mark meanTimer
}

func (s *timedStore) ClaimOutbox(ctx context.Context, p lanewaystore.ClaimParams) ([]lanewaystore.OutboxRow, error) {
	defer s.claim.since(time.Now())
	return s.Store.ClaimOutbox(ctx, p)
}

func (s *timedStore) MarkPublished(ctx context.Context, p lanewaystore.MarkPublishedParams) error {
	defer s.mark.since(time.Now())
	return s.Store.MarkPublished(ctx, p)
}

// ListenOutbox keeps the relay's cross-process wake-up, as in the engine.
func (s *timedStore) ListenOutbox(ctx context.Context, notify func()) (func(), error) {
	return s.Store.(lanewaystore.Notifier).ListenOutbox(ctx, notify)
}

// timedBroker times Publish.
type timedBroker struct {
	lanewaybroker.Broker
	publish meanTimer
}

func (b *timedBroker) Publish(ctx context.Context, p []lanewaybroker.Publication) ([]string, error) {
	defer b.publish.since(time.Now())
	return b.Broker.Publish(ctx, p)
}
