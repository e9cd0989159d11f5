package cli_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"github.com/spf13/cobra"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // driver "sqlite", to read the file without the store

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
	pgURL := testsvc.PostgresURL(t)
	for _, tc := range []struct {
		name, db string
		columns  func(t *testing.T, table string) []string
	}{
		{"sqlite", "provider = \"sqlite\"\nurl = \"sqlite://" + sqlitePath + "\"", func(t *testing.T, table string) []string {
			return sqliteColumns(t, sqlitePath, table)
		}},
		{"postgres", "provider = \"postgres\"\nurl = \"" + pgURL + "\"", func(t *testing.T, table string) []string {
			return pgColumns(t, pgURL, table)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeDomain(t, "name = \"Customers\"\n[databases.default]\n"+tc.db+"\n")
			require.Empty(t, tc.columns(t, "outbox"), "no outbox before setup")
			for i := 0; i < 2; i++ {
				code, out, errs := run(t, "db", "setup", "--domain", dir)
				require.Equal(t, 0, code, errs)
				require.Contains(t, out, "ready")
			}
			// The outbox table has exactly these columns on both databases: the
			// reference schema's, and lapsed_lease_until (migration 3), which the
			// relay reads to look for a row an unsettled attempt may have
			// appended before appending it again.
			assert.ElementsMatch(t, []string{
				"id", "message_id", "stream_name", "stream_category", "type", "data", "metadata", "priority",
				"status", "retry_count", "next_retry_at", "locked_by", "locked_until", "last_error",
				"created_at", "published_at", "published_stream", "lapsed_lease_until",
			}, tc.columns(t, "outbox"))
			for _, table := range []string{"laneway_aggregates", "laneway_processed", "laneway_schema_migrations"} {
				assert.NotEmpty(t, tc.columns(t, table), "table %s", table)
			}
		})
	}
}

// sqliteColumns reads the file directly: opening it through the store
// would migrate it and hide what db setup did.
func sqliteColumns(t *testing.T, path, table string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "SELECT name FROM pragma_table_info(?)", table)
	require.NoError(t, err)
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		require.NoError(t, rows.Scan(&c))
		cols = append(cols, c)
	}
	require.NoError(t, rows.Err())
	return cols
}

func pgColumns(t *testing.T, dbURL, table string) []string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1`, table)
	require.NoError(t, err)
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return cols
}

// TestTreeWithoutOptionsHasOnlyOperatorCommands: a user binary built with
// cli.Main(domain) gets the operator commands and nothing of the example
// domain; WithCommands adds a program's own commands beside them.
func TestTreeWithoutOptionsHasOnlyOperatorCommands(t *testing.T) {
	names := func(root *cobra.Command) []string {
		var out []string
		for _, c := range root.Commands() {
			if c.Name() != "help" && c.Name() != "completion" {
				out = append(out, c.Name())
			}
		}
		return out
	}
	var out, errb bytes.Buffer
	plain := cli.New(factory, &out, &errb)
	assert.ElementsMatch(t, []string{"server", "dashboard", "config", "db", "lanes", "doctor", "dlq", "outbox"}, names(plain))

	extra := cli.New(factory, &out, &errb, cli.WithCommands(func(env cli.Env) []*cobra.Command {
		return []*cobra.Command{{Use: "hello", RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(env.Stdout(), "hello")
			return err
		}}}
	}))
	assert.ElementsMatch(t, []string{"server", "dashboard", "config", "db", "lanes", "doctor", "dlq", "outbox", "hello"}, names(extra))

	code, _, errs := run(t, "demo")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `unknown command "demo"`)
	code, _, errs = run(t, "example", "migrate-tiers")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `unknown command "example"`)
}
