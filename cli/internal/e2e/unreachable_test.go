package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/tools/syncio"
)

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// `laneway server` with Redis unreachable at start fails fast: exit 1 and
// one line naming the address (password redacted) and what to fix, rather
// than an engine that looks started but cannot move a message. Outages
// after start are the relay's and consumers' business: they back off and
// log once per state change (internal/outbox, internal/consumer tests).
func TestServerRedisUnreachableAtStart(t *testing.T) {
	port := closedPort(t)
	dir := t.TempDir()
	toml := fmt.Sprintf(`name = "Customers"

[databases.default]
provider = "sqlite"
url = "sqlite://%s"

[brokers.default]
provider = "redis"
url = "redis://laneway:s3cret@127.0.0.1:%d/%d"

[server.http]
listen = ""
`, filepath.Join(dir, "laneway.db"), port, redisDB)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "domain.toml"), []byte(toml), 0o644))

	// The deadline only catches a server that hangs instead of exiting.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "server", "--domain", dir, "--log-level", "debug")
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LANEWAY_ENV=") {
			environ = append(environ, kv)
		}
	}
	cmd.Env = environ
	var out, errb syncio.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "laneway server did not exit; stderr so far: %s", errb.String())
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "want a non-zero exit, got %v", err)
	assert.Equal(t, 1, ee.ExitCode())
	assert.Empty(t, out.String())
	stderr := errb.String()
	assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
	assert.True(t, strings.HasPrefix(stderr, "laneway: "), stderr)
	assert.Contains(t, stderr, fmt.Sprintf("cannot reach Redis at 127.0.0.1:%d", port))
	assert.Contains(t, stderr, "brokers.default.url", "says what to fix")
	assert.NotContains(t, stderr, "s3cret")
	assert.NotContains(t, stderr, "goroutine", "no stack trace")
}
