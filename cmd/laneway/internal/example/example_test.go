package example_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/laneway/laneway/cmd/laneway/internal/example"
	"github.com/laneway/laneway/examples/customers"
	"github.com/spf13/cobra"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

var withExample = cli.WithCommands(func(env cli.Env) []*cobra.Command { return []*cobra.Command{example.Command(env)} })

func factory() (*laneway.Domain, error) { return customers.New(customers.Options{}) }

// run runs the command line of the shipped binary: the operator commands
// and `example`.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Run(context.Background(), factory, args, &out, &errb, withExample)
	return code, out.String(), errb.String()
}

func writeDomain(t *testing.T, body string) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "domain.toml"), []byte(body), 0o644))
	return dir
}

type migrateJSON struct {
	DryRun       bool    `json:"dry_run"`
	Count        int     `json:"count"`
	Existing     int     `json:"existing"`
	Registered   int     `json:"registered"`
	Updated      int     `json:"updated"`
	Errors       int     `json:"errors"`
	Priority     int     `json:"priority"`
	PriorityName string  `json:"priority_name"`
	Batch        int     `json:"batch"`
	Elapsed      float64 `json:"elapsed_seconds"`
	Rate         float64 `json:"rate_per_s"`
	FirstError   string  `json:"first_error"`
}

func migrate(t *testing.T, dir string, args ...string) (int, migrateJSON, string) {
	t.Helper()
	code, out, errs := run(t, append([]string{"example", "migrate-tiers", "--domain", dir, "--json"}, args...)...)
	var rep migrateJSON
	if out != "" {
		require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	}
	return code, rep, errs
}

// priorities counts outbox rows by type and priority ("CustomerUpdated -50").
func priorities(t *testing.T, st lanewaystore.Store) map[string]int {
	t.Helper()
	got := map[string]int{}
	require.NoError(t, st.InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		rs, err := tx.Query(ctx, `SELECT type, priority, count(*) FROM outbox GROUP BY type, priority`)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var typ string
			var p, n int
			if err := rs.Scan(&typ, &p, &n); err != nil {
				return err
			}
			got[fmt.Sprintf("%s %d", typ, p)] = n
		}
		return rs.Err()
	}))
	return got
}

