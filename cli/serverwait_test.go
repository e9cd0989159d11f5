package cli_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/cli"
	"github.com/laneway/laneway/internal/tools/syncio"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func readyz(addr string) int {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// `laneway server` started while its Redis is down waits for it: it logs
// once, is alive but not ready, and starts by itself when Redis comes up.
func TestServerWaitsForRedis(t *testing.T) {
	t.Setenv("LANEWAY_ENV", "")
	redisAddr, httpAddr := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(redisAddr)
	dir := writeDomain(t, fmt.Sprintf(`name = "Customers"
[databases.default]
provider = "sqlite"
url = "sqlite://%s"
[brokers.default]
provider = "redis"
url = "redis://%s/0"
[server.http]
listen = %q
`, filepath.Join(t.TempDir(), "db.sqlite"), redisAddr, httpAddr))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncio.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, factory, []string{"server", "--domain", dir}, &out, &errb)
	}()
	require.Eventually(t, func() bool { return readyz(httpAddr) == http.StatusServiceUnavailable }, 30*time.Second, 10*time.Millisecond, errb.String())
	select {
	case code := <-done:
		t.Fatalf("server exited (%d) while Redis was down: %s", code, errb.String())
	case <-time.After(300 * time.Millisecond):
	}

	srv := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, srv.Start())
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	require.Eventually(t, func() bool { return readyz(httpAddr) == http.StatusOK }, 30*time.Second, 20*time.Millisecond, errb.String())
	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, errb.String())
	case <-time.After(60 * time.Second):
		t.Fatal("server did not stop")
	}
	logs := errb.String() + out.String()
	require.Equal(t, 1, strings.Count(logs, "redis unreachable; waiting"), logs)
	require.Contains(t, logs, "laneway engine started")
}
