package redisbroker_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2/server"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

func TestMain(m *testing.M) {
	// The Redis Cluster some tests share starts on first use and stops
	// after the last test.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testsvc.StopCluster()
		os.Exit(code)
	}))
}

func openRedis(t testing.TB) *redisbroker.Broker {
	t.Helper()
	b, err := redisbroker.Open(t.Context(), testsvc.RedisURL(t), redisbroker.Options{})
	require.NoError(t, err)
	return b
}

func openEmbedded(t testing.TB) *redisbroker.Broker {
	t.Helper()
	b, err := redisbroker.OpenEmbedded(t.Context(), redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	return b
}

func TestRedis(t *testing.T) {
	t.Parallel()
	brokertest.Exercise(t, func(t *testing.T) lanewaybroker.Broker { return openRedis(t) })
}

func TestEmbedded(t *testing.T) {
	t.Parallel()
	brokertest.Exercise(t, func(t *testing.T) lanewaybroker.Broker { return openEmbedded(t) })
}

// TestEmbeddedViaURL runs the suite through Open against an embedded server,
// as `laneway lanes status --broker redis://127.0.0.1:6380` does against a
// running demo: Open must recognise the server and turn the emulations on.
func TestEmbeddedViaURL(t *testing.T) {
	t.Parallel()
	srv := openEmbedded(t)
	t.Cleanup(func() { _ = srv.Close() })
	brokertest.Exercise(t, func(t *testing.T) lanewaybroker.Broker {
		b, err := redisbroker.Open(t.Context(), "redis://"+srv.Addr(), redisbroker.Options{})
		require.NoError(t, err)
		return b
	})
}

func TestOpenEmbeddedListen(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	b, err := redisbroker.OpenEmbedded(t.Context(), redisbroker.EmbeddedOptions{Listen: addr})
	require.NoError(t, err)
	defer b.Close()
	assert.True(t, b.Embedded())
	assert.Equal(t, addr, b.Addr())

	_, err = b.Publish(t.Context(), []lanewaybroker.Publication{{Stream: "customer", Data: "{}"}})
	require.NoError(t, err)

	// Any Redis client sees the stream on the listen address, as redis-cli
	// -p would.
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	n, err := c.XLen(t.Context(), "customer").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)

	_, err = redisbroker.OpenEmbedded(t.Context(), redisbroker.EmbeddedOptions{Listen: addr})
	require.Error(t, err, "the address is taken")
	assert.Contains(t, err.Error(), addr)

	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "Close twice is fine")
	assert.Error(t, c.Ping(t.Context()).Err(), "Close stopped the server")
}

func TestRedisIsNotEmbedded(t *testing.T) {
	t.Parallel()
	b := openRedis(t)
	defer b.Close()
	assert.False(t, b.Embedded())
	u, err := redis.ParseURL(testsvc.RedisURL(t))
	require.NoError(t, err)
	assert.Equal(t, u.Addr, b.Addr())
}

func TestOpenFailsFastWhenUnreachable(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t) // nothing listens there
	_, err := redisbroker.Open(t.Context(), "redis://laneway:s3cret-pw@"+addr+"/0", redisbroker.Options{ConnectTimeout: 2 * time.Second})
	require.Error(t, err)
	t.Log(err)
	assert.Contains(t, err.Error(), "cannot reach Redis at "+addr)
	assert.NotContains(t, err.Error(), "s3cret-pw")
}

func TestOpenRejectsBadURLWithoutPrintingPassword(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"redis://user:s3cret-pw@127.0.0.1:notaport/0",
		"redis://user:s3cret-pw@127.0.0.1:6379/notadb",
		"http://user:s3cret-pw@127.0.0.1:6379",
	} {
		_, err := redisbroker.Open(t.Context(), u, redisbroker.Options{})
		require.Error(t, err, u)
		t.Log(err)
		assert.NotContains(t, err.Error(), "s3cret-pw", u)
	}
}

func TestOpenWrongPassword(t *testing.T) {
	t.Parallel()
	// The test Redis has no password; AUTH with one is refused, and the
	// error must say so without the password.
	u, err := url.Parse(testsvc.RedisURL(t))
	require.NoError(t, err)
	u.User = url.UserPassword("nobody", "s3cret-pw")
	_, err = redisbroker.Open(t.Context(), u.String(), redisbroker.Options{})
	require.Error(t, err)
	t.Log(err)
	assert.Contains(t, err.Error(), u.Host)
	assert.NotContains(t, err.Error(), "s3cret-pw")
}

