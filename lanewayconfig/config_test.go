package lanewayconfig_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/laneway/laneway/lanewayconfig"
)

// requireSameConfig compares the exported configuration (JSON).
func requireSameConfig(t interface {
	require.TestingT
	Helper()
}, want, got *lanewayconfig.Config) {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err)
	g, err := json.Marshal(got)
	require.NoError(t, err)
	require.JSONEq(t, string(w), string(g))
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c := lanewayconfig.Default()
	require.NoError(t, c.Validate())
	require.Equal(t, "Laneway", c.Name)
	require.Equal(t, "sync", c.CommandProcessing)
	require.Equal(t, lanewayconfig.Database{Provider: "sqlite", URL: "sqlite://laneway.db"}, c.Databases["default"])
	require.Equal(t, lanewayconfig.Broker{Provider: "embedded", URL: "redis://127.0.0.1:6379/0", MinReplicasTimeoutMS: 1000}, c.Brokers["default"])
	require.Equal(t, lanewayconfig.Server{
		DefaultSubscriptionType: "stream",
		MessagesPerTick:         100,
		StreamNaming:            "laneway",
		Partitions:              1,
		StreamSubscription: lanewayconfig.StreamSubscription{
			BlockingTimeoutMS: 5000, MaxRetries: 3, RetryDelaySeconds: 1, EnableDLQ: true,
			ClaimIdleSeconds: 60, Concurrency: 1, DLQRetentionHours: 0, ShutdownTimeoutSeconds: 30,
		},
		PriorityLanes: lanewayconfig.PriorityLanes{
			Enabled: false, Threshold: 0, BackfillSuffix: "backfill", Propagate: true,
			BackfillConcurrency: 1, MinBackfillShare: 0, PrimaryReader: true, BackfillYield: true, BackfillShortSlice: true,
		},
		HTTP: lanewayconfig.HTTP{Listen: "127.0.0.1:9464"},
	}, c.Server)
	require.Equal(t, lanewayconfig.Outbox{
		BatchSize: 500, TickIntervalMS: 10, MaxTickIntervalMS: 1000, LeaseSeconds: 30, HandOff: true,
		Retry:   lanewayconfig.OutboxRetry{MaxAttempts: 5, BaseDelaySeconds: 1, MaxBackoffSeconds: 60, Jitter: true},
		Cleanup: lanewayconfig.OutboxCleanup{PublishedRetentionHours: 168, AbandonedRetentionHours: 720, IntervalSeconds: 60},
	}, c.Outbox)
	require.Empty(t, c.Source())
	require.Empty(t, c.EnvName())
	require.False(t, c.OverlayApplied())

	// Default returns a fresh value each time: changing one leaves the next intact.
	c.Databases["default"] = lanewayconfig.Database{Provider: "postgres"}
	require.Equal(t, "sqlite", lanewayconfig.Default().Databases["default"].Provider)
}

