package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The browser tests drive Debian's chromium with playwright-core (both
// installed by scripts/browser-setup when missing) through the node
// scripts in scripts/browser.

var (
	browserOnce sync.Once
	browserErr  error
	browserOut  []byte
)

// repoFile is a path from the repository root (tests run in their
// package's directory).
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "..", rel))
	require.NoError(t, err)
	return p
}

// setupBrowser installs chromium and playwright-core once per test binary.
func setupBrowser(t *testing.T) {
	t.Helper()
	browserOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		browserOut, browserErr = exec.CommandContext(ctx, repoFile(t, "scripts/browser-setup")).CombinedOutput()
	})
	require.NoError(t, browserErr, "scripts/browser-setup (installs chromium and playwright-core):\n%s", browserOut)
}

// screenshotDir is where the browser tests save their screenshots:
// $LANEWAY_SCREENSHOTS (relative to the repository root; `make screenshots`
// sets docs/img), else a temporary directory.
func screenshotDir(t *testing.T) string {
	t.Helper()
	d := os.Getenv("LANEWAY_SCREENSHOTS")
	if d == "" {
		return t.TempDir()
	}
	if !filepath.IsAbs(d) {
		d = repoFile(t, d)
	}
	require.NoError(t, os.MkdirAll(d, 0o755))
	return d
}

// runBrowser runs `node scripts/browser/<script> args...` with env added
// and fails the test with the script's output when it fails.
func runBrowser(t *testing.T, env map[string]string, script string, args ...string) {
	t.Helper()
	setupBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{repoFile(t, "scripts/browser/"+script)}, args...)...)
	cmd.Dir = repoFile(t, "scripts/browser")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("node %s %v:\n%s", script, args, out.String())
	require.NoError(t, err, "browser script %s %v failed", script, args)
}
