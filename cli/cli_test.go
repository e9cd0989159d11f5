package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/testsvc"
)

func factory() (*laneway.Domain, error) { return customers.New(customers.Options{}) }

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Run(context.Background(), factory, args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeDomain(t *testing.T, body string) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "domain.toml"), []byte(body), 0o644))
	return dir
}

func TestConfigShow(t *testing.T) {
	t.Setenv("LANEWAY_ENV", "")
	dir := writeDomain(t, `
name = "Customers"
[brokers.default]
provider = "redis"
url = "redis://:s3cret@127.0.0.1:6379/0"
[server.priority_lanes]
enabled = false
[production.server.priority_lanes]
enabled = true
`)
	code, out, errs := run(t, "config", "show", "--domain", dir)
	require.Equal(t, 0, code, errs)
	require.NotContains(t, out, "s3cret")
	require.Contains(t, out, "xxxxx")
	require.Contains(t, out, "enabled = false")

	code, out, errs = run(t, "config", "show", "--json", "--domain", dir, "--env", "production")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, `"enabled": true`)
	require.NotContains(t, out, "s3cret")
}

func TestUserErrorsAreOneLine(t *testing.T) {
	cases := map[string][]string{
		"missing domain.toml": {"config", "show", "--domain", t.TempDir()},
		"typo key":            {"config", "show", "--domain", writeDomain(t, "[server.priority_lane]\nenabled = true\n")},
		"bad log level":       {"server", "--log-level", "loud", "--domain", writeDomain(t, "name = \"Customers\"\n")},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, errs := run(t, args...)
			require.Equal(t, 1, code)
			require.True(t, strings.HasPrefix(errs, "laneway: "), errs)
			require.NotContains(t, errs, "goroutine")
		})
	}
	_, _, errs := run(t, "config", "show", "--domain", writeDomain(t, "[server.priority_lane]\nenabled = true\n"))
	require.Contains(t, errs, `did you mean "server.priority_lanes"`)
}

func TestDBSetupIdempotent(t *testing.T) {
	sqlitePath := filepath.Join(t.TempDir(), "app.db")
	for name, db := range map[string]string{
		"sqlite":   "provider = \"sqlite\"\nurl = \"sqlite://" + sqlitePath + "\"",
		"postgres": "provider = \"postgres\"\nurl = \"" + testsvc.PostgresURL(t) + "\"",
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeDomain(t, "name = \"Customers\"\n[databases.default]\n"+db+"\n")
			for i := 0; i < 2; i++ {
				code, out, errs := run(t, "db", "setup", "--domain", dir)
				require.Equal(t, 0, code, errs)
				require.Contains(t, out, "ready")
			}
		})
	}
}
