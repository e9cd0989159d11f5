package lanewayconfig

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/internal/protean"
	"github.com/laneway/laneway/internal/redisurl"
)

// Validate checks every value and returns a *ValidationError listing all
// problems, or nil. Load and Parse call it; call it again after changing a
// Config in code.
func (c *Config) Validate() error {
	v := validator{c: c}
	v.run()
	if len(v.problems) > 0 {
		return &ValidationError{Source: c.source, Problems: v.problems}
	}
	return nil
}

type validator struct {
	c        *Config
	skip     map[string]bool // paths the decoder already reported
	problems []Problem
}

// add records a problem at path unless the decoder already reported one
// there (the field then holds its default, which says nothing).
func (v *validator) add(path string, value any, format string, args ...any) {
	if v.skip[path] {
		return
	}
	v.problems = append(v.problems, Problem{
		Path:  withOrigin(v.c.origins, path),
		Value: formatValue(value),
		Msg:   fmt.Sprintf(format, args...),
	})
}

func formatValue(value any) string {
	switch x := value.(type) {
	case string:
		return strconv.Quote(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func (v *validator) run() {
	c := v.c
	v.name("name", c.Name)
	v.oneOf("command_processing", c.CommandProcessing, CommandProcessingSync, CommandProcessingAsync)

	if _, ok := c.Databases[DefaultEntry]; !ok {
		v.add("databases."+DefaultEntry, nil, "missing: the engine uses the database entry %q", DefaultEntry)
	}
	for _, name := range sortedNames(c.Databases) {
		v.database(joinPath("databases", name), c.Databases[name])
	}
	if _, ok := c.Brokers[DefaultEntry]; !ok {
		v.add("brokers."+DefaultEntry, nil, "missing: the engine uses the broker entry %q", DefaultEntry)
	}
	for _, name := range sortedNames(c.Brokers) {
		v.broker(joinPath("brokers", name), c.Brokers[name])
	}

	s := c.Server
	if s.DefaultSubscriptionType != SubscriptionTypeStream {
		v.add("server.default_subscription_type", s.DefaultSubscriptionType,
			"must be %q, the only subscription type Laneway implements", SubscriptionTypeStream)
	}
	v.atLeast("server.messages_per_tick", s.MessagesPerTick, 1)
	v.oneOf("server.stream_naming", s.StreamNaming, StreamNamingLaneway, StreamNamingProtean)
	v.partitions("server.partitions", s.Partitions)
	for _, cat := range sortedNames(s.CategoryPartitions) {
		v.partitions(joinPath("server.category_partitions", cat), s.CategoryPartitions[cat])
	}
	if s.StreamNaming == StreamNamingProtean && !v.skip["name"] {
		v.proteanName("name", c.Name)
	}
	for _, name := range sortedNames(c.Handlers) {
		v.consumerGroup(joinPath(joinPath("handlers", name), "consumer_group"), c.Handlers[name].ConsumerGroup)
	}

	ss := s.StreamSubscription
	const sp = "server.stream_subscription."
	v.atLeast(sp+"blocking_timeout_ms", ss.BlockingTimeoutMS, 1)
	v.durationMS(sp+"blocking_timeout_ms", ss.BlockingTimeoutMS)
	v.atLeast(sp+"max_retries", ss.MaxRetries, 1)
	v.duration(sp+"retry_delay_seconds", ss.RetryDelaySeconds, time.Second, false)
	v.duration(sp+"claim_idle_seconds", ss.ClaimIdleSeconds, time.Second, true)
	v.atLeast(sp+"concurrency", ss.Concurrency, 1)
	v.duration(sp+"dlq_retention_hours", ss.DLQRetentionHours, time.Hour, false)
	v.duration(sp+"shutdown_timeout_seconds", ss.ShutdownTimeoutSeconds, time.Second, true)
	v.duration(sp+"handler_timeout_seconds", ss.HandlerTimeoutSeconds, time.Second, false)

	pl := s.PriorityLanes
	const lp = "server.priority_lanes."
	v.suffix(lp+"backfill_suffix", pl.BackfillSuffix)
	if v.atLeast(lp+"backfill_concurrency", pl.BackfillConcurrency, 1) &&
		ss.Concurrency > 1 && pl.BackfillConcurrency > ss.Concurrency && !v.skip[sp+"concurrency"] {
		v.add(lp+"backfill_concurrency", pl.BackfillConcurrency,
			"must not exceed %sconcurrency = %d (backfill may hold at most that many handler slots)", sp, ss.Concurrency)
	}
	if pl.MinBackfillShare < 0 || pl.MinBackfillShare >= 1 || math.IsNaN(pl.MinBackfillShare) {
		v.add(lp+"min_backfill_share", pl.MinBackfillShare,
			"must be at least 0 and below 1 (0 is strict priority; 0.05 guarantees backfill 5%% while primary is saturated)")
	}
	if pl.BackfillNice < 0 || pl.BackfillNice > 19 {
		v.add(lp+"backfill_nice", pl.BackfillNice,
			"must be 0 to 19 (nice levels below the process's priority for backfill handler threads; 0 turns it off)")
	}
	if r := pl.BackfillRatePerSecond; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		v.add(lp+"backfill_rate_per_second", r,
			"must be a number of messages per second, at least 0 (0 is unlimited; 500 holds each backfill lane to 500/s across every engine)")
	}
	if t := pl.Governor.PrimaryLatencyTargetMS; t < 0 {
		v.add(lp+"governor.primary_latency_target_ms", t,
			"must be at least 0 (0 turns the governor off; 50 keeps production p99 near 50 ms)")
	} else if t > 0 {
		v.durationMS(lp+"governor.primary_latency_target_ms", t)
	}

	if s.HTTP.Listen != "" {
		v.listen("server.http.listen", s.HTTP.Listen, `"127.0.0.1:9464", or "" to disable`)
	}

	o := c.Outbox
	v.atLeast("outbox.batch_size", o.BatchSize, 1)
	if v.atLeast("outbox.tick_interval_ms", o.TickIntervalMS, 1) {
		v.durationMS("outbox.tick_interval_ms", o.TickIntervalMS)
	}
	if v.atLeast("outbox.max_tick_interval_ms", o.MaxTickIntervalMS, 1) {
		v.durationMS("outbox.max_tick_interval_ms", o.MaxTickIntervalMS)
		if o.MaxTickIntervalMS < o.TickIntervalMS && !v.skip["outbox.tick_interval_ms"] {
			v.add("outbox.max_tick_interval_ms", o.MaxTickIntervalMS,
				"must be at least outbox.tick_interval_ms = %d", o.TickIntervalMS)
		}
	}
	v.duration("outbox.lease_seconds", o.LeaseSeconds, time.Second, true)
	v.atLeast("outbox.retry.max_attempts", o.Retry.MaxAttempts, 1)
	base := v.duration("outbox.retry.base_delay_seconds", o.Retry.BaseDelaySeconds, time.Second, false)
	if v.duration("outbox.retry.max_backoff_seconds", o.Retry.MaxBackoffSeconds, time.Second, false) && base &&
		o.Retry.MaxBackoffSeconds < o.Retry.BaseDelaySeconds {
		v.add("outbox.retry.max_backoff_seconds", o.Retry.MaxBackoffSeconds,
			"must be at least outbox.retry.base_delay_seconds = %s", formatValue(o.Retry.BaseDelaySeconds))
	}
	v.duration("outbox.cleanup.published_retention_hours", o.Cleanup.PublishedRetentionHours, time.Hour, true)
	v.duration("outbox.cleanup.abandoned_retention_hours", o.Cleanup.AbandonedRetentionHours, time.Hour, true)
	v.duration("outbox.cleanup.interval_seconds", o.Cleanup.IntervalSeconds, time.Second, true)
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

//nolint:unparam // a general bound; every bound checked today happens to be 1
func (v *validator) atLeast(path string, n, low int) bool {
	if n < low {
		v.add(path, n, "must be at least %d", low)
		return false
	}
	return true
}

// duration checks a float amount of unit: finite, not negative (or, when
// positive is set, above zero), and small enough for a time.Duration.
func (v *validator) duration(path string, x float64, unit time.Duration, positive bool) bool {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		v.add(path, x, "must be a finite number")
	case positive && x <= 0:
		v.add(path, x, "must be greater than 0")
	case x < 0:
		v.add(path, x, "must not be negative")
	case x*float64(unit) >= math.MaxInt64:
		v.add(path, x, "too large: at most %s", formatValue(math.Floor(float64(math.MaxInt64)/float64(unit))))
	default:
		return true
	}
	return false
}

func (v *validator) durationMS(path string, ms int) {
	if ms > math.MaxInt64/int(time.Millisecond) {
		v.add(path, ms, "too large: at most %d", math.MaxInt64/int(time.Millisecond))
	}
}

func (v *validator) oneOf(path, s string, valid ...string) {
	if !slices.Contains(valid, s) {
		v.add(path, s, "must be %s", quoteOr(valid))
	}
}

func quoteOr(valid []string) string {
	q := make([]string, len(valid))
	for i, s := range valid {
		q[i] = strconv.Quote(s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return "one of " + strings.Join(q, ", ")
}

func (v *validator) name(path, s string) {
	switch {
	case s == "":
		v.add(path, s, "must not be empty (it prefixes every type string, \"<name>.<Event>.v<N>\")")
	case strings.IndexFunc(s, unicode.IsSpace) >= 0:
		v.add(path, s, "must not contain whitespace (it prefixes every type string, \"<name>.<Event>.v<N>\")")
	case strings.Contains(s, "."):
		v.add(path, s, "must not contain '.' (it separates the parts of type strings, \"<name>.<Event>.v<N>\")")
	}
}

// suffix enforces the backfill_suffix rules the reference lacks (its
// defects G11): the suffix is the last part of "<category>:<suffix>".
func (v *validator) suffix(path, s string) {
	const fix = `; use e.g. "backfill"`
	switch {
	case s == "":
		v.add(path, s, "must not be empty (the backfill lane is \"<category>:<suffix>\")"+fix)
	case strings.Contains(s, ":"):
		v.add(path, s, "must not contain ':' (it separates stream name parts)"+fix)
	case strings.IndexFunc(s, unicode.IsSpace) >= 0:
		v.add(path, s, "must not contain whitespace (it becomes part of a Redis stream name)"+fix)
	case strings.EqualFold(s, "dlq"):
		v.add(path, s, "must not be \"dlq\": the backfill lane \"<category>:dlq\" would be the primary lane's dead-letter stream"+fix)
	}
}

func (v *validator) database(path string, db Database) {
	pp, up := path+".provider", path+".url"
	switch db.Provider {
	case DatabaseProviderSQLite:
		v.sqliteURL(up, db.URL)
	case DatabaseProviderPostgres:
		v.postgresURL(up, db.URL)
	default:
		v.add(pp, db.Provider, "unknown provider; valid providers: %q, %q", DatabaseProviderSQLite, DatabaseProviderPostgres)
	}
}

func (v *validator) broker(path string, b Broker) {
	switch b.Provider {
	case BrokerProviderEmbedded, BrokerProviderRedis:
	default:
		v.add(path+".provider", b.Provider, "unknown provider; valid providers: %q, %q", BrokerProviderEmbedded, BrokerProviderRedis)
	}
	// The embedded broker ignores url, but a url that is set must still be
	// valid: switching provider to "redis" must not reveal a bad one.
	v.redisURL(path+".url", b.URL)
	v.brokerTLS(path, b)
	v.replicas(path, b)
	if b.Listen != "" {
		if b.Provider == BrokerProviderRedis {
			v.add(path+".listen", b.Listen, "only the %q broker serves a listen address; remove it for provider %q", BrokerProviderEmbedded, b.Provider)
		} else {
			v.listen(path+".listen", b.Listen, `"127.0.0.1:6380"`)
		}
	}
}

func (v *validator) trimmed(path, s string) bool {
	if s == "" {
		v.add(path, s, "must not be empty")
		return false
	}
	if strings.TrimSpace(s) != s {
		v.add(path, RedactURL(s), "must not have leading or trailing whitespace")
		return false
	}
	return true
}

// sqliteURL accepts what lanewaystore/sqlitestore.Open accepts:
// "sqlite://PATH", a plain path, ":memory:" and "file:" DSNs.
func (v *validator) sqliteURL(path, s string) {
	if !v.trimmed(path, s) {
		return
	}
	const want = `the sqlite provider expects "sqlite://PATH" (e.g. "sqlite://laneway.db"), a file path or ":memory:"`
	if rest, ok := strings.CutPrefix(s, "sqlite://"); ok {
		if rest == "" || rest == "/" {
			v.add(path, s, "missing the database file: %s", want)
		}
		return
	}
	scheme, _, hasScheme := strings.Cut(s, "://")
	switch {
	case hasScheme && (scheme == "postgres" || scheme == "postgresql"):
		v.add(path, s, "%s; for PostgreSQL set provider = %q", want, DatabaseProviderPostgres)
	case hasScheme:
		v.add(path, s, "unsupported scheme %q: %s", scheme, want)
	case strings.HasPrefix(s, "sqlite:"):
		v.add(path, s, "%s (\"sqlite:\" without \"//\" would be taken as a file name)", want)
	}
}

func (v *validator) postgresURL(path, s string) {
	if s == "" {
		v.add(path, s, "required for provider %q: e.g. \"postgres://user:password@host:5432/db?sslmode=disable\"", DatabaseProviderPostgres)
		return
	}
	if !v.trimmed(path, s) {
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		v.add(path, RedactURL(s), "not a valid URL: %s", urlErr(err))
		return
	}
	switch {
	case u.Scheme == "sqlite" || (u.Scheme == "" && !strings.Contains(s, "://")):
		v.add(path, RedactURL(s), "the postgres provider expects a \"postgres://\" or \"postgresql://\" URL; for a SQLite file set provider = %q", DatabaseProviderSQLite)
	case u.Scheme != "postgres" && u.Scheme != "postgresql":
		v.add(path, RedactURL(s), "unsupported scheme %q: the postgres provider expects a \"postgres://\" or \"postgresql://\" URL", u.Scheme)
	case u.Opaque != "":
		v.add(path, RedactURL(s), "expected \"postgres://[user[:password]@]host[:port]/database[?param=value]\"")
	}
}

func (v *validator) redisURL(path, s string) {
	if !v.trimmed(path, s) {
		return
	}
	if IsClusterURL(s) {
		if _, err := ParseClusterURL(s); err != nil {
			v.add(path, RedactURL(s), "%v", err)
		}
		return
	}
	if redisurl.IsSentinel(s) {
		if _, err := redisurl.ParseSentinel(s); err != nil {
			v.add(path, RedactURL(s), "%s", err)
		}
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		v.add(path, RedactURL(s), "not a valid URL: %s", urlErr(err))
		return
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		v.add(path, RedactURL(s), "expected a \"redis://\", \"rediss://\" (TLS) or \"redis+sentinel://\" URL such as %q, or a Redis Cluster URL such as \"redis+cluster://10.0.0.1:7000,10.0.0.2:7000\"", BrokerURLDefault)
		return
	}
	opts, err := redis.ParseURL(s)
	if err != nil {
		v.add(path, RedactURL(s), "%s", strings.TrimPrefix(err.Error(), "redis: "))
		return
	}
	if opts.DB < 0 {
		v.add(path, RedactURL(s), "the database number must not be negative")
	}
}

// urlErr drops the URL from url.Parse's message: it may hold a password.
func urlErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func (v *validator) listen(path, s, example string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.add(path, s, "must be host:port, e.g. %s", example)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(path, s, "port must be a number from 0 to 65535, e.g. %s", example)
		return
	}
	if strings.IndexFunc(host, unicode.IsSpace) >= 0 {
		v.add(path, s, "host must not contain whitespace, e.g. %s", example)
	}
}

// proteanName checks that the domain name gives Protean stream names.
func (v *validator) proteanName(path, s string) {
	if _, err := protean.NormalizedName(s); err != nil {
		v.add(path, s, "%v (server.stream_naming = %q prefixes every stream with it)", err, StreamNamingProtean)
	}
}

// consumerGroup checks a [handlers.NAME] consumer_group; "" keeps the
// handler's own group.
func (v *validator) consumerGroup(path, s string) {
	switch {
	case s == "":
	case strings.IndexFunc(s, unicode.IsSpace) >= 0 || strings.IndexFunc(s, unicode.IsControl) >= 0:
		v.add(path, s, "must not contain whitespace or control characters; use the group name as XINFO GROUPS shows it")
	case len(s) > 255:
		v.add(path, s, "must be at most 255 bytes")
	}
}

func (v *validator) partitions(path string, n int) {
	if n < 1 || n > PartitionsMax {
		v.add(path, n, "must be between 1 and %d (1 = the category is not partitioned); change it only after draining the category's streams", PartitionsMax)
	}
}
