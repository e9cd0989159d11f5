package outbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewaystore"
)

// ownRedis runs a private redis-server on port (so the test can stop and
// restart it without disturbing the shared one).
func ownRedis(t *testing.T, port int) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server is needed: apt-get install -y redis-server")
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	return cmd
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Redis stopped mid-run and started again: rows fail, are retried with
// backoff, and all reach the stream once Redis is back; none is abandoned,
// and the outage is logged once (failing) and once (recovered).
func TestRelaySurvivesRedisRestart(t *testing.T) {
	ctx := context.Background()
	port := freePort(t)
	srv := ownRedis(t, port)
	b, err := redisbroker.Open(ctx, fmt.Sprintf("redis://127.0.0.1:%d/0", port), redisbroker.Options{})
	require.NoError(t, err)
	defer b.Close()
	st := openSQLite(t)
	logs := &countHandler{}
	r := outbox.New(st, b, outbox.Config{
		Retry:  outbox.Retry{MaxAttempts: 2, BaseDelay: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Jitter: true},
		Logger: slog.New(logs),
	})
	require.NoError(t, r.Start(ctx))
	defer stop(t, r)

	var first []lanewaystore.OutboxRow
	for i := 0; i < 50; i++ {
		row, _ := newRow(t, "customer", 0, "before")
		first = append(first, row)
	}
	insert(t, st, first...)
	require.Eventually(t, func() bool { n, _ := b.Len(ctx, "customer"); return n == 50 }, 20*time.Second, 10*time.Millisecond)

	require.NoError(t, srv.Process.Kill())
	_, _ = srv.Process.Wait()
	var second []lanewaystore.OutboxRow
	for i := 0; i < 50; i++ {
		row, _ := newRow(t, "customer", 0, "during")
		second = append(second, row)
	}
	insert(t, st, second...)
	require.Eventually(t, r.BrokerUnreachable, 20*time.Second, 10*time.Millisecond, "the relay notices Redis is down")
	// The outage lasts far longer than the whole retry schedule (two
	// attempts 20 ms apart), yet uses up none of them.
	time.Sleep(2 * time.Second)
	for _, row := range listAll(t, st) {
		require.Zero(t, row.RetryCount, "an unreachable broker is not an attempt (row %s)", row.MessageID)
		require.NotEqual(t, lanewaystore.StatusAbandoned, row.Status)
	}

	ownRedis(t, port) // back, empty (no persistence)
	require.Eventually(t, func() bool {
		for _, row := range listAll(t, st) {
			if row.Status != lanewaystore.StatusPublished {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "every row published after Redis returns")

	entries := decodeStream(t, b, "customer")
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.Metadata.Headers.ID] = true
	}
	for _, row := range second {
		require.True(t, seen[row.MessageID], "row %s reached the stream", row.MessageID)
	}
	for _, row := range listAll(t, st) {
		require.NotEqual(t, lanewaystore.StatusAbandoned, row.Status)
	}
	require.Equal(t, 1, logs.count(slog.LevelWarn), "one line when it starts failing")
	require.Equal(t, 1, logs.count(slog.LevelInfo), "one line when it recovers")
}
