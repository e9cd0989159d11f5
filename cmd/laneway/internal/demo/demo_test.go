package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli"
	"github.com/laneway/laneway/cmd/laneway/internal/demo"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/internal/tools/demoschema"
)

var withDemo = cli.WithCommands(func(env cli.Env) []*cobra.Command { return []*cobra.Command{demo.Command(env)} })

// runShortDemo runs a small demo in-process (under -race in CI) and checks
// the JSON shape, every backfill command handled in both runs and
// production traffic handled. The latency ratio is asserted on the real
// binary, without the race detector's slowdown, in cli/internal/e2e
// (TestDemoBinary).
func runShortDemo(t *testing.T, broker, database string, extra ...string) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	demoFactory := func() (*laneway.Domain, error) { return customers.New(customers.Options{}) }
	args := append([]string{"demo", "--json", "--backfill", "1000", "--rate", "100", "--duration", "2s", "--handler-cost", "1ms"}, extra...)
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), demoFactory, args, &out, &errb, withDemo)
	require.Equal(t, 0, code, "stderr: %s", errb.String())

	// Exactly one JSON object on stdout.
	dec := json.NewDecoder(bytes.NewReader(out.Bytes()))
	var rep demoschema.Output
	require.NoError(t, dec.Decode(&rep), out.String())
	require.False(t, dec.More(), "more than one JSON value on stdout: %s", out.String())

	require.Equal(t, broker, rep.Broker)
	require.Equal(t, database, rep.Database)
	require.Len(t, rep.Runs, 2)
	for i, lanes := range []string{"off", "on"} {
		r := rep.Runs[i]
		require.Equal(t, lanes, r.Lanes)
		require.Equal(t, 1000, r.Backfill.Sent, "lanes %s", lanes)
		require.Equal(t, 1000, r.Backfill.Handled, "lanes %s", lanes)
		require.Positive(t, r.Primary.Count, "lanes %s", lanes)
		for name, v := range map[string]*float64{
			"p50_ms": r.Primary.P50, "p90_ms": r.Primary.P90, "p99_ms": r.Primary.P99, "max_ms": r.Primary.Max,
			"drain_seconds": r.Backfill.DrainSeconds, "throughput_per_s": r.Throughput,
		} {
			require.NotNil(t, v, "lanes %s: %s missing", lanes, name)
			require.Positive(t, *v, "lanes %s: %s", lanes, name)
		}
		require.LessOrEqual(t, *r.Primary.P50, *r.Primary.P90)
		require.LessOrEqual(t, *r.Primary.P90, *r.Primary.P99)
		require.LessOrEqual(t, *r.Primary.P99, *r.Primary.Max)
	}
}

func TestDemoEmbedded(t *testing.T) {
	runShortDemo(t, "embedded", "sqlite")
}

func TestDemoRedisPostgres(t *testing.T) {
	u, err := url.Parse(testsvc.RedisURL(t))
	require.NoError(t, err)
	// A database of its own: the demo clears the Customers streams there.
	// LANEWAY_DEMO_REDIS_DB moves it (two checkouts on one Redis).
	db := "13"
	if v := os.Getenv("LANEWAY_DEMO_REDIS_DB"); v != "" {
		db = v
	}
	u.Path = "/" + db
	runShortDemo(t, "redis", "postgres", "--broker", u.String(), "--database", testsvc.PostgresURL(t))
}

func TestDemoRejectsBadFlags(t *testing.T) {
	demoFactory := func() (*laneway.Domain, error) { return customers.New(customers.Options{}) }
	for name, args := range map[string][]string{
		"rate":        {"demo", "--rate", "0"},
		"backfill":    {"demo", "--backfill", "-1"},
		"broker":      {"demo", "--broker", "http://x"},
		"database":    {"demo", "--database", "mysql://x"},
		"concurrency": {"demo", "--concurrency", "0"},
	} {
		var out, errb bytes.Buffer
		code := cli.Run(context.Background(), demoFactory, args, &out, &errb, withDemo)
		require.Equal(t, 1, code, name)
		require.Contains(t, errb.String(), "--"+name, name)
	}
}
