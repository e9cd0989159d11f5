package lanewayconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/BurntSushi/toml"
)

// File names Load looks for, in this order, in the domain directory.
const (
	HiddenFileName = ".domain.toml"
	FileName       = "domain.toml"
)

// EnvVar names the environment variable that selects an overlay when
// LoadOptions.Env is empty.
const EnvVar = "LANEWAY_ENV"

// DefaultEntry is the name of the database and broker entry the engine uses.
// Load always adds it when the file does not define it.
const DefaultEntry = "default"

// Accepted values of enumerated keys.
const (
	CommandProcessingSync  = "sync"
	CommandProcessingAsync = "async"

	DatabaseProviderSQLite   = "sqlite"
	DatabaseProviderPostgres = "postgres"

	BrokerProviderEmbedded = "embedded"
	BrokerProviderRedis    = "redis"

	SubscriptionTypeStream = "stream"

	StreamNamingLaneway = "laneway"
	StreamNamingProtean = "protean"
)

// Defaults. Default returns a Config holding exactly these values.
const (
	NameDefault              = "Laneway"
	CommandProcessingDefault = CommandProcessingSync

	DatabaseProviderDefault = DatabaseProviderSQLite
	DatabaseURLDefault      = "sqlite://laneway.db"
	BrokerProviderDefault   = BrokerProviderEmbedded
	BrokerURLDefault        = "redis://127.0.0.1:6379/0"

	MinReplicasAckedDefault     = 0
	MinReplicasTimeoutMSDefault = 1000

	DefaultSubscriptionTypeDefault = SubscriptionTypeStream
	MessagesPerTickDefault         = 100
	StreamNamingDefault            = StreamNamingLaneway
	PartitionsDefault              = 1
	// PartitionsMax bounds server.partitions and category_partitions: each
	// partition costs every engine one blocking read per handler.
	PartitionsMax = 1024

	BlockingTimeoutMSDefault      = 5000
	MaxRetriesDefault             = 3
	RetryDelaySecondsDefault      = 1.0
	EnableDLQDefault              = true
	ClaimIdleSecondsDefault       = 60.0
	ConcurrencyDefault            = 1
	DLQRetentionHoursDefault      = 0.0
	ShutdownTimeoutSecondsDefault = 30.0

	LanesEnabledDefault        = false
	ThresholdDefault           = 0
	BackfillSuffixDefault      = "backfill"
	PropagateDefault           = true
	BackfillConcurrencyDefault = 1
	MinBackfillShareDefault    = 0.0
	PrimaryReaderDefault       = true
	BackfillYieldDefault       = true
	BackfillShortSliceDefault  = true
	BackfillNiceDefault        = 0
	// BackfillRatePerSecondDefault: no rate limit on the backfill lanes.
	BackfillRatePerSecondDefault = 0.0
	// PrimaryLatencyTargetMSDefault: the governor is off.
	PrimaryLatencyTargetMSDefault = 0

	HTTPListenDefault = "127.0.0.1:9464"

	BatchSizeDefault         = 500
	TickIntervalMSDefault    = 10
	MaxTickIntervalMSDefault = 1000
	LeaseSecondsDefault      = 30.0
	HandOffDefault           = true

	RetryMaxAttemptsDefault       = 5
	RetryBaseDelaySecondsDefault  = 1.0
	RetryMaxBackoffSecondsDefault = 60.0
	RetryJitterDefault            = true

	PublishedRetentionHoursDefault = 168.0
	AbandonedRetentionHoursDefault = 720.0
	CleanupIntervalSecondsDefault  = 60.0
)

