package outbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

// Sizes of BenchmarkRelayProductionUnderBackfill: the backlog of LOW rows in
// the outbox when the relay starts, and the production rows committed one
// per transaction at prodRate while it drains.
const (
	laneBacklog = 100_000
	prodRows    = 500
	prodRate    = 200
)

// BenchmarkRelayProductionUnderBackfill measures how long a production row
// waits in the relay (from just before its transaction begins to the return
// of the publish that carried it) while laneBacklog LOW rows are being
// relayed, on SQLite and PostgreSQL to Redis, in three runs of the same
// process: idle (no backlog, lanes on), one loop (lanes off: one claim loop
// over every row, the relay before it became lane-aware) and lanes (lanes
// on: the production and backfill workers). Metrics per run: p50 and p99 in
// ms, and the backlog drain time in s. Run with -benchtime 1x.
func BenchmarkRelayProductionUnderBackfill(b *testing.B) {
	for _, sc := range storeCases() {
		b.Run(sc.name, func(b *testing.B) {
			for range b.N {
				for _, run := range []struct {
					name    string
					backlog int
					lanes   bool
				}{{"idle", 0, true}, {"one_loop", laneBacklog, false}, {"lanes", laneBacklog, true}} {
					p50, p99, drain := relayUnderBackfill(b, sc.open(b), run.backlog, run.lanes)
					b.ReportMetric(p50, run.name+"_p50_ms")
					b.ReportMetric(p99, run.name+"_p99_ms")
					if run.backlog > 0 {
						b.ReportMetric(drain, run.name+"_drain_s")
					}
				}
			}
		})
	}
}

func relayUnderBackfill(b *testing.B, s lanewaystore.Store, backlog int, lanesOn bool) (p50, p99, drain float64) {
	ctx := context.Background()
	br := openRedis(b)
	cat := testsvc.Prefix() + "customer"
	dropStream(b, br, cat)
	dropStream(b, br, cat+":backfill")
	for i := 0; i < backlog; i += 5000 {
		rows := make([]lanewaystore.OutboxRow, min(5000, backlog-i))
		for j := range rows {
			rows[j], _ = newRow(b, cat, -50, "back")
		}
		insert(b, s, rows...)
	}
	pb := &prodTimes{Broker: br, start: map[string]time.Time{}}
	r := outbox.New(s, pb, outbox.Config{Logger: slog.New(slog.DiscardHandler), Lanes: lanes.Config{Enabled: lanesOn}})
	start := time.Now()
	require.NoError(b, r.Start(ctx))
	defer stop(b, r)
	tick := time.NewTicker(time.Second / prodRate)
	for i := range prodRows {
		<-tick.C
		row, _ := newRow(b, cat, 0, fmt.Sprintf("prod-%d", i))
		pb.begin(row.MessageID)
		insert(b, s, row)
		r.Notify() // as the engine's OnCommit does
	}
	tick.Stop()
	for r.Stats().Published < int64(backlog+prodRows) {
		time.Sleep(5 * time.Millisecond)
	}
	drain = time.Since(start).Seconds()
	lat := pb.latencies()
	require.Len(b, lat, prodRows)
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / 1e6 }
	return ms(0.5), ms(0.99), drain
}

// prodTimes records when each production row's publish returned.
type prodTimes struct {
	lanewaybroker.Broker
	mu    sync.Mutex
	start map[string]time.Time
	lat   []time.Duration
}

func (p *prodTimes) begin(id string) {
	p.mu.Lock()
	p.start[id] = time.Now()
	p.mu.Unlock()
}

func (p *prodTimes) Publish(ctx context.Context, pubs []lanewaybroker.Publication) ([]string, error) {
	ids, err := p.Broker.Publish(ctx, pubs)
	if err != nil {
		return ids, err
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pub := range pubs {
		if !strings.Contains(pub.Data, `prod-`) {
			continue
		}
		var env struct {
			Metadata struct {
				Headers struct {
					ID string `json:"id"`
				} `json:"headers"`
			} `json:"metadata"`
		}
		if jsonUnmarshal([]byte(pub.Data), &env) != nil {
			continue
		}
		id := env.Metadata.Headers.ID
		if t, ok := p.start[id]; ok {
			p.lat = append(p.lat, now.Sub(t))
			delete(p.start, id)
		}
	}
	return ids, nil
}

func (p *prodTimes) latencies() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lat)
}