// TestOpenRefusesOldRedis talks to a fake server that claims to be Redis 6.
func TestOpenRefusesOldRedis(t *testing.T) {
	t.Parallel()
	srv, err := server.NewServer("127.0.0.1:0")
	require.NoError(t, err)
	defer srv.Close()
	require.NoError(t, srv.Register("PING", func(c *server.Peer, _ string, _ []string) { c.WriteInline("PONG") }))
	require.NoError(t, srv.Register("INFO", func(c *server.Peer, _ string, _ []string) {
		c.WriteBulk("# Server\r\nredis_version:6.2.14\r\nredis_mode:standalone\r\n")
	}))
	_, err = redisbroker.Open(t.Context(), "redis://"+srv.Addr().String(), redisbroker.Options{})
	require.Error(t, err)
	t.Log(err)
	assert.Contains(t, err.Error(), `version "6.2.14"`)
	assert.Contains(t, err.Error(), "7.0 or newer")
}

func TestOpenSelectsDB(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(testsvc.RedisURL(t))
	require.NoError(t, err)
	u.Path = "/3"
	b, err := redisbroker.Open(t.Context(), u.String(), redisbroker.Options{})
	require.NoError(t, err)
	defer b.Close()
	stream := testsvc.Prefix() + "db3"
	_, err = b.Publish(t.Context(), []lanewaybroker.Publication{{Stream: stream, Data: "x"}})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = b.DeleteKey(context.Background(), stream)
	})

	db0 := openRedis(t)
	defer db0.Close()
	n, err := db0.Len(t.Context(), stream)
	require.NoError(t, err)
	assert.Equal(t, int64(0), n, "DB 3 is not DB 0")
	n, err = b.Len(t.Context(), stream)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
}

// openNamed opens a broker on real Redis whose connections carry a unique
// client name, so that CLIENT LIST can pick them out on the shared server.
func openNamed(t testing.TB) (*redisbroker.Broker, string) {
	t.Helper()
	name := "lanewaytest-" + testsvc.RandomSuffix(4)
	b, err := redisbroker.Open(t.Context(), testsvc.RedisURL(t), redisbroker.Options{ClientName: name})
	require.NoError(t, err)
	return b, name
}

// blockedReads counts the connections named name that are blocked in
// XREADGROUP.
func blockedReads(t testing.TB, admin *redis.Client, name string) int {
	t.Helper()
	list, err := admin.ClientList(context.Background()).Result()
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		if slices.Contains(f, "name="+name) && slices.Contains(f, "cmd=xreadgroup") && slices.Contains(f, "flags=b") {
			n++
		}
	}
	return n
}

// TestBlockedReadIsOnTheServer checks, on real Redis, what the portable
// suite can only infer: the read is parked in the server (CLIENT LIST shows
// it blocked in XREADGROUP) before the entry arrives, and that one
// XREADGROUP wakes for the second of its two streams.
func TestBlockedReadIsOnTheServer(t *testing.T) {
	t.Parallel()
	b, name := openNamed(t)
	defer b.Close()
	ctx := t.Context()
	p := testsvc.Prefix()
	primary, backfill := p+"customer", p+"customer:backfill"
	for _, s := range []string{primary, backfill} {
		require.NoError(t, b.EnsureGroup(ctx, s, "G"))
	}
	admin := redis.NewClient(mustParse(t, testsvc.RedisURL(t)))
	defer admin.Close()

	done := make(chan []lanewaybroker.StreamEntries, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		res, err := b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{primary, backfill}, Block: time.Minute})
		assert.NoError(t, err)
		done <- res
	})
	require.Eventually(t, func() bool { return blockedReads(t, admin, name) == 1 }, 15*time.Second, 10*time.Millisecond,
		"the read is blocked in Redis")

	ids, err := b.Publish(ctx, []lanewaybroker.Publication{{Stream: backfill, Data: "x"}})
	require.NoError(t, err)
	select {
	case res := <-done:
		require.Len(t, res, 1)
		assert.Equal(t, backfill, res[0].Stream)
		assert.Equal(t, ids[0], res[0].Entries[0].ID)
	case <-time.After(15 * time.Second):
		t.Fatal("the blocked read did not wake")
	}
	assert.Equal(t, 0, blockedReads(t, admin, name))
}