func TestDurations(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `
[server.stream_subscription]
blocking_timeout_ms = 250
retry_delay_seconds = 0.05
claim_idle_seconds = 90
shutdown_timeout_seconds = 2.5
dlq_retention_hours = 1.5
[outbox]
tick_interval_ms = 5
max_tick_interval_ms = 400
lease_seconds = 12
[outbox.retry]
base_delay_seconds = 0.5
max_backoff_seconds = 30
[outbox.cleanup]
published_retention_hours = 24
abandoned_retention_hours = 48
interval_seconds = 15
`)
	ss, o := c.Server.StreamSubscription, c.Outbox
	for _, tc := range []struct {
		got, want time.Duration
	}{
		{ss.BlockingTimeout(), 250 * time.Millisecond},
		{ss.RetryDelay(), 50 * time.Millisecond},
		{ss.ClaimIdle(), 90 * time.Second},
		{ss.ShutdownTimeout(), 2500 * time.Millisecond},
		{ss.DLQRetention(), 90 * time.Minute},
		{o.TickInterval(), 5 * time.Millisecond},
		{o.MaxTickInterval(), 400 * time.Millisecond},
		{o.Lease(), 12 * time.Second},
		{o.Retry.BaseDelay(), 500 * time.Millisecond},
		{o.Retry.MaxBackoff(), 30 * time.Second},
		{o.Cleanup.PublishedRetention(), 24 * time.Hour},
		{o.Cleanup.AbandonedRetention(), 48 * time.Hour},
		{o.Cleanup.Interval(), 15 * time.Second},
	} {
		require.Equal(t, tc.want, tc.got)
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `
[databases.default]
provider = "postgres"
url = "postgres://u:secret@h/db"
[databases.query]
provider = "postgres"
url = "postgres://h:5432/db?sslmode=disable&password=secret&application_name=x"
[brokers.default]
provider = "redis"
url = "redis://:secret@host:6379/0"
[brokers.acl]
provider = "redis"
url = "rediss://app:s%40cret@host:6380/1"
`)
	r := c.Redacted()
	require.Equal(t, "postgres://u:xxxxx@h/db", r.Databases["default"].URL)
	require.Equal(t, "postgres://h:5432/db?sslmode=disable&password=xxxxx&application_name=x", r.Databases["query"].URL)
	require.Equal(t, "redis://:xxxxx@host:6379/0", r.Brokers["default"].URL)
	require.Equal(t, "rediss://app:xxxxx@host:6380/1", r.Brokers["acl"].URL)
	for _, out := range [][]byte{must(r.TOML()), must(r.JSON())} {
		require.NotContains(t, string(out), "secret")
		require.NotContains(t, string(out), "cret")
	}
	// The original keeps its secrets.
	require.Equal(t, "postgres://u:secret@h/db", c.Databases["default"].URL)
	require.Equal(t, "redis://:secret@host:6379/0", c.Brokers["default"].URL)
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://:secret@host":                    "redis://:xxxxx@host",
		"postgres://u:secret@h/db":                "postgres://u:xxxxx@h/db",
		"postgres://u@h/db":                       "postgres://u@h/db",
		"redis://127.0.0.1:6379/0":                "redis://127.0.0.1:6379/0",
		"sqlite://laneway.db":                     "sqlite://laneway.db",
		"postgres://h/db?PASSWORD=secret#frag":    "postgres://h/db?PASSWORD=xxxxx#frag",
		"postgres://u:se:cr@t@h/db":               "postgres://u:xxxxx@h/db",
		"postgres://u:secret@h:abc/db":            "postgres://u:xxxxx@h:abc/db", // not parsable: best effort
		"postgres://u:secret@h/db?password=a&b=c": "postgres://u:xxxxx@h/db?password=xxxxx&b=c",
		"": "",
	} {
		require.Equal(t, want, lanewayconfig.RedactURL(in), "RedactURL(%q)", in)
	}
}

func TestLanesFingerprint(t *testing.T) {
	t.Parallel()
	base := lanewayconfig.Default()
	fp := base.LanesFingerprint()
	require.Regexp(t, `^[0-9a-f]{16}$`, fp)
	require.Equal(t, fp, lanewayconfig.Default().LanesFingerprint(), "stable")

	changes := map[string]func(c *lanewayconfig.Config){
		"enabled":              func(c *lanewayconfig.Config) { c.Server.PriorityLanes.Enabled = true },
		"threshold":            func(c *lanewayconfig.Config) { c.Server.PriorityLanes.Threshold = -10 },
		"backfill_suffix":      func(c *lanewayconfig.Config) { c.Server.PriorityLanes.BackfillSuffix = "bulk" },
		"propagate":            func(c *lanewayconfig.Config) { c.Server.PriorityLanes.Propagate = false },
		"backfill_concurrency": func(c *lanewayconfig.Config) { c.Server.PriorityLanes.BackfillConcurrency = 2 },
		"min_backfill_share":   func(c *lanewayconfig.Config) { c.Server.PriorityLanes.MinBackfillShare = 0.05 },
		"concurrency":          func(c *lanewayconfig.Config) { c.Server.StreamSubscription.Concurrency = 8 },
	}
	seen := map[string]string{fp: "defaults"}
	for name, change := range changes {
		c := lanewayconfig.Default()
		change(c)
		got := c.LanesFingerprint()
		prev, dup := seen[got]
		require.False(t, dup, "%s gives the same fingerprint as %s", name, prev)
		seen[got] = name
	}

	neutral := []func(c *lanewayconfig.Config){
		func(c *lanewayconfig.Config) { c.Outbox.BatchSize = 7 },
		func(c *lanewayconfig.Config) { c.Name = "Other" },
		func(c *lanewayconfig.Config) { c.Server.MessagesPerTick = 5 },
		func(c *lanewayconfig.Config) {
			c.Brokers["default"] = lanewayconfig.Broker{Provider: "redis", URL: "redis://x", MinReplicasTimeoutMS: 1000}
		},
	}
	for _, change := range neutral {
		c := lanewayconfig.Default()
		change(c)
		require.Equal(t, fp, c.LanesFingerprint())
	}

	// Through the file: enabling lanes changes it, batch_size does not.
	off := mustParse(t, "[server.priority_lanes]\nenabled = false\n[outbox]\nbatch_size = 10")
	on := mustParse(t, "[server.priority_lanes]\nenabled = true\n[outbox]\nbatch_size = 10")
	bigger := mustParse(t, "[server.priority_lanes]\nenabled = false\n[outbox]\nbatch_size = 20")
	require.NotEqual(t, off.LanesFingerprint(), on.LanesFingerprint())
	require.Equal(t, off.LanesFingerprint(), bigger.LanesFingerprint())
}