// Config is the resolved configuration of one domain: the file, its active
// overlay, substituted variables and defaults. Build one with Default, Load
// or Parse; a Config from Load or Parse has passed Validate.
type Config struct {
	// Name is the domain name; event and command type strings are
	// "<Name>.<Type>.v<N>", so it must not contain '.' or whitespace.
	// Defaults to "Laneway".
	Name string `toml:"name" json:"name"`

	// CommandProcessing is "sync" (the command handler runs in the caller of
	// Process) or "async" (the command travels through the outbox and a
	// lane). Defaults to "sync".
	CommandProcessing string `toml:"command_processing" json:"command_processing"`

	// Databases maps an entry name to a database. The engine uses the entry
	// "default", which Load always fills in. Defaults to
	// {"default": {Provider: "sqlite", URL: "sqlite://laneway.db"}}.
	Databases map[string]Database `toml:"databases" json:"databases"`

	// Brokers maps an entry name to a message broker. The engine uses the
	// entry "default", which Load always fills in. Defaults to
	// {"default": {Provider: "embedded", URL: "redis://127.0.0.1:6379/0"}}.
	Brokers map[string]Broker `toml:"brokers" json:"brokers"`

	// Server configures the engine. Defaults to the defaults of its fields.
	Server Server `toml:"server" json:"server"`

	// Outbox configures the outbox relay. Defaults to the defaults of its
	// fields.
	Outbox Outbox `toml:"outbox" json:"outbox"`

	// Handlers maps a handler name to settings of that handler
	// ([handlers.CustomerProjector]). A name the domain does not define is
	// an error when the engine starts. Defaults to none.
	Handlers map[string]HandlerSettings `toml:"handlers" json:"handlers,omitempty"`

	source  string            // file Load read; "" for Parse and Default
	env     string            // environment selected (LoadOptions.Env or LANEWAY_ENV)
	overlay bool              // an overlay table named env was merged
	origins map[string]string // key path -> overlay that set it, for messages
}

// Database is one [databases.NAME] entry.
type Database struct {
	// Provider is "sqlite" (a file, embedded) or "postgres". Defaults to
	// "sqlite".
	Provider string `toml:"provider" json:"provider"`

	// URL locates the database. sqlite: "sqlite://PATH" ("sqlite://laneway.db"
	// is relative to the working directory, "sqlite:///var/lib/x.db" is
	// absolute), a plain path, ":memory:" or a "file:" DSN. postgres:
	// "postgres://" or "postgresql://" URL, required. Defaults to
	// "sqlite://laneway.db" for sqlite.
	URL string `toml:"url" json:"url"`
}

// ClusterBroker reports whether the default broker is a Redis Cluster (a
// "redis+cluster://" or "rediss+cluster://" URL with provider "redis"),
// whose stream names carry hash tags.
func (c *Config) ClusterBroker() bool {
	b, ok := c.Brokers[DefaultEntry]
	return ok && b.Provider == BrokerProviderRedis && IsClusterURL(b.URL)
}