func TestMigrateTiersSQLite(t *testing.T) {
	t.Setenv("LANEWAY_ENV", "")
	dbPath := filepath.Join(t.TempDir(), "customers.db")
	dir := writeDomain(t, fmt.Sprintf("name = \"Customers\"\n[databases.default]\nprovider = \"sqlite\"\nurl = \"sqlite://%s\"\n[server.priority_lanes]\nenabled = true\n", dbPath))

	// A dry run on a database that does not exist yet: nothing is created.
	code, rep, errs := migrate(t, dir, "--count", "300", "--dry-run")
	require.Equal(t, 0, code, errs)
	require.Equal(t, migrateJSON{DryRun: true, Count: 300, Registered: 300, Updated: 300, Priority: -50, PriorityName: "LOW", Batch: 1}, rep)
	_, err := os.Stat(dbPath)
	require.ErrorIs(t, err, os.ErrNotExist, "a dry run writes nothing")
	code, out, errs := run(t, "example", "migrate-tiers", "--domain", dir, "--count", "300", "--dry-run")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, `below the threshold 0, so an engine with this configuration (no overlay) relays them to "customer:backfill"`)

	// An empty database: 300 registrations at NORMAL, then 300 updates at LOW.
	code, rep, errs = migrate(t, dir, "--count", "300")
	require.Equal(t, 0, code, errs)
	require.Equal(t, 300, rep.Registered)
	require.Equal(t, 300, rep.Updated)
	require.Zero(t, rep.Errors)
	require.Positive(t, rep.Rate)
	require.Contains(t, errs, "migrate [########################] 300/300 100%", "progress goes to stderr as plain lines")
	require.Contains(t, errs, "ETA")

	st, err := sqlitestore.Open(context.Background(), dbPath)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	require.Equal(t, map[string]int{
		"Customers.CustomerRegistered.v1 0": 300,
		"Customers.CustomerUpdated.v2 -50":  300,
	}, priorities(t, st))

	// A populated database with more customers than asked: nothing to
	// register; batches of 7 (the last one short); integer priority.
	code, rep, errs = migrate(t, dir, "--count", "100", "--batch", "7", "--priority", "-10")
	require.Equal(t, 0, code, errs)
	require.Equal(t, migrateJSON{Count: 100, Existing: 100, Updated: 100, Priority: -10, PriorityName: "-10", Batch: 7, Elapsed: rep.Elapsed, Rate: rep.Rate}, rep)
	require.Equal(t, 100, priorities(t, st)["Customers.CustomerUpdated.v2 -10"])

	// One bad record (an aggregate that does not decode) fails alone; the
	// rest of its batch commits. The command exits 1 with one line.
	require.NoError(t, st.InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE laneway_aggregates SET data = 'not json' WHERE category = 'customer' AND id = 'c000005'`)
		return err
	}))
	code, rep, errs = migrate(t, dir, "--count", "10", "--batch", "10", "--priority", "bulk")
	require.Equal(t, 1, code)
	require.Equal(t, 9, rep.Updated)
	require.Equal(t, 1, rep.Errors)
	require.Contains(t, rep.FirstError, "c000005")
	require.Equal(t, 9, priorities(t, st)["Customers.CustomerUpdated.v2 -100"])
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	last := lines[len(lines)-1]
	require.True(t, strings.HasPrefix(last, "laneway: migrate-tiers: 1 commands failed (first: c000005"), errs)
	require.Contains(t, errs, "error: c000005: ")

	// Text summary.
	code, out, _ = run(t, "example", "migrate-tiers", "--domain", dir, "--count", "20", "--batch", "20")
	require.Equal(t, 1, code, "c000005 still fails")
	require.Contains(t, out, "migrate-tiers: 20 customers, loyalty_tier set at priority LOW (-50), batch 20")
	require.Contains(t, out, "count 20  updated 19  errors 1")
}

func TestMigrateTiersPostgresBatch(t *testing.T) {
	t.Setenv("LANEWAY_ENV", "")
	dbURL := testsvc.PostgresURL(t)
	dir := writeDomain(t, fmt.Sprintf("name = \"Customers\"\n[databases.default]\nprovider = \"postgres\"\nurl = %q\n", dbURL))
	code, rep, errs := migrate(t, dir, "--count", "250", "--batch", "100")
	require.Equal(t, 0, code, errs)
	require.Equal(t, 250, rep.Registered)
	require.Equal(t, 250, rep.Updated)
	st, err := pgstore.Open(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	require.Equal(t, map[string]int{
		"Customers.CustomerRegistered.v1 0": 250,
		"Customers.CustomerUpdated.v2 -50":  250,
	}, priorities(t, st))
}

func TestMigrateTiersErrors(t *testing.T) {
	t.Setenv("LANEWAY_ENV", "")
	dir := writeDomain(t, "name = \"Customers\"\n[databases.default]\nurl = \"sqlite://"+filepath.Join(t.TempDir(), "x.db")+"\"\n")
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"priority":       {[]string{"--priority", "urgent"}, `invalid argument "urgent" for "--priority"`},
		"count":          {[]string{"--count", "0"}, "--count 0: must be at least 1"},
		"batch":          {[]string{"--batch", "-1"}, "--batch -1: must be at least 1"},
		"no domain.toml": {[]string{"--domain", t.TempDir()}, "domain.toml"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, errs := run(t, append([]string{"example", "migrate-tiers", "--domain", dir}, tc.args...)...)
			require.Equal(t, 1, code)
			require.True(t, strings.HasPrefix(errs, "laneway: "), errs)
			require.Equal(t, 1, strings.Count(errs, "\n"), "one line: %q", errs)
			require.Contains(t, errs, tc.want)
		})
	}

	other := func() (*laneway.Domain, error) { return laneway.NewDomain("Shop").Build() }
	var out, errb strings.Builder
	code := cli.Run(context.Background(), other, []string{"example", "migrate-tiers", "--domain", dir}, &out, &errb, withExample)
	require.Equal(t, 1, code)
	require.Contains(t, errb.String(), `needs the Customers example domain`)
}