func TestTOMLAndJSON(t *testing.T) {
	t.Parallel()
	c := mustParse(t, designExample, "LANEWAY_ENV", "production")
	out, err := c.TOML()
	require.NoError(t, err)
	for _, want := range []string{
		"name = \"Customers\"", "[databases.default]", "[server.priority_lanes]", "enabled = true",
		"backfill_suffix = \"backfill\"", "[outbox.retry]", "interval_seconds = 60.0", "shutdown_timeout_seconds = 30.0",
	} {
		require.Contains(t, string(out), want)
	}
	require.NotContains(t, string(out), "production", "the output is resolved: no overlays")

	again := mustParse(t, string(out))
	requireSameConfig(t, c, again)

	j, err := c.JSON()
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(j, &m))
	server := m["server"].(map[string]any)
	require.Equal(t, 100.0, server["messages_per_tick"])
	require.Equal(t, true, server["priority_lanes"].(map[string]any)["enabled"])
	require.Equal(t, "sqlite", m["databases"].(map[string]any)["default"].(map[string]any)["provider"])
}

// Any configuration built from values inside the documented ranges
// validates, survives TOML() and Parse unchanged, and keeps its fingerprint.
func TestValidConfigsRoundTrip(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		c := genConfig(rt)
		require.NoError(rt, c.Validate())
		out, err := c.TOML()
		require.NoError(rt, err)
		again, err := lanewayconfig.Parse(out, lanewayconfig.LoadOptions{LookupEnv: envMap()})
		require.NoError(rt, err, "%s", out)
		requireSameConfig(rt, c, again)
		require.Equal(rt, c.LanesFingerprint(), again.LanesFingerprint())
	})
}