// TestCancelledReadUnblocksTheServer checks on real Redis that cancelling a
// read ends it in the server too (CLIENT UNBLOCK), not only for the caller,
// and that the dedicated connection is reused afterwards.
func TestCancelledReadUnblocksTheServer(t *testing.T) {
	t.Parallel()
	b, name := openNamed(t)
	defer b.Close()
	stream := testsvc.Prefix() + "customer"
	require.NoError(t, b.EnsureGroup(t.Context(), stream, "G"))
	admin := redis.NewClient(mustParse(t, testsvc.RedisURL(t)))
	defer admin.Close()

	for round := range 3 {
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		var wg sync.WaitGroup
		wg.Go(func() {
			_, err := b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{stream}, Block: time.Minute})
			errc <- err
		})
		require.Eventually(t, func() bool { return blockedReads(t, admin, name) == 1 }, 15*time.Second, 10*time.Millisecond, "round %d", round)
		cancel()
		select {
		case err := <-errc:
			require.ErrorIs(t, err, context.Canceled)
		case <-time.After(15 * time.Second):
			t.Fatal("cancel did not end the read")
		}
		wg.Wait()
		assert.Equal(t, 0, blockedReads(t, admin, name), "round %d: the server-side read was unblocked", round)
	}
}

// TestCloseEndsBlockedRead: closing the broker ends a read blocked on it
// (the engine's last resort when a read ignores its context).
func TestCloseEndsBlockedRead(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t testing.TB) *redisbroker.Broker{"redis": openRedis, "embedded": openEmbedded} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			stream := testsvc.Prefix() + "customer"
			require.NoError(t, b.EnsureGroup(t.Context(), stream, "G"))
			errc := make(chan error, 1)
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() {
				_, err := b.ReadGroup(t.Context(), lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{stream}, Block: time.Minute})
				errc <- err
			})
			require.Never(t, func() bool { return len(errc) > 0 }, 150*time.Millisecond, 10*time.Millisecond)
			require.NoError(t, b.Close())
			select {
			case err := <-errc:
				assert.Error(t, err)
			case <-time.After(15 * time.Second):
				t.Fatal("Close did not end the blocked read")
			}
		})
	}
}

// TestLongBlockOutlastsReadTimeout: a BLOCK longer than ReadTimeout must not
// fail with an i/o timeout (go-redis extends the read deadline of blocking
// commands).
func TestLongBlockOutlastsReadTimeout(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t testing.TB) *redisbroker.Broker{
		"redis": func(t testing.TB) *redisbroker.Broker {
			b, err := redisbroker.Open(t.Context(), testsvc.RedisURL(t), redisbroker.Options{ReadTimeout: 100 * time.Millisecond})
			require.NoError(t, err)
			return b
		},
		"embedded": openEmbedded,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			defer b.Close()
			stream := testsvc.Prefix() + "customer"
			require.NoError(t, b.EnsureGroup(t.Context(), stream, "G"))
			res, err := b.ReadGroup(t.Context(), lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{stream}, Block: 400 * time.Millisecond})
			require.NoError(t, err)
			assert.Empty(t, res)
		})
	}
}

