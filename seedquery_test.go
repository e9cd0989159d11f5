package laneway_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaystore/pgstore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

const seedQuery = "SELECT message_id, priority, stream_name FROM outbox ORDER BY created_at DESC LIMIT 10;"

// The seed guide's verification query, run with the database's own shell
// exactly as a user would, shows the LOW priority.
func TestSeedQueryWithDatabaseShells(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite3", func(t *testing.T) {
		bin, err := exec.LookPath("sqlite3")
		require.NoError(t, err, "the sqlite3 shell is needed: apt-get install -y sqlite3")
		path := filepath.Join(t.TempDir(), "seed.db")
		st, err := sqlitestore.Open(ctx, path)
		require.NoError(t, err)
		defer st.Close()
		app, err := laneway.Open(ctx, testDomain(t), nil, laneway.Options{Store: st})
		require.NoError(t, err)
		require.NoError(t, app.Process(laneway.WithPriority(ctx, laneway.Low), OpenAccount{ID: "42", Owner: "x"}))
		out, err := exec.Command(bin, path, seedQuery).CombinedOutput()
		require.NoError(t, err, string(out))
		require.Equal(t, "account-42-1.1|-50|account-42", strings.TrimSpace(string(out)))
	})
	t.Run("psql", func(t *testing.T) {
		bin, err := exec.LookPath("psql")
		require.NoError(t, err, "the psql shell is needed: apt-get install -y postgresql-client")
		dbURL := testsvc.PostgresURL(t)
		st, err := pgstore.Open(ctx, dbURL)
		require.NoError(t, err)
		defer st.Close()
		app, err := laneway.Open(ctx, testDomain(t), nil, laneway.Options{Store: st})
		require.NoError(t, err)
		require.NoError(t, app.Process(laneway.WithPriority(ctx, laneway.Low), OpenAccount{ID: "42", Owner: "x"}))
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		q := u.Query()
		schema := q.Get("search_path")
		q.Del("search_path")
		u.RawQuery = q.Encode()
		cmd := exec.Command(bin, u.String(), "-tA", "-c", seedQuery)
		cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+schema)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		require.Equal(t, "account-42-1.1|-50|account-42", strings.TrimSpace(string(out)))
	})
}
