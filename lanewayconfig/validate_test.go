package lanewayconfig_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewayconfig"
)

// Every invalid document is reported with the key path, the bad value and a
// message saying what is wrong.
func TestParseRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, doc, path, value, msg string
		env                         []string
	}{
		// Unknown keys, with a suggestion.
		{"misspelled table", "[server.priority_lane]\nenabled = true", "server.priority_lane", "", `unknown key; did you mean "server.priority_lanes"?`, nil},
		{"misspelled key", "[server.priority_lanes]\nbakfill_suffix = \"x\"", "server.priority_lanes.bakfill_suffix", `"x"`, `did you mean "server.priority_lanes.backfill_suffix"?`, nil},
		{"table at the wrong level", "[priority_lanes]\nenabled = true", "priority_lanes", "", `did you mean "server.priority_lanes"?`, nil},
		{"key at the wrong level", "[server]\nbatch_size = 5", "server.batch_size", "5", `did you mean "outbox.batch_size"?`, nil},
		{"misspelled top-level table", "[sever.priority_lanes]\nenabled = true", "sever", "", `did you mean "server"?`, nil},
		{"misspelled scalar", `nmae = "x"`, "nmae", `"x"`, `did you mean "name"?`, nil},
		{"unknown table, no suggestion", "[zzz]\nqqq = 1", "zzz", "", "unknown key; an environment overlay is a table of top-level keys", nil},
		{"misspelled entry name", "[databases.defualt]\nprovider = \"sqlite\"", "databases.defualt", "", `did you mean "databases.default"?`, nil},
		{"entry key without entry", "[databases]\nprovider = \"postgres\"", "databases.provider", `"postgres"`, `did you mean "databases.default.provider"?`, nil},
		{"unknown key in an entry", "[brokers.default]\nurll = \"redis://h\"", "brokers.default.urll", `"redis://h"`, `did you mean "brokers.default.url"?`, nil},
		{"misplaced secret is hidden", "[databases.default]\npassword = \"hunter2\"", "databases.default.password", `"xxxxx"`, "unknown key", nil},

		// Wrong types.
		{"string for a boolean", "[server.priority_lanes]\nenabled = \"yes\"", "server.priority_lanes.enabled", `"yes"`, "expected a boolean, got a string", nil},
		{"quoted boolean", "[server.priority_lanes]\nenabled = \"true\"", "server.priority_lanes.enabled", `"true"`, "expected a boolean, got a string; remove the quotes", nil},
		{"float threshold", "[server.priority_lanes]\nthreshold = 0.5", "server.priority_lanes.threshold", "0.5", "expected an integer, got a float", nil},
		{"whole float threshold", "[server.priority_lanes]\nthreshold = -50.0", "server.priority_lanes.threshold", "-50.0", "expected an integer, got a float", nil},
		{"float size", "[outbox]\nbatch_size = 1.5", "outbox.batch_size", "1.5", "expected an integer", nil},
		{"integer for a string", "name = 5", "name", "5", "expected a string, got an integer", nil},
		{"table for a scalar", "[server.messages_per_tick]\nx = 1", "server.messages_per_tick", "", "expected an integer, got a table", nil},
		{"scalar for a table", "server = 5", "server", "5", "expected a table ([server]), got an integer", nil},
		{"array for a number", "[server.stream_subscription]\nretry_delay_seconds = [1, 2]", "server.stream_subscription.retry_delay_seconds", "[1, 2]", "expected a number, got an array", nil},
		{"nan", "[server.stream_subscription]\nretry_delay_seconds = nan", "server.stream_subscription.retry_delay_seconds", "nan", "must be a finite number", nil},
		{"inf", "[outbox]\nlease_seconds = inf", "outbox.lease_seconds", "inf", "must be a finite number", nil},

		// Stream naming and handler settings.
		{"unknown stream naming", "[server]\nstream_naming = \"python\"", "server.stream_naming", `"python"`, `must be one of "laneway", "protean"`, nil},
		{"protean naming with a non-ASCII name", "name = \"Café\"\n[server]\nstream_naming = \"protean\"", "name", `"Café"`, "is not ASCII", nil},
		{"protean naming with a name of separators", "name = \"--\"\n[server]\nstream_naming = \"protean\"", "name", `"--"`, "no letters or digits", nil},
		{"consumer group with a space", "[handlers.CustomerProjector]\nconsumer_group = \"a b\"", "handlers.CustomerProjector.consumer_group", `"a b"`, "must not contain whitespace", nil},
		{"misspelled handler key", "[handlers.CustomerProjector]\nconsumer_gruop = \"g\"", "handlers.CustomerProjector.consumer_gruop", `"g"`, `did you mean "handlers.CustomerProjector.consumer_group"?`, nil},

		// Sizes and ranges.
		{"zero messages_per_tick", "[server]\nmessages_per_tick = 0", "server.messages_per_tick", "0", "must be at least 1", nil},
		{"negative messages_per_tick", "[server]\nmessages_per_tick = -1", "server.messages_per_tick", "-1", "must be at least 1", nil},
		{"zero batch_size", "[outbox]\nbatch_size = 0", "outbox.batch_size", "0", "must be at least 1", nil},
		{"zero concurrency", "[server.stream_subscription]\nconcurrency = 0", "server.stream_subscription.concurrency", "0", "must be at least 1", nil},
		{"zero max_retries", "[server.stream_subscription]\nmax_retries = 0", "server.stream_subscription.max_retries", "0", "must be at least 1", nil},
		{"zero blocking timeout", "[server.stream_subscription]\nblocking_timeout_ms = 0", "server.stream_subscription.blocking_timeout_ms", "0", "must be at least 1", nil},
		{"negative retry delay", "[server.stream_subscription]\nretry_delay_seconds = -1", "server.stream_subscription.retry_delay_seconds", "-1", "must not be negative", nil},
		{"zero claim idle", "[server.stream_subscription]\nclaim_idle_seconds = 0", "server.stream_subscription.claim_idle_seconds", "0", "must be greater than 0", nil},
		{"zero shutdown timeout", "[server.stream_subscription]\nshutdown_timeout_seconds = 0", "server.stream_subscription.shutdown_timeout_seconds", "0", "must be greater than 0", nil},
		{"negative dlq retention", "[server.stream_subscription]\ndlq_retention_hours = -2", "server.stream_subscription.dlq_retention_hours", "-2", "must not be negative", nil},
		{"huge duration", "[outbox]\nlease_seconds = 1e300", "outbox.lease_seconds", "1e+300", "too large", nil},
		{"zero backfill_concurrency", "[server.priority_lanes]\nbackfill_concurrency = 0", "server.priority_lanes.backfill_concurrency", "0", "must be at least 1", nil},
		{"backfill_concurrency above concurrency", "[server.stream_subscription]\nconcurrency = 4\n[server.priority_lanes]\nbackfill_concurrency = 5", "server.priority_lanes.backfill_concurrency", "5", "must not exceed server.stream_subscription.concurrency = 4", nil},
		{"share of 1", "[server.priority_lanes]\nmin_backfill_share = 1", "server.priority_lanes.min_backfill_share", "1", "must be at least 0 and below 1", nil},
		{"negative share", "[server.priority_lanes]\nmin_backfill_share = -0.1", "server.priority_lanes.min_backfill_share", "-0.1", "must be at least 0 and below 1", nil},
		{"backfill_nice above 19", "[server.priority_lanes]\nbackfill_nice = 20", "server.priority_lanes.backfill_nice", "20", "must be 0 to 19", nil},
		{"negative backfill_nice", "[server.priority_lanes]\nbackfill_nice = -1", "server.priority_lanes.backfill_nice", "-1", "must be 0 to 19", nil},
		{"tick above max", "[outbox]\ntick_interval_ms = 100\nmax_tick_interval_ms = 10", "outbox.max_tick_interval_ms", "10", "must be at least outbox.tick_interval_ms = 100", nil},
		{"zero tick", "[outbox]\ntick_interval_ms = 0", "outbox.tick_interval_ms", "0", "must be at least 1", nil},
		{"backoff below base", "[outbox.retry]\nbase_delay_seconds = 10\nmax_backoff_seconds = 5", "outbox.retry.max_backoff_seconds", "5", "must be at least outbox.retry.base_delay_seconds = 10", nil},
		{"zero max_attempts", "[outbox.retry]\nmax_attempts = 0", "outbox.retry.max_attempts", "0", "must be at least 1", nil},
		{"zero lease", "[outbox]\nlease_seconds = 0", "outbox.lease_seconds", "0", "must be greater than 0", nil},
		{"zero published retention", "[outbox.cleanup]\npublished_retention_hours = 0", "outbox.cleanup.published_retention_hours", "0", "must be greater than 0", nil},
		{"zero cleanup interval", "[outbox.cleanup]\ninterval_seconds = 0", "outbox.cleanup.interval_seconds", "0", "must be greater than 0", nil},

		// backfill_suffix (the reference's defect G11).
		{"empty suffix", "[server.priority_lanes]\nbackfill_suffix = \"\"", "server.priority_lanes.backfill_suffix", `""`, `must not be empty`, nil},
		{"suffix with colon", "[server.priority_lanes]\nbackfill_suffix = \"a:b\"", "server.priority_lanes.backfill_suffix", `"a:b"`, `must not contain ':' (it separates stream name parts); use e.g. "backfill"`, nil},
		{"suffix with space", "[server.priority_lanes]\nbackfill_suffix = \"back fill\"", "server.priority_lanes.backfill_suffix", `"back fill"`, "must not contain whitespace", nil},
		{"suffix with surrounding space", "[server.priority_lanes]\nbackfill_suffix = \" backfill\"", "server.priority_lanes.backfill_suffix", `" backfill"`, "must not contain whitespace", nil},
		{"suffix dlq", "[server.priority_lanes]\nbackfill_suffix = \"dlq\"", "server.priority_lanes.backfill_suffix", `"dlq"`, `must not be "dlq"`, nil},
		{"suffix DLQ", "[server.priority_lanes]\nbackfill_suffix = \"DLQ\"", "server.priority_lanes.backfill_suffix", `"DLQ"`, `must not be "dlq"`, nil},

		// Enumerations.
		{"command processing", `command_processing = "parallel"`, "command_processing", `"parallel"`, `must be one of "sync", "async"`, nil},
		{"subscription type", "[server]\ndefault_subscription_type = \"event_store\"", "server.default_subscription_type", `"event_store"`, `must be "stream"`, nil},
		{"database provider", "[databases.default]\nprovider = \"mysql\"", "databases.default.provider", `"mysql"`, `unknown provider; valid providers: "sqlite", "postgres"`, nil},
		{"broker provider", "[brokers.default]\nprovider = \"kafka\"", "brokers.default.provider", `"kafka"`, `unknown provider; valid providers: "embedded", "redis"`, nil},

		// Name.
		{"empty name", `name = ""`, "name", `""`, "must not be empty", nil},
		{"name with space", `name = "My Domain"`, "name", `"My Domain"`, "must not contain whitespace", nil},
		{"name with dot", `name = "a.b"`, "name", `"a.b"`, "must not contain '.'", nil},

		// URLs and addresses.
		{"postgres URL for sqlite", "[databases.default]\nurl = \"postgres://h/db\"", "databases.default.url", `"postgres://h/db"`, `set provider = "postgres"`, nil},
		{"other scheme for sqlite", "[databases.default]\nurl = \"mysql://h/db\"", "databases.default.url", `"mysql://h/db"`, `unsupported scheme "mysql"`, nil},
		{"sqlite without slashes", "[databases.default]\nurl = \"sqlite::memory:\"", "databases.default.url", `"sqlite::memory:"`, `the sqlite provider expects "sqlite://PATH"`, nil},
		{"sqlite without path", "[databases.default]\nurl = \"sqlite://\"", "databases.default.url", `"sqlite://"`, "missing the database file", nil},
		{"postgres without url", "[databases.default]\nprovider = \"postgres\"", "databases.default.url", `""`, `required for provider "postgres"`, nil},
		{"sqlite URL for postgres", "[databases.default]\nprovider = \"postgres\"\nurl = \"sqlite://x.db\"", "databases.default.url", `"sqlite://x.db"`, `expects a "postgres://" or "postgresql://" URL`, nil},
		{"postgres bad port, password hidden", "[databases.default]\nprovider = \"postgres\"\nurl = \"postgres://u:secret@h:abc/db\"", "databases.default.url", `"postgres://u:xxxxx@h:abc/db"`, "not a valid URL: invalid port", nil},
		{"http URL for redis", "[brokers.default]\nprovider = \"redis\"\nurl = \"http://h:6379\"", "brokers.default.url", `"http://h:6379"`, `expected a "redis://", "rediss://" (TLS) or "redis+sentinel://" URL`, nil},
		{"redis bad database", "[brokers.default]\nprovider = \"redis\"\nurl = \"redis://h:6379/x\"", "brokers.default.url", `"redis://h:6379/x"`, `invalid database number: "x"`, nil},
		{"url with spaces", "[brokers.default]\nurl = \" redis://h\"", "brokers.default.url", `" redis://h"`, "leading or trailing whitespace", nil},
		{"listen without port", "[brokers.default]\nlisten = \"localhost\"", "brokers.default.listen", `"localhost"`, "must be host:port", nil},
		{"listen bad port", "[brokers.default]\nlisten = \"127.0.0.1:99999\"", "brokers.default.listen", `"127.0.0.1:99999"`, "port must be a number from 0 to 65535", nil},
		{"listen for redis", "[brokers.default]\nprovider = \"redis\"\nlisten = \"127.0.0.1:6380\"", "brokers.default.listen", `"127.0.0.1:6380"`, `only the "embedded" broker serves a listen address`, nil},
		{"http listen", "[server.http]\nlisten = \"9464\"", "server.http.listen", `"9464"`, "must be host:port", nil},

		// Values set by the applied overlay are reported where they were written.
		{"overlay value", "[production.server.priority_lanes]\nthreshold = 0.5", "production.server.priority_lanes.threshold", "0.5", "expected an integer", []string{"LANEWAY_ENV", "production"}},
		{"overlay range", "[production.server.priority_lanes]\nbackfill_suffix = \"dlq\"", "production.server.priority_lanes.backfill_suffix", `"dlq"`, `must not be "dlq"`, []string{"LANEWAY_ENV", "production"}},
		{"overlay unknown key", "[production.server.priority_lane]\nenabled = true", "production.server.priority_lane", "", `did you mean "production.server.priority_lanes"?`, []string{"LANEWAY_ENV", "production"}},
		{"overlay replaces a table", "[server.priority_lanes]\nenabled = true\n[production.server]\npriority_lanes = 5", "production.server.priority_lanes", "5", "expected a table ([production.server.priority_lanes]), got an integer", []string{"LANEWAY_ENV", "production"}},
		{"overlay misspelled top-level key", "[production.sevrer.priority_lanes]\nenabled = true", "production.sevrer", "", `did you mean "production.server"?`, []string{"LANEWAY_ENV", "production"}},
		// Overlays that are not applied are still checked for unknown keys and literal types.
		{"inactive overlay unknown key", "[staging.server.priority_lanes]\nenabld = true", "staging.server.priority_lanes.enabld", "true", `did you mean "staging.server.priority_lanes.enabled"?`, nil},
		{"inactive overlay reference syntax", "[staging]\nname = \"${1X}\"", "staging.name", `"${1X}"`, `invalid reference "${1X}"`, nil},
		{"inactive overlay type", "[staging.server.priority_lanes]\nthreshold = 0.5", "staging.server.priority_lanes.threshold", "0.5", "expected an integer", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseDoc(tc.doc, tc.env...)
			require.Nil(t, c)
			requireProblem(t, err, tc.path, tc.value, tc.msg)
		})
	}
}