// TestEmbeddedWireFormat: any Redis client reading the embedded server sees
// entries with the one field "data".
func TestEmbeddedWireFormat(t *testing.T) {
	t.Parallel()
	b := openEmbedded(t)
	defer b.Close()
	_, err := b.Publish(t.Context(), []lanewaybroker.Publication{{Stream: "customer", Data: `{"data":{}}`}})
	require.NoError(t, err)
	c := redis.NewClient(&redis.Options{Addr: b.Addr()})
	defer c.Close()
	msgs, err := c.XRange(t.Context(), "customer", "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Equal(t, map[string]any{"data": `{"data":{}}`}, msgs[0].Values)
}

func TestRedisCLIAgainstEmbedded(t *testing.T) {
	t.Parallel()
	cli, err := exec.LookPath("redis-cli")
	// The seed's verification step uses redis-cli; without it this check
	// would silently prove nothing, so it fails.
	require.NoError(t, err, "redis-cli is not installed: install it with `apt-get install -y redis-tools`")
	b := openEmbedded(t)
	defer b.Close()
	_, err = b.Publish(t.Context(), []lanewaybroker.Publication{{Stream: "customer", Data: "x"}, {Stream: "customer", Data: "y"}})
	require.NoError(t, err)
	host, port, err := net.SplitHostPort(b.Addr())
	require.NoError(t, err)
	out, err := exec.CommandContext(t.Context(), cli, "-h", host, "-p", port, "XLEN", "customer").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "2", strings.TrimSpace(string(out)))
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func mustParse(t testing.TB, u string) *redis.Options {
	t.Helper()
	o, err := redis.ParseURL(u)
	require.NoError(t, err)
	return o
}

// Benchmarks: the raw ceilings of the broker on this machine, against real
// Redis (docs/BENCHMARKS.md reports them). Both keep the shared server's
// memory small: the stream is emptied every benchChunk entries, outside the
// timer.

// benchChunk is how many entries a benchmark stream holds at most.
const benchChunk = 10_000

// BenchmarkPublish publishes pipelined batches of 100 entries; one op is one
// entry.
func BenchmarkPublish(b *testing.B) {
	br := openRedis(b)
	defer br.Close()
	ctx := b.Context()
	stream := testsvc.Prefix() + "bench"
	defer func() { _ = br.DeleteKey(context.Background(), stream) }()
	const batch = 100
	pubs := make([]lanewaybroker.Publication, batch)
	for i := range pubs {
		pubs[i] = lanewaybroker.Publication{Stream: stream, Data: benchPayload}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if i > 0 && i%benchChunk == 0 {
			b.StopTimer()
			if err := br.DeleteKey(ctx, stream); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		if _, err := br.Publish(ctx, pubs[:min(batch, b.N-i)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkReadAck reads with XREADGROUP COUNT 100 and acks each batch in
// one pipelined XACK; one op is one entry.
func BenchmarkReadAck(b *testing.B) {
	br := openRedis(b)
	defer br.Close()
	ctx := b.Context()
	stream := testsvc.Prefix() + "bench"
	defer func() { _ = br.DeleteKey(context.Background(), stream) }()
	const batch = 100
	// refill replaces the stream by a fresh one holding n entries.
	refill := func(n int) {
		if err := br.DeleteKey(ctx, stream); err != nil {
			b.Fatal(err)
		}
		if err := br.EnsureGroup(ctx, stream, "G"); err != nil {
			b.Fatal(err)
		}
		pubs := make([]lanewaybroker.Publication, 0, 1000)
		for i := 0; i < n; i += len(pubs) {
			pubs = pubs[:0]
			for j := 0; j < 1000 && i+j < n; j++ {
				pubs = append(pubs, lanewaybroker.Publication{Stream: stream, Data: benchPayload})
			}
			if _, err := br.Publish(ctx, pubs); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for read, inStream := 0, 0; read < b.N; {
		if inStream == 0 {
			b.StopTimer()
			inStream = min(benchChunk, b.N-read)
			refill(inStream)
			b.StartTimer()
		}
		res, err := br.ReadGroup(ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{stream}, Count: batch})
		if err != nil {
			b.Fatal(err)
		}
		if len(res) == 0 {
			b.Fatalf("stream drained after %d of %d entries", read, b.N)
		}
		ids := make([]string, len(res[0].Entries))
		for i, e := range res[0].Entries {
			ids[i] = e.ID
		}
		if err := br.Ack(ctx, []lanewaybroker.AckParams{{Stream: stream, Group: "G", IDs: ids}}); err != nil {
			b.Fatal(err)
		}
		read += len(ids)
		inStream -= len(ids)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// benchPayload is an envelope of typical size (about 400 bytes).
var benchPayload = fmt.Sprintf(`{"data":{"customer_id":"%s","tier":"gold","email":"someone@example.com"},"metadata":{"headers":{"id":"%s","time":"2025-01-01T00:00:00Z","type":"Customers.TierChanged.v1","stream":"customer-42"},"envelope":{"specversion":"1.0","checksum":"%s"},"domain":{"kind":"EVENT","stream_category":"customer","priority":0,"version":1,"sequence_id":"42.1"}}}`,
	strings.Repeat("c", 36), strings.Repeat("i", 36), strings.Repeat("f", 64))