// Broker is one [brokers.NAME] entry.
type Broker struct {
	// Provider is "embedded" (an in-process server with Redis Streams
	// semantics) or "redis". Defaults to "embedded".
	Provider string `toml:"provider" json:"provider"`

	// URL is a "redis://" or "rediss://" (TLS) URL with optional user,
	// password and database number; a Sentinel URL
	// "redis+sentinel://[user:password@]host1:26379,host2:26379/MASTER/DB"
	// (the engine then follows the master Sentinel names across a
	// failover); or a Redis Cluster URL
	// "redis+cluster://[user:password@]h1:p1,h2:p2,..." ("rediss+cluster://"
	// for TLS) listing one or more of its nodes. The embedded broker
	// ignores it. Defaults to "redis://127.0.0.1:6379/0".
	URL string `toml:"url" json:"url"`

	// Listen, for the embedded broker only, also serves the Redis protocol
	// on this host:port so redis-cli can inspect the streams; "" serves
	// nothing. Defaults to "".
	Listen string `toml:"listen" json:"listen"`

	// TLSCAFile is a PEM file of the certificate authorities that sign the
	// server's certificate, for "rediss://" URLs; "" trusts the system
	// roots. A relative path is relative to the domain.toml directory.
	// Defaults to "".
	TLSCAFile string `toml:"tls_ca_file" json:"tls_ca_file"`

	// TLSCertFile and TLSKeyFile are the PEM client certificate and its
	// private key, for servers that require one (mutual TLS,
	// tls-auth-clients yes); set both or neither. Defaults to "".
	TLSCertFile string `toml:"tls_cert_file" json:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file" json:"tls_key_file"`

	// TLSServerName is the name the server's certificate must carry, when
	// it differs from the URL's host (e.g. connecting by IP address).
	// Defaults to "" (the URL's host).
	TLSServerName string `toml:"tls_server_name" json:"tls_server_name"`

	// MinReplicasAcked, when above 0, makes the outbox relay mark a batch
	// published only after WAIT confirms that many replicas hold it, so a
	// failover cannot lose an event the outbox no longer has. Not
	// supported by the embedded broker. Defaults to 0.
	MinReplicasAcked int `toml:"min_replicas_acked" json:"min_replicas_acked"`

	// MinReplicasTimeoutMS bounds that WAIT, in milliseconds; a batch not
	// acknowledged in time stays unpublished and is retried. Defaults to
	// 1000.
	MinReplicasTimeoutMS int `toml:"min_replicas_timeout_ms" json:"min_replicas_timeout_ms"`
}

// Default returns a Config holding every default. It validates.
func Default() *Config {
	return &Config{
		Name:              NameDefault,
		CommandProcessing: CommandProcessingDefault,
		Databases:         map[string]Database{DefaultEntry: defaultDatabase()},
		Brokers:           map[string]Broker{DefaultEntry: defaultBroker()},
		Server: Server{
			DefaultSubscriptionType: DefaultSubscriptionTypeDefault,
			MessagesPerTick:         MessagesPerTickDefault,
			StreamNaming:            StreamNamingDefault,
			Partitions:              PartitionsDefault,
			StreamSubscription: StreamSubscription{
				BlockingTimeoutMS:      BlockingTimeoutMSDefault,
				MaxRetries:             MaxRetriesDefault,
				RetryDelaySeconds:      RetryDelaySecondsDefault,
				EnableDLQ:              EnableDLQDefault,
				ClaimIdleSeconds:       ClaimIdleSecondsDefault,
				Concurrency:            ConcurrencyDefault,
				DLQRetentionHours:      DLQRetentionHoursDefault,
				ShutdownTimeoutSeconds: ShutdownTimeoutSecondsDefault,
			},
			PriorityLanes: PriorityLanes{
				Enabled:             LanesEnabledDefault,
				Threshold:           ThresholdDefault,
				BackfillSuffix:      BackfillSuffixDefault,
				Propagate:           PropagateDefault,
				BackfillConcurrency: BackfillConcurrencyDefault,
				MinBackfillShare:    MinBackfillShareDefault,
				PrimaryReader:       PrimaryReaderDefault,
				BackfillYield:       BackfillYieldDefault,
				BackfillShortSlice:  BackfillShortSliceDefault,
				BackfillNice:        BackfillNiceDefault,
			},
			HTTP: HTTP{Listen: HTTPListenDefault},
		},
		Outbox: Outbox{
			BatchSize:         BatchSizeDefault,
			TickIntervalMS:    TickIntervalMSDefault,
			MaxTickIntervalMS: MaxTickIntervalMSDefault,
			LeaseSeconds:      LeaseSecondsDefault,
			HandOff:           HandOffDefault,
			Retry: OutboxRetry{
				MaxAttempts:       RetryMaxAttemptsDefault,
				BaseDelaySeconds:  RetryBaseDelaySecondsDefault,
				MaxBackoffSeconds: RetryMaxBackoffSecondsDefault,
				Jitter:            RetryJitterDefault,
			},
			Cleanup: OutboxCleanup{
				PublishedRetentionHours: PublishedRetentionHoursDefault,
				AbandonedRetentionHours: AbandonedRetentionHoursDefault,
				IntervalSeconds:         CleanupIntervalSecondsDefault,
			},
		},
	}
}

