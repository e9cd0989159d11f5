package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openSQLite(t testing.TB) lanewaystore.Store {
	t.Helper()
	return openSQLiteFile(t, filepath.Join(t.TempDir(), "laneway.db"))
}

// openSQLiteFile opens the SQLite store on path, which other stores may
// share (other processes, for SQLite).
func openSQLiteFile(t testing.TB, path string) *sqlitestore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Migrate(ctx))
	return s
}

func openPG(t testing.TB, url string) *pgstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := pgstore.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Migrate(ctx))
	return s
}

func openEmbedded(t testing.TB) lanewaybroker.Broker {
	t.Helper()
	b, err := redisbroker.OpenEmbedded(context.Background(), redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func openRedis(t testing.TB) lanewaybroker.Broker {
	t.Helper()
	b, err := redisbroker.Open(context.Background(), testsvc.RedisURL(t), redisbroker.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// newRow builds a valid outbox row: payload and metadata as the unit of
// work writes them (metadata carries the payload's checksum).
func newRow(t testing.TB, category string, priority int, tag string) (lanewaystore.OutboxRow, envelope.Metadata) {
	t.Helper()
	id := testsvc.RandomSuffix(8)
	data := json.RawMessage(fmt.Sprintf(`{"tag":%q,"name":"Zoë <x>","pad":"%0200d"}`, tag, 0))
	sum, err := envelope.Checksum(data)
	require.NoError(t, err)
	kind := envelope.ClassEvent
	if len(category) > 8 && category[len(category)-8:] == ":command" {
		kind = envelope.ClassCommand
	}
	md := envelope.Metadata{
		Headers: envelope.Headers{
			ID: id, Time: time.Now().UTC().Format(time.RFC3339Nano),
			Type: "Customers.Registered.v1", Stream: category + "-42",
		},
		Envelope: envelope.Integrity{SpecVersion: envelope.SpecVersion, Checksum: sum},
		Domain: envelope.Domain{
			Class: kind, StreamCategory: category, Priority: priority,
			Version: 1, SequenceID: "1.1", CorrelationID: "corr-" + id,
		},
	}
	mdJSON, err := json.Marshal(md)
	require.NoError(t, err)
	return lanewaystore.OutboxRow{
		MessageID: id, StreamName: category + "-42", StreamCategory: category,
		Type: md.Headers.Type, Data: data, Metadata: mdJSON, Priority: priority,
	}, md
}

func insert(t testing.TB, s lanewaystore.Store, rows ...lanewaystore.OutboxRow) {
	t.Helper()
	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.InsertOutbox(ctx, rows)
	}))
}

func publishedStream(t testing.TB, s lanewaystore.Store, messageID string) string {
	t.Helper()
	var stream string
	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.QueryRow(ctx, `SELECT published_stream FROM outbox WHERE message_id = $1`, messageID).Scan(&stream)
	}))
	return stream
}

func decodeStream(t testing.TB, b lanewaybroker.Broker, stream string) []envelope.Envelope {
	t.Helper()
	es, err := b.Range(context.Background(), stream, "-", "+", 0)
	require.NoError(t, err)
	out := make([]envelope.Envelope, len(es))
	for i, e := range es {
		env, err := envelope.Decode([]byte(e.Data))
		require.NoError(t, err, "entry %s: %s", e.ID, e.Data)
		out[i] = env
	}
	return out
}

func listAll(t testing.TB, s lanewaystore.Store) map[string]lanewaystore.OutboxRow {
	t.Helper()
	rows, err := s.ListOutbox(context.Background(), lanewaystore.ListOutboxParams{Limit: 100000})
	require.NoError(t, err)
	m := make(map[string]lanewaystore.OutboxRow, len(rows))
	for _, r := range rows {
		m[r.MessageID] = r
	}
	return m
}

// clock is a controllable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func stop(t testing.TB, stopper interface{ Stop(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, stopper.Stop(ctx))
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// dropStream empties a stream on the shared Redis when the test ends.
func dropStream(t testing.TB, b lanewaybroker.Broker, stream string) {
	t.Cleanup(func() {
		_, _ = b.TrimMinID(context.Background(), stream, "18446744073709551615-18446744073709551615")
	})
}