// Documents at the edge of the rules that must be accepted.
func TestParseAccepts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, doc string
		check     func(t *testing.T, c *lanewayconfig.Config)
	}{
		{"empty document", "", func(t *testing.T, c *lanewayconfig.Config) {
			requireSameConfig(t, lanewayconfig.Default(), c)
		}},
		{"negative threshold", "[server.priority_lanes]\nthreshold = -10", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, -10, c.Server.PriorityLanes.Threshold)
		}},
		{"integer for a float key", "[server.stream_subscription]\nretry_delay_seconds = 2", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, 2.0, c.Server.StreamSubscription.RetryDelaySeconds)
		}},
		{"fractional seconds", "[server.stream_subscription]\nretry_delay_seconds = 0.05", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, 50_000_000, int(c.Server.StreamSubscription.RetryDelay()))
		}},
		{"retry delay zero", "[server.stream_subscription]\nretry_delay_seconds = 0", func(t *testing.T, c *lanewayconfig.Config) {
			require.Zero(t, c.Server.StreamSubscription.RetryDelay())
		}},
		{"backfill_concurrency equal to concurrency", "[server.stream_subscription]\nconcurrency = 4\n[server.priority_lanes]\nbackfill_concurrency = 4", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, 4, c.Server.PriorityLanes.BackfillConcurrency)
		}},
		{"backfill_concurrency with concurrency 1", "[server.priority_lanes]\nbackfill_concurrency = 3", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, 3, c.Server.PriorityLanes.BackfillConcurrency)
		}},
		{"share just below 1", "[server.priority_lanes]\nmin_backfill_share = 0.99", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, 0.99, c.Server.PriorityLanes.MinBackfillShare)
		}},
		{"protean naming", "name = \"Customers\"\n[server]\nstream_naming = \"protean\"", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, lanewayconfig.StreamNamingProtean, c.Server.StreamNaming)
			require.NotEqual(t, lanewayconfig.Default().LanesFingerprint(), c.LanesFingerprint(), "a running engine with the other naming reads other streams")
		}},
		{"consumer group of a handler", "[handlers.CustomerProjector]\nconsumer_group = \"protean_customers.CustomerProjector\"", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, map[string]lanewayconfig.HandlerSettings{"CustomerProjector": {ConsumerGroup: "protean_customers.CustomerProjector"}}, c.Handlers)
		}},
		{"handler named like the default entry", "[handlers.Default]\nconsumer_group = \"g\"", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, "g", c.Handlers["Default"].ConsumerGroup)
		}},
		{"http disabled", "[server.http]\nlisten = \"\"", func(t *testing.T, c *lanewayconfig.Config) {
			require.Empty(t, c.Server.HTTP.Listen)
		}},
		{"postgres", "[databases.default]\nprovider = \"postgres\"\nurl = \"postgresql://u:p@db.example:5432/app?sslmode=require\"", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, lanewayconfig.Database{Provider: "postgres", URL: "postgresql://u:p@db.example:5432/app?sslmode=require"}, c.Databases["default"])
		}},
		{"sqlite forms", "[databases.default]\nurl = \"/var/lib/laneway.db\"\n[databases.mem]\nurl = \":memory:\"\n[databases.abs]\nurl = \"sqlite:///tmp/x.db\"\n[databases.dsn]\nurl = \"file:x.db?cache=shared\"", func(t *testing.T, c *lanewayconfig.Config) {
			require.Len(t, c.Databases, 4)
			require.Equal(t, "sqlite", c.Databases["mem"].Provider)
		}},
		{"sqlite url defaults when empty", "[databases.default]\nurl = \"\"", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, lanewayconfig.DatabaseURLDefault, c.Databases["default"].URL)
		}},
		{"redis with TLS and password", "[brokers.default]\nprovider = \"redis\"\nurl = \"rediss://user:pw@cache.example:6380/2\"", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, "redis", c.Brokers["default"].Provider)
		}},
		{"redis url defaults", "[brokers.default]\nprovider = \"redis\"", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, lanewayconfig.BrokerURLDefault, c.Brokers["default"].URL)
		}},
		{"embedded listen", "[brokers.default]\nlisten = \"127.0.0.1:6380\"", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, "127.0.0.1:6380", c.Brokers["default"].Listen)
		}},
		{"default entries are added", "[databases.analytics]\nurl = \"a.db\"\n[brokers.other]\nprovider = \"redis\"", func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, lanewayconfig.Database{Provider: "sqlite", URL: "sqlite://laneway.db"}, c.Databases["default"])
			require.Equal(t, lanewayconfig.Broker{Provider: "embedded", URL: "redis://127.0.0.1:6379/0", MinReplicasTimeoutMS: 1000}, c.Brokers["default"])
		}},
		{"the design's full example", designExample, func(t *testing.T, c *lanewayconfig.Config) {
			require.Equal(t, "Customers", c.Name)
			require.False(t, c.Server.PriorityLanes.Enabled)
			require.Equal(t, 168.0, c.Outbox.Cleanup.PublishedRetentionHours)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, mustParse(t, tc.doc))
		})
	}
}

