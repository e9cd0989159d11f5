package lanewayconfig_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewayconfig"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestLoadPrefersHiddenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "domain.toml", `name = "Visible"`)
	hidden := writeFile(t, dir, ".domain.toml", `name = "Hidden"`)

	c, err := lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: dir, LookupEnv: envMap()})
	require.NoError(t, err)
	require.Equal(t, "Hidden", c.Name)
	require.Equal(t, hidden, c.Source())

	require.NoError(t, os.Remove(hidden))
	c, err = lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: dir, LookupEnv: envMap()})
	require.NoError(t, err)
	require.Equal(t, "Visible", c.Name)
	require.Equal(t, filepath.Join(dir, "domain.toml"), c.Source())
}

func TestLoadMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: dir, LookupEnv: envMap()})
	require.ErrorIs(t, err, lanewayconfig.ErrNotFound)
	require.Equal(t, "no domain.toml found: tried "+filepath.Join(dir, ".domain.toml")+", "+filepath.Join(dir, "domain.toml")+
		"; pass --domain DIR to name the directory that holds it", err.Error())

	gone := filepath.Join(dir, "nope")
	_, err = lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: gone, LookupEnv: envMap()})
	require.ErrorIs(t, err, lanewayconfig.ErrNotFound)
	require.Contains(t, err.Error(), "directory "+gone+" does not exist")

	c, err := lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: dir, AllowMissing: true, LookupEnv: envMap("LANEWAY_ENV", "production")})
	require.NoError(t, err)
	requireSameConfig(t, lanewayconfig.Default(), c)
	require.Empty(t, c.Source())
	require.Equal(t, "production", c.EnvName())
	require.False(t, c.OverlayApplied())
}

// The default directory is the working directory; messages show "./".
func TestLoadDefaultDir(t *testing.T) {
	// Not parallel: changes the working directory.
	t.Chdir(t.TempDir())
	_, err := lanewayconfig.Load(lanewayconfig.LoadOptions{LookupEnv: envMap()})
	sep := string(filepath.Separator)
	require.ErrorContains(t, err, "tried ."+sep+".domain.toml, ."+sep+"domain.toml")

	writeFile(t, ".", "domain.toml", `name = "Here"`)
	c, err := lanewayconfig.Load(lanewayconfig.LoadOptions{LookupEnv: envMap()})
	require.NoError(t, err)
	require.Equal(t, "Here", c.Name)
	require.Equal(t, "."+sep+"domain.toml", c.Source())
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := writeFile(t, dir, "domain.toml", "name = \"x\"\n[server\nmessages_per_tick = 1\n")
	_, err := lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: dir, LookupEnv: envMap()})
	var se *lanewayconfig.SyntaxError
	require.True(t, errors.As(err, &se), "%T %v", err, err)
	require.Equal(t, p, se.File)
	require.Equal(t, 2, se.Line)
	require.Regexp(t, `^`+regexpQuote(p)+`:2:\d+: invalid TOML: `, err.Error())

	writeFile(t, dir, "domain.toml", "[outbox]\nbatch_size = 0\n")
	_, err = lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: dir, LookupEnv: envMap()})
	var ve *lanewayconfig.ValidationError
	require.True(t, errors.As(err, &ve))
	require.Equal(t, p, ve.Source)
	require.Equal(t, "invalid configuration in "+p+": outbox.batch_size = 0: must be at least 1", err.Error())

	require.NoError(t, os.Mkdir(filepath.Join(dir, ".domain.toml"), 0o700))
	_, err = lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: dir, LookupEnv: envMap()})
	require.ErrorContains(t, err, "read "+filepath.Join(dir, ".domain.toml"))
}