func genConfig(t *rapid.T) *lanewayconfig.Config {
	c := lanewayconfig.Default()
	c.Name = rapid.StringMatching(`[A-Za-z][A-Za-z0-9_-]{0,12}`).Draw(t, "name")
	c.CommandProcessing = rapid.SampledFrom([]string{"sync", "async"}).Draw(t, "command_processing")
	c.Databases["default"] = rapid.SampledFrom([]lanewayconfig.Database{
		{Provider: "sqlite", URL: "sqlite://laneway.db"},
		{Provider: "sqlite", URL: ":memory:"},
		{Provider: "sqlite", URL: "/var/lib/x.db"},
		{Provider: "postgres", URL: "postgres://u:p@h:5432/db?sslmode=disable"},
	}).Draw(t, "database")
	c.Brokers["default"] = rapid.SampledFrom([]lanewayconfig.Broker{
		{Provider: "embedded", URL: "redis://127.0.0.1:6379/0", MinReplicasTimeoutMS: 1000},
		{Provider: "embedded", URL: "redis://127.0.0.1:6379/0", Listen: "127.0.0.1:6380", MinReplicasTimeoutMS: 1},
		{Provider: "redis", URL: "rediss://:pw@cache:6380/3", TLSServerName: "cache.internal", MinReplicasTimeoutMS: 1000},
		{Provider: "redis", URL: "redis+sentinel://u:pw@s1:26379,s2:26379/mymaster/2", MinReplicasAcked: 1, MinReplicasTimeoutMS: 250},
	}).Draw(t, "broker")
	s := &c.Server
	s.MessagesPerTick = rapid.IntRange(1, 100_000).Draw(t, "messages_per_tick")
	ss := &s.StreamSubscription
	ss.BlockingTimeoutMS = rapid.IntRange(1, 600_000).Draw(t, "blocking_timeout_ms")
	ss.MaxRetries = rapid.IntRange(1, 100).Draw(t, "max_retries")
	ss.RetryDelaySeconds = rapid.Float64Range(0, 3600).Draw(t, "retry_delay_seconds")
	ss.EnableDLQ = rapid.Bool().Draw(t, "enable_dlq")
	ss.ClaimIdleSeconds = rapid.Float64Range(0.001, 86400).Draw(t, "claim_idle_seconds")
	ss.Concurrency = rapid.IntRange(1, 256).Draw(t, "concurrency")
	ss.DLQRetentionHours = rapid.Float64Range(0, 10_000).Draw(t, "dlq_retention_hours")
	ss.ShutdownTimeoutSeconds = rapid.Float64Range(0.001, 3600).Draw(t, "shutdown_timeout_seconds")
	pl := &s.PriorityLanes
	pl.Enabled = rapid.Bool().Draw(t, "enabled")
	pl.Threshold = rapid.IntRange(-1000, 1000).Draw(t, "threshold")
	pl.BackfillSuffix = rapid.StringMatching(`[a-z][a-z0-9_-]{0,10}`).Filter(func(s string) bool {
		return !strings.EqualFold(s, "dlq")
	}).Draw(t, "backfill_suffix")
	pl.Propagate = rapid.Bool().Draw(t, "propagate")
	pl.BackfillConcurrency = rapid.IntRange(1, ss.Concurrency).Draw(t, "backfill_concurrency")
	pl.MinBackfillShare = rapid.Float64Range(0, 0.999).Draw(t, "min_backfill_share")
	pl.BackfillNice = rapid.IntRange(0, 19).Draw(t, "backfill_nice")
	s.HTTP.Listen = rapid.SampledFrom([]string{"", "127.0.0.1:9464", ":0", "[::1]:9000"}).Draw(t, "listen")
	o := &c.Outbox
	o.BatchSize = rapid.IntRange(1, 10_000).Draw(t, "batch_size")
	o.TickIntervalMS = rapid.IntRange(1, 1000).Draw(t, "tick_interval_ms")
	o.MaxTickIntervalMS = rapid.IntRange(o.TickIntervalMS, 60_000).Draw(t, "max_tick_interval_ms")
	o.LeaseSeconds = rapid.Float64Range(0.001, 3600).Draw(t, "lease_seconds")
	o.Retry.MaxAttempts = rapid.IntRange(1, 50).Draw(t, "max_attempts")
	o.Retry.BaseDelaySeconds = rapid.Float64Range(0, 60).Draw(t, "base_delay_seconds")
	o.Retry.MaxBackoffSeconds = rapid.Float64Range(o.Retry.BaseDelaySeconds, 3600).Draw(t, "max_backoff_seconds")
	o.Retry.Jitter = rapid.Bool().Draw(t, "jitter")
	o.Cleanup.PublishedRetentionHours = rapid.Float64Range(0.001, 10_000).Draw(t, "published_retention_hours")
	o.Cleanup.AbandonedRetentionHours = rapid.Float64Range(0.001, 10_000).Draw(t, "abandoned_retention_hours")
	o.Cleanup.IntervalSeconds = rapid.Float64Range(0.001, 3600).Draw(t, "interval_seconds")
	return c
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// docs/configuration.md shows the output of TOML() for the defaults; keep
// the two in step.
func TestDocsShowDefaultTOML(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(doc), "### The full file with every default")
	require.True(t, ok)
	_, block, ok := strings.Cut(after, "```toml\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	out, err := lanewayconfig.Default().TOML()
	require.NoError(t, err)
	require.Equal(t, block, string(out))
}
