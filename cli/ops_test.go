package cli_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

// The outbox commands on SQLite (cli/internal/e2e runs them on PostgreSQL).
func TestOutboxCommandsOnSQLite(t *testing.T) {
	t.Setenv("LANEWAY_ENV", "")
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "app.db")
	dir := writeDomain(t, "name = \"Customers\"\n[databases.default]\nprovider = \"sqlite\"\nurl = \"sqlite://"+db+"\"\n")

	code, _, errs := run(t, "outbox", "status", "--domain", dir)
	require.Equal(t, 1, code)
	assert.Contains(t, errs, "has no outbox table: run `laneway db setup`")

	cfg, err := lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: dir})
	require.NoError(t, err)
	dom, err := customers.New(customers.Options{})
	require.NoError(t, err)
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{})
	require.NoError(t, err)
	for _, id := range []string{"a", "b", "c"} {
		require.NoError(t, app.Process(ctx, customers.RegisterCustomer{CustomerID: id}, laneway.AtPriority(laneway.Low)))
	}
	require.NoError(t, app.Process(ctx, customers.RegisterCustomer{CustomerID: "d"}))
	require.NoError(t, app.Store().InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE outbox SET status = 'abandoned', retry_count = 5, last_error = 'boom' WHERE priority = -50`)
		return err
	}))
	require.NoError(t, app.Close())

	code, out, errs := run(t, "outbox", "status", "--json", "--domain", dir)
	require.Equal(t, 0, code, errs)
	var st struct {
		Total    int64            `json:"total"`
		ByStatus map[string]int64 `json:"by_status"`
		Database string           `json:"database"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	assert.Equal(t, "sqlite", st.Database)
	assert.Equal(t, int64(4), st.Total)
	assert.Equal(t, int64(3), st.ByStatus["abandoned"])
	assert.Equal(t, int64(1), st.ByStatus["pending"])

	code, out, errs = run(t, "outbox", "list", "--status", "abandoned", "--limit", "2", "--domain", dir)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "boom")
	assert.Contains(t, out, "2 rows shown")

	code, out, errs = run(t, "outbox", "retry", "--abandoned", "--yes", "--domain", dir)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "Reset 3 abandoned rows to pending")
	code, out, errs = run(t, "outbox", "list", "--status", "abandoned", "--domain", dir)
	require.Equal(t, 0, code, errs)
	assert.Equal(t, "No abandoned outbox rows.\n", out)
}

func TestOpsUserErrors(t *testing.T) {
	t.Setenv("LANEWAY_ENV", "")
	emb := writeDomain(t, "name = \"Customers\"\n")
	cases := map[string]struct {
		args []string
		want string
	}{
		"dlq without domain.toml":   {[]string{"dlq", "list", "--domain", t.TempDir()}, "no domain.toml found"},
		"dlq bad --to":              {[]string{"dlq", "replay", "1-0", "--to", "up", "--domain", emb}, `--to "up": use original, primary or backfill`},
		"dlq embedded, no listen":   {[]string{"dlq", "list", "--domain", emb}, "set listen ="},
		"dlq inspect without id":    {[]string{"dlq", "inspect", "--domain", emb}, "takes 1 argument"},
		"dlq --limit 0":             {[]string{"dlq", "list", "--limit", "0", "--domain", emb}, "--limit 0"},
		"outbox bad --status":       {[]string{"outbox", "list", "--status", "gone", "--domain", emb}, `--status "gone"`},
		"outbox retry id and --all": {[]string{"outbox", "retry", "3", "--abandoned", "--domain", emb}, "not both"},
		"outbox retry bad id":       {[]string{"outbox", "retry", "0", "--domain", emb}, `outbox id "0"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			code, out, errs := run(t, c.args...)
			require.Equal(t, 1, code, errs)
			assert.Empty(t, out)
			assert.Regexp(t, `^laneway: [^\n]*\n$`, errs)
			assert.Contains(t, errs, c.want)
		})
	}
}