func defaultDatabase() Database {
	return Database{Provider: DatabaseProviderDefault, URL: DatabaseURLDefault}
}

func defaultBroker() Broker {
	return Broker{Provider: BrokerProviderDefault, URL: BrokerURLDefault, MinReplicasTimeoutMS: MinReplicasTimeoutMSDefault}
}

// Source returns the file Load read, or "" for a Config from Parse,
// Default, or Load with AllowMissing when no file exists.
func (c *Config) Source() string { return c.source }

// EnvName returns the environment selected by LoadOptions.Env or
// LANEWAY_ENV ("" when none). OverlayApplied tells whether the file had an
// overlay table of that name.
func (c *Config) EnvName() string { return c.env }

// OverlayApplied reports whether an overlay table named EnvName was merged.
// It is false when no environment is selected, when no file was read, and
// when the file defines no overlay at all (see docs/configuration.md).
func (c *Config) OverlayApplied() bool { return c.overlay }

// clone returns a deep copy (maps included).
func (c *Config) clone() *Config {
	cp := *c
	cp.Databases = maps.Clone(c.Databases)
	cp.Brokers = maps.Clone(c.Brokers)
	cp.Handlers = maps.Clone(c.Handlers)
	cp.origins = maps.Clone(c.origins)
	return &cp
}

// Redacted returns a copy whose database and broker URLs have their
// passwords replaced by "xxxxx" (see RedactURL), for printing and logging.
func (c *Config) Redacted() *Config {
	cp := c.clone()
	for k, d := range cp.Databases {
		d.URL = RedactURL(d.URL)
		cp.Databases[k] = d
	}
	for k, b := range cp.Brokers {
		b.URL = RedactURL(b.URL)
		cp.Brokers[k] = b
	}
	return cp
}

// LanesFingerprint returns a short, stable hex digest of the settings that
// decide how messages are routed to and scheduled on lanes: enabled,
// threshold, backfill_suffix, propagate, backfill_concurrency,
// min_backfill_share and stream_subscription.concurrency. An engine records
// it at start, so `laneway doctor` can tell that a running engine has not
// been restarted after one of them changed. Other settings do not change it.
func (c *Config) LanesFingerprint() string {
	l := c.Server.PriorityLanes
	canon := fmt.Sprintf("lanes/v1 enabled=%t threshold=%d suffix=%q propagate=%t backfill_concurrency=%d min_backfill_share=%s concurrency=%d",
		l.Enabled, l.Threshold, l.BackfillSuffix, l.Propagate, l.BackfillConcurrency,
		strconv.FormatFloat(l.MinBackfillShare, 'g', -1, 64), c.Server.StreamSubscription.Concurrency)
	if n := c.Server.StreamNaming; n != "" && n != StreamNamingDefault {
		// Only a non-default scheme is written, so the fingerprint of every
		// configuration that predates the key stays the same.
		canon += " naming=" + n
	}
	// Partitions and the cluster's hash tags rename streams: written only
	// when not the default, for the same reason.
	if p := c.Server.Partitions; p > 1 {
		canon += " partitions=" + strconv.Itoa(p)
	}
	for _, cat := range sortedNames(c.Server.CategoryPartitions) {
		canon += fmt.Sprintf(" partitions[%s]=%d", cat, c.Server.CategoryPartitions[cat])
	}
	if c.ClusterBroker() {
		canon += " cluster=true"
	}
	sum := sha256.Sum256([]byte(canon))
	return hex.EncodeToString(sum[:8])
}

