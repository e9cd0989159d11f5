package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/internal/tools/syncio"
)

// `laneway server` with Redis unreachable at start waits for it: one WARN
// naming the address (password redacted), no exit, and a clean exit 0 on
// SIGTERM while it waits. (That it then starts when Redis comes up, with
// /readyz not ready meanwhile, is cli's TestServerWaitsForRedis.) Outages
// after start are the relay's and consumers' business: they back off and
// log once per state change (internal/outbox, internal/consumer tests).
func TestServerRedisUnreachableAtStart(t *testing.T) {
	addr := testsvc.RefusedAddr(t) // stays refused: no other test can take it
	dir := t.TempDir()
	toml := fmt.Sprintf(`name = "Customers"

[databases.default]
provider = "sqlite"
url = "sqlite://%s"

[brokers.default]
provider = "redis"
url = "redis://laneway:s3cret@%s/%d"

[server.http]
listen = ""
`, filepath.Join(dir, "laneway.db"), addr, redisDB)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "domain.toml"), []byte(toml), 0o644))

	cmd := exec.Command(binPath, "server", "--domain", dir, "--log-level", "debug")
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LANEWAY_ENV=") {
			environ = append(environ, kv)
		}
	}
	cmd.Env = environ
	var out, errb syncio.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	for deadline := time.Now().Add(time.Minute); !strings.Contains(errb.String(), "redis unreachable; waiting"); {
		if time.Now().After(deadline) {
			t.Fatalf("no WARN that Redis is unreachable within a minute; stderr: %s", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-exited:
		t.Fatalf("server exited while waiting for Redis: %v; stderr: %s", err, errb.String())
	case <-time.After(time.Second):
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "exit 0 when stopped while waiting; stderr: %s", errb.String())
	case <-time.After(time.Minute):
		t.Fatalf("server did not stop on SIGTERM while waiting for Redis; stderr: %s", errb.String())
	}
	stderr := errb.String()
	assert.Equal(t, 1, strings.Count(stderr, "redis unreachable; waiting"), "logged once: %q", stderr)
	assert.Contains(t, stderr, "cannot reach Redis at "+addr)
	assert.NotContains(t, stderr, "s3cret")
	assert.NotContains(t, stderr, "goroutine", "no stack trace")
}
