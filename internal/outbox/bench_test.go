package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaystore"
)

// BenchmarkRelayPostgresToRedis measures the relay's drain rate: each
// iteration pre-inserts 20,000 rows of ~300 bytes (not timed), then relays
// them all to a real Redis with the default batch size.
func BenchmarkRelayPostgresToRedis(b *testing.B) {
	const perIter = 20000
	ctx := context.Background()
	s := openPG(b, testsvc.PostgresURL(b))
	br := openRedis(b)
	cat := testsvc.Prefix() + "customer"
	dropStream(b, br, cat)
	r := outbox.New(s, br, outbox.Config{})
	var relayed int
	var elapsed time.Duration
	for range b.N {
		b.StopTimer()
		for i := 0; i < perIter; i += 2000 {
			rows := make([]lanewaystore.OutboxRow, 2000)
			for j := range rows {
				rows[j], _ = newRow(b, cat, 0, "bench")
			}
			insert(b, s, rows...)
		}
		b.StartTimer()
		start := time.Now()
		for {
			n, err := r.RunOnce(ctx)
			require.NoError(b, err)
			if n == 0 {
				break
			}
			relayed += n
		}
		elapsed += time.Since(start)
	}
	b.StopTimer()
	require.Equal(b, perIter*b.N, relayed)
	b.ReportMetric(float64(relayed)/elapsed.Seconds(), "rows/s")
}