// TOML renders the configuration as a domain.toml holding every key (no
// overlays, variables already substituted). Call Redacted first to hide
// passwords.
func (c *Config) TOML() ([]byte, error) {
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf)
	enc.Indent = ""
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("lanewayconfig: encode TOML: %w", err)
	}
	return dropBareHeaders(buf.Bytes()), nil
}

// dropBareHeaders removes a table header with no keys of its own that is
// directly followed by one of its subtables ("[databases]" before
// "[databases.default]"): the encoder writes it, a person would not.
func dropBareHeaders(b []byte) []byte {
	lines := bytes.Split(b, []byte("\n"))
	out := lines[:0]
	for i, l := range lines {
		if bytes.HasPrefix(l, []byte("[")) && bytes.HasSuffix(l, []byte("]")) && i+1 < len(lines) {
			next := lines[i+1]
			sub := string(bytes.TrimSuffix(l, []byte("]"))) + "."
			if bytes.HasPrefix(next, []byte(sub)) && bytes.HasSuffix(next, []byte("]")) {
				continue
			}
		}
		out = append(out, l)
	}
	return bytes.Join(out, []byte("\n"))
}

// JSON renders the configuration as indented JSON with the same key names
// as the TOML file. Call Redacted first to hide passwords.
func (c *Config) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("lanewayconfig: encode JSON: %w", err)
	}
	return b, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// BlockingTimeout returns BlockingTimeoutMS as a duration.
func (s StreamSubscription) BlockingTimeout() time.Duration {
	return time.Duration(s.BlockingTimeoutMS) * time.Millisecond
}

// RetryDelay returns RetryDelaySeconds as a duration.
func (s StreamSubscription) RetryDelay() time.Duration { return seconds(s.RetryDelaySeconds) }

// ClaimIdle returns ClaimIdleSeconds as a duration.
func (s StreamSubscription) ClaimIdle() time.Duration { return seconds(s.ClaimIdleSeconds) }

// HandlerTimeout returns HandlerTimeoutSeconds as a duration (0: no bound).
func (s StreamSubscription) HandlerTimeout() time.Duration { return seconds(s.HandlerTimeoutSeconds) }

// ShutdownTimeout returns ShutdownTimeoutSeconds as a duration.
func (s StreamSubscription) ShutdownTimeout() time.Duration {
	return seconds(s.ShutdownTimeoutSeconds)
}

// DLQRetention returns DLQRetentionHours as a duration; 0 means keep forever.
func (s StreamSubscription) DLQRetention() time.Duration {
	return seconds(s.DLQRetentionHours * 3600)
}

// TickInterval returns TickIntervalMS as a duration.
func (o Outbox) TickInterval() time.Duration {
	return time.Duration(o.TickIntervalMS) * time.Millisecond
}

// MaxTickInterval returns MaxTickIntervalMS as a duration.
func (o Outbox) MaxTickInterval() time.Duration {
	return time.Duration(o.MaxTickIntervalMS) * time.Millisecond
}

// Lease returns LeaseSeconds as a duration.
func (o Outbox) Lease() time.Duration { return seconds(o.LeaseSeconds) }

// BaseDelay returns BaseDelaySeconds as a duration.
func (r OutboxRetry) BaseDelay() time.Duration { return seconds(r.BaseDelaySeconds) }

// MaxBackoff returns MaxBackoffSeconds as a duration.
func (r OutboxRetry) MaxBackoff() time.Duration { return seconds(r.MaxBackoffSeconds) }

// PublishedRetention returns PublishedRetentionHours as a duration.
func (c OutboxCleanup) PublishedRetention() time.Duration {
	return seconds(c.PublishedRetentionHours * 3600)
}

// AbandonedRetention returns AbandonedRetentionHours as a duration.
func (c OutboxCleanup) AbandonedRetention() time.Duration {
	return seconds(c.AbandonedRetentionHours * 3600)
}

// Interval returns IntervalSeconds as a duration.
func (c OutboxCleanup) Interval() time.Duration { return seconds(c.IntervalSeconds) }
