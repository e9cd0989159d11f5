package retention_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway/internal/retention"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func brokers(t *testing.T) map[string]lanewaybroker.Broker {
	t.Helper()
	ctx := context.Background()
	emb, err := redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = emb.Close() })
	real, err := redisbroker.Open(ctx, testsvc.RedisURL(t), redisbroker.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = real.Close() })
	return map[string]lanewaybroker.Broker{"embedded": emb, "redis": real}
}

func publish(t *testing.T, b lanewaybroker.Broker, stream string, n int) []string {
	t.Helper()
	pubs := make([]lanewaybroker.Publication, n)
	for i := range pubs {
		pubs[i] = lanewaybroker.Publication{Stream: stream, Data: `{"n":` + strconv.Itoa(i) + `}`}
	}
	ids, err := b.Publish(context.Background(), pubs)
	require.NoError(t, err)
	require.Len(t, ids, n)
	return ids
}

func read(t *testing.T, b lanewaybroker.Broker, stream, group string, n int) []string {
	t.Helper()
	res, err := b.ReadGroup(context.Background(), lanewaybroker.ReadParams{
		Group: group, Consumer: "c1", Streams: []string{stream}, Count: n,
	})
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Len(t, res[0].Entries, n)
	ids := make([]string, n)
	for i, e := range res[0].Entries {
		ids[i] = e.ID
	}
	return ids
}

func ack(t *testing.T, b lanewaybroker.Broker, stream, group string, ids []string) {
	t.Helper()
	require.NoError(t, b.Ack(context.Background(), []lanewaybroker.AckParams{{Stream: stream, Group: group, IDs: ids}}))
}

func remaining(t *testing.T, b lanewaybroker.Broker, stream string) []string {
	t.Helper()
	es, err := b.Range(context.Background(), stream, "-", "+", 0)
	require.NoError(t, err)
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	return ids
}

func TestTrim(t *testing.T) {
	for name, b := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()

			t.Run("slowest group's oldest pending", func(t *testing.T) {
				stream := testsvc.Prefix() + "customer"
				ids := publish(t, b, stream, 10)
				require.NoError(t, b.EnsureGroup(ctx, stream, "A"))
				require.NoError(t, b.EnsureGroup(ctx, stream, "B"))
				a := read(t, b, stream, "A", 6)
				ack(t, b, stream, "A", a)
				bb := read(t, b, stream, "B", 8)
				ack(t, b, stream, "B", bb[:4])

				n, err := retention.Trim(ctx, b, stream)
				require.NoError(t, err)
				require.EqualValues(t, 4, n)
				require.Equal(t, ids[4:], remaining(t, b, stream))

				// Trimming again changes nothing.
				n, err = retention.Trim(ctx, b, stream)
				require.NoError(t, err)
				require.EqualValues(t, 0, n)
			})

			t.Run("all acked trims to after last delivered", func(t *testing.T) {
				stream := testsvc.Prefix() + "customer"
				ids := publish(t, b, stream, 10)
				require.NoError(t, b.EnsureGroup(ctx, stream, "A"))
				ack(t, b, stream, "A", read(t, b, stream, "A", 7))
				n, err := retention.Trim(ctx, b, stream)
				require.NoError(t, err)
				require.EqualValues(t, 7, n)
				require.Equal(t, ids[7:], remaining(t, b, stream))
				l, err := b.Len(ctx, stream)
				require.NoError(t, err)
				require.EqualValues(t, 3, l, "XLEN is the backlog")
			})

			t.Run("a group that never read keeps everything", func(t *testing.T) {
				stream := testsvc.Prefix() + "customer"
				ids := publish(t, b, stream, 10)
				require.NoError(t, b.EnsureGroup(ctx, stream, "A"))
				require.NoError(t, b.EnsureGroup(ctx, stream, "Never"))
				ack(t, b, stream, "A", read(t, b, stream, "A", 10))
				n, err := retention.Trim(ctx, b, stream)
				require.NoError(t, err)
				require.EqualValues(t, 0, n)
				require.Equal(t, ids, remaining(t, b, stream))
			})

			t.Run("no group trims nothing", func(t *testing.T) {
				stream := testsvc.Prefix() + "customer"
				ids := publish(t, b, stream, 10)
				n, err := retention.Trim(ctx, b, stream)
				require.NoError(t, err)
				require.EqualValues(t, 0, n)
				require.Equal(t, ids, remaining(t, b, stream))

				n, err = retention.Trim(ctx, b, testsvc.Prefix()+"missing")
				require.NoError(t, err)
				require.EqualValues(t, 0, n)
			})
		})
	}
}

func TestTrimmer(t *testing.T) {
	b := brokers(t)["redis"]
	ctx := context.Background()
	s1, s2 := testsvc.Prefix()+"customer", testsvc.Prefix()+"customer:backfill"
	for _, s := range []string{s1, s2} {
		publish(t, b, s, 5)
		require.NoError(t, b.EnsureGroup(ctx, s, "P"))
		ack(t, b, s, "P", read(t, b, s, "P", 5))
	}
	trimmed := make(chan string, 4)
	tr := retention.NewTrimmer(b, retention.TrimmerParams{
		Streams:  []string{s1, s2},
		Interval: 10 * time.Millisecond,
		OnTrim:   func(s string, n int64) { trimmed <- s },
	})
	require.NoError(t, tr.Start(ctx))
	require.Error(t, tr.Start(ctx), "second start")
	// Wait for the reports, not for the streams to be empty: a trim is
	// reported after its XTRIM returns, and a Stop right after Redis
	// trimmed (before the reply arrived) cancels the report of a trim that
	// happened.
	var got []string
	require.Eventually(t, func() bool {
		for {
			select {
			case s := <-trimmed:
				got = append(got, s)
			default:
				return len(got) >= 2
			}
		}
	}, 10*time.Second, 10*time.Millisecond, "trims reported: %v", got)
	require.ElementsMatch(t, []string{s1, s2}, got)
	for _, s := range []string{s1, s2} {
		n, err := b.Len(ctx, s)
		require.NoError(t, err)
		require.Zero(t, n, s)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, tr.Stop(sctx))
	require.NoError(t, tr.Stop(sctx), "second stop is a no-op")
}

// Dead-letter streams have no groups: the trimmer removes their entries by
// age once dlq_retention_hours is set, and never otherwise. The clock is
// moved instead of waiting.
func TestDLQTrimmedByAge(t *testing.T) {
	for name, b := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dlq := testsvc.Prefix() + "customer:dlq"
			lane := testsvc.Prefix() + "customer"
			publish(t, b, dlq, 3)
			publish(t, b, lane, 2) // no group: lane streams are not trimmed by age
			trim := func(keep time.Duration, now time.Time) int64 {
				tr := retention.NewTrimmer(b, retention.TrimmerParams{
					Streams: []string{lane}, DLQs: []string{dlq, testsvc.Prefix() + "missing:dlq"},
					DLQRetention: keep, Now: func() time.Time { return now },
				})
				n, err := tr.TrimAll(ctx)
				require.NoError(t, err)
				return n
			}
			require.Zero(t, trim(0, time.Now().Add(1000*time.Hour)), "no retention keeps the DLQ forever")
			require.Zero(t, trim(time.Hour, time.Now()), "entries younger than the retention stay")
			require.Len(t, remaining(t, b, dlq), 3)
			require.Equal(t, int64(3), trim(time.Hour, time.Now().Add(2*time.Hour)), "entries older than the retention go")
			require.Empty(t, remaining(t, b, dlq))
			require.Len(t, remaining(t, b, lane), 2)
		})
	}
}