func regexpQuote(s string) string {
	out := ""
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			out += `\`
		}
		out += string(r)
	}
	return out
}

// The seed guide's overlay example.
const seedOverlay = `
# Development: disabled by default
[server.priority_lanes]
enabled = false

# Production: enabled
[production.server.priority_lanes]
enabled = true
threshold = 0
`

func TestSeedOverlay(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "domain.toml", seedOverlay)
	load := func(opts lanewayconfig.LoadOptions) *lanewayconfig.Config {
		t.Helper()
		opts.Dir = dir
		c, err := lanewayconfig.Load(opts)
		require.NoError(t, err)
		return c
	}

	c := load(lanewayconfig.LoadOptions{LookupEnv: envMap()})
	require.False(t, c.Server.PriorityLanes.Enabled)
	require.Empty(t, c.EnvName())
	require.False(t, c.OverlayApplied())

	c = load(lanewayconfig.LoadOptions{Env: "production", LookupEnv: envMap()})
	require.True(t, c.Server.PriorityLanes.Enabled)
	require.Equal(t, 0, c.Server.PriorityLanes.Threshold)
	require.Equal(t, "production", c.EnvName())
	require.True(t, c.OverlayApplied())

	c = load(lanewayconfig.LoadOptions{LookupEnv: envMap("LANEWAY_ENV", "production")})
	require.True(t, c.Server.PriorityLanes.Enabled)
	require.Equal(t, "production", c.EnvName())

	// An explicit Env (--env) wins over LANEWAY_ENV.
	c = load(lanewayconfig.LoadOptions{Env: "production", LookupEnv: envMap("LANEWAY_ENV", "staging")})
	require.True(t, c.Server.PriorityLanes.Enabled)

	// LANEWAY_ENV set but empty selects nothing.
	c = load(lanewayconfig.LoadOptions{LookupEnv: envMap("LANEWAY_ENV", "")})
	require.False(t, c.Server.PriorityLanes.Enabled)
}

// LookupEnv defaults to the process environment.
func TestLoadReadsProcessEnvironment(t *testing.T) {
	// Not parallel: sets environment variables.
	t.Setenv("LANEWAY_ENV", "production")
	t.Setenv("LANEWAY_TEST_SUFFIX", "bulk")
	c, err := lanewayconfig.Parse([]byte(seedOverlay+"backfill_suffix = \"${LANEWAY_TEST_SUFFIX}\"\n"), lanewayconfig.LoadOptions{})
	require.NoError(t, err)
	require.True(t, c.Server.PriorityLanes.Enabled)
	require.Equal(t, "bulk", c.Server.PriorityLanes.BackfillSuffix)
}

func TestOverlayDeepMerge(t *testing.T) {
	t.Parallel()
	doc := `
name = "Customers"
[databases.default]
provider = "postgres"
url = "postgres://localhost/dev"
[server.priority_lanes]
enabled = true
backfill_suffix = "bulk"
[server.stream_subscription]
concurrency = 4

[production]
name = "CustomersProd"
[production.databases.default]
url = "postgres://db.prod/app"
[production.server.stream_subscription]
concurrency = 16
[production.outbox.retry]
jitter = false
`
	c := mustParse(t, doc, "LANEWAY_ENV", "production")
	require.Equal(t, "CustomersProd", c.Name)
	require.Equal(t, lanewayconfig.Database{Provider: "postgres", URL: "postgres://db.prod/app"}, c.Databases["default"])
	require.True(t, c.Server.PriorityLanes.Enabled, "base keys the overlay does not set are kept")
	require.Equal(t, "bulk", c.Server.PriorityLanes.BackfillSuffix)
	require.Equal(t, 16, c.Server.StreamSubscription.Concurrency)
	require.Equal(t, 3, c.Server.StreamSubscription.MaxRetries, "defaults under merged tables are kept")
	require.False(t, c.Outbox.Retry.Jitter)
	require.Equal(t, 5, c.Outbox.Retry.MaxAttempts)

	dev := mustParse(t, doc)
	require.Equal(t, "Customers", dev.Name)
	require.Equal(t, 4, dev.Server.StreamSubscription.Concurrency)
	require.True(t, dev.Outbox.Retry.Jitter)
}

func TestOverlaySelection(t *testing.T) {
	t.Parallel()
	const two = "[production.server.priority_lanes]\nenabled = true\n[staging.server.priority_lanes]\nthreshold = -5\n"

	// An environment without its table, when the file has overlays, is an
	// error (the reference silently ignores it: G15).
	_, err := parseDoc(two, "LANEWAY_ENV", "prod")
	requireProblem(t, err, "LANEWAY_ENV", `"prod"`, `the file has no [prod] overlay table (its overlays: [production], [staging])`)
	_, err = parseDoc(two, "LANEWAY_ENV", "productoin")
	requireProblem(t, err, "LANEWAY_ENV", `"productoin"`, `did you mean "production"?`)
	_, err = lanewayconfig.Parse([]byte(two), lanewayconfig.LoadOptions{Env: "qa", LookupEnv: envMap()})
	requireProblem(t, err, "--env", `"qa"`, "add an empty [qa] table if this environment needs no overrides")

	// An empty table is a valid overlay.
	c := mustParse(t, two+"[qa]\n", "LANEWAY_ENV", "qa")
	require.True(t, c.OverlayApplied())
	require.False(t, c.Server.PriorityLanes.Enabled)

	// A file without any overlay accepts any environment.
	c = mustParse(t, "[server.priority_lanes]\nenabled = true\n", "LANEWAY_ENV", "production")
	require.Equal(t, "production", c.EnvName())
	require.False(t, c.OverlayApplied())
	require.True(t, c.Server.PriorityLanes.Enabled)

	// Only the selected overlay applies.
	c = mustParse(t, two, "LANEWAY_ENV", "staging")
	require.False(t, c.Server.PriorityLanes.Enabled)
	require.Equal(t, -5, c.Server.PriorityLanes.Threshold)

	// Variables are resolved only in the applied overlay: another
	// environment's variables need not exist here.
	c = mustParse(t, "[production.databases.default]\nprovider = \"postgres\"\nurl = \"${PROD_DATABASE_URL}\"\n")
	require.Equal(t, "sqlite", c.Databases["default"].Provider)
	_, err = parseDoc("[production.databases.default]\nprovider = \"postgres\"\nurl = \"${PROD_DATABASE_URL}\"\n", "LANEWAY_ENV", "production")
	requireProblem(t, err, "production.databases.default.url", `"${PROD_DATABASE_URL}"`, "environment variable PROD_DATABASE_URL is not set")
}