// All problems are reported at once, in one error.
func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := parseDoc(`
command_processing = "later"
[server]
messages_per_tick = 0
[server.priority_lane]
enabled = true
[server.priority_lanes]
backfill_suffix = "dlq"
threshold = 1.5
[outbox]
batch_size = -1
`)
	ps := problemsOf(t, err)
	require.Equal(t, "server.priority_lanes.threshold,server.priority_lane,command_processing,server.messages_per_tick,server.priority_lanes.backfill_suffix,outbox.batch_size", paths(ps))
	require.Contains(t, err.Error(), "invalid configuration (6 problems):\n  ")
}

// A type error is not followed by a range error computed from the default
// the field kept.
func TestParseNoCascade(t *testing.T) {
	t.Parallel()
	_, err := parseDoc("[server.stream_subscription]\nconcurrency = \"many\"\n[server.priority_lanes]\nbackfill_concurrency = 4")
	ps := problemsOf(t, err)
	require.Equal(t, "server.stream_subscription.concurrency", paths(ps))
}

func TestValidateCodeChanges(t *testing.T) {
	t.Parallel()
	c := lanewayconfig.Default()
	require.NoError(t, c.Validate())

	c.Server.PriorityLanes.BackfillSuffix = "a:b"
	c.Outbox.BatchSize = 0
	delete(c.Databases, "default")
	err := c.Validate()
	requireProblem(t, err, "server.priority_lanes.backfill_suffix", `"a:b"`, `must not contain ':' (it separates stream name parts); use e.g. "backfill"`)
	requireProblem(t, err, "outbox.batch_size", "0", "must be at least 1")
	requireProblem(t, err, "databases.default", "", "missing")
	require.Len(t, problemsOf(t, err), 3)
}

const designExample = `
name = "Customers"
command_processing = "sync"

[databases.default]
provider = "sqlite"
url = "sqlite://laneway.db"

[brokers.default]
provider = "embedded"
url = "redis://127.0.0.1:6379/0"
# listen = "127.0.0.1:6380"

[server]
default_subscription_type = "stream"
messages_per_tick = 100

[server.stream_subscription]
blocking_timeout_ms = 5000
max_retries = 3
retry_delay_seconds = 1
enable_dlq = true
claim_idle_seconds = 60
concurrency = 1

[server.priority_lanes]
enabled = false
threshold = 0
backfill_suffix = "backfill"
propagate = true
backfill_concurrency = 1
min_backfill_share = 0.0

[outbox]
batch_size = 500
tick_interval_ms = 10
max_tick_interval_ms = 1000
[outbox.retry]
max_attempts = 5
base_delay_seconds = 1
max_backoff_seconds = 60
jitter = true
[outbox.cleanup]
published_retention_hours = 168
abandoned_retention_hours = 720

[server.http]
listen = "127.0.0.1:9464"

[production.server.priority_lanes]
enabled = true
`
