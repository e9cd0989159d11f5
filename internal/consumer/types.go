package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// Lane is the priority lane a message came from.
type Lane int

const (
	// Primary is the production lane (the category stream, "customer").
	Primary Lane = iota
	// Backfill is the bulk lane ("customer:backfill").
	Backfill
)

func (l Lane) String() string {
	if l == Backfill {
		return "backfill"
	}
	return "primary"
}

// ReadMode tells how entries were obtained, for stats and observers.
type ReadMode int

const (
	// ReadBlockingBoth is the idle read: one XREADGROUP BLOCK over both lanes.
	ReadBlockingBoth ReadMode = iota + 1
	// ReadBlockingPrimary is a blocking read of the primary lane alone
	// (lanes off, or backfill already holding all the slots it may hold).
	ReadBlockingPrimary
	// ReadProbe is the non-blocking check of primary between backfill messages.
	ReadProbe
	// ReadBackfill is a non-blocking read of backfill alone. The scheduler
	// never blocks on backfill alone; the kind exists so tests can assert it.
	ReadBackfill
	// ReadClaim is an XAUTOCLAIM of entries left by a dead consumer.
	ReadClaim
	numReadModes
)

func (k ReadMode) String() string {
	switch k {
	case ReadBlockingBoth:
		return "blocking_both"
	case ReadBlockingPrimary:
		return "blocking_primary"
	case ReadProbe:
		return "probe"
	case ReadBackfill:
		return "backfill"
	case ReadClaim:
		return "claim"
	}
	return fmt.Sprintf("ReadMode(%d)", int(k))
}

// Outcomes passed to Observer.Handled.
const (
	OutcomeOK    = "ok"
	OutcomeError = "error"
)

// Message is one entry handed to the handler.
type Message struct {
	Stream  string
	EntryID string
	Lane    Lane
	// Attempt is 1 on the first delivery. It comes from Redis's delivery
	// count, so it survives restarts and is never shared between lanes.
	Attempt  int64
	Envelope envelope.Envelope
}

// Observer receives optional hooks (metrics, tracing). Calls come from the
// consumer's goroutines; implementations must be safe for concurrent use
// and fast.
type Observer interface {
	Read(kind ReadMode, n int)
	Handled(lane Lane, outcome string, d time.Duration, m *Message)
	Retried(lane Lane)
	DeadLettered(lane Lane, stream string)
}

// Defaults for Config's zero values: the defaults of domain.toml
// (lanewayconfig), so a consumer built without a file behaves as one built
// from a default file.
const (
	CountDefault           = lanewayconfig.MessagesPerTickDefault
	BlockDefault           = lanewayconfig.BlockingTimeoutMSDefault * time.Millisecond
	MaxRetriesDefault      = lanewayconfig.MaxRetriesDefault
	RetryDelayDefault      = time.Duration(lanewayconfig.RetryDelaySecondsDefault * float64(time.Second))
	ClaimIdleDefault       = time.Duration(lanewayconfig.ClaimIdleSecondsDefault * float64(time.Second))
	ShutdownTimeoutDefault = time.Duration(lanewayconfig.ShutdownTimeoutSecondsDefault * float64(time.Second))
	// ProbeIntervalDefault has no key in domain.toml.
	ProbeIntervalDefault = 2 * time.Millisecond
	// TakeoverGraceDefault and ReclaimGraceDefault are the engine's
	// heartbeat TTL.
	TakeoverGraceDefault = 15 * time.Second
	ReclaimGraceDefault  = 15 * time.Second
)

// Config configures one consumer: one handler (consumer group) on one
// category's lanes.
type Config struct {
	// Group is the consumer group, the handler's name. Required.
	Group string
	// Consumer is this instance's name. Defaults to
	// "<Group>-<hostname>-<pid>-<6 hex>".
	Consumer string
	// Primary is the primary stream, e.g. "customer". Required.
	Primary string
	// Backfill is the backfill stream, e.g. "customer:backfill". Empty turns
	// lanes off: only Primary is read and the backfill stream is never
	// touched. Defaults to lanes off.
	Backfill string
	// Naming names the dead-letter streams. The zero value is the default
	// naming.
	Naming lanes.Naming
	// Count is the number of entries per read. Defaults to CountDefault.
	Count int
	// Block bounds one blocking read. Defaults to BlockDefault.
	Block time.Duration
	// MaxRetries is the total number of handler attempts before the DLQ.
	// Defaults to MaxRetriesDefault.
	MaxRetries int
	// RetryDelay is the wait before the next attempt. Defaults to
	// RetryDelayDefault.
	RetryDelay time.Duration
	// EnableDLQ moves exhausted and undecodable entries to "<stream>:dlq";
	// when false they are logged and acked. Defaults to false (the engine
	// turns it on from domain.toml).
	EnableDLQ bool
	// ClaimIdle is how long an entry must sit idle on another consumer
	// before this one claims it. Defaults to ClaimIdleDefault.
	ClaimIdle time.Duration
	// Concurrency is the number of handler slots. Defaults to 1.
	Concurrency int
	// BackfillConcurrency caps backfill handlers in flight (and is kept below
	// Concurrency so primary always has a slot). Defaults to 1.
	BackfillConcurrency int
	// MinBackfillShare in [0,1) is the share of started messages backfill
	// gets while primary is saturated. Defaults to 0 (strict priority).
	MinBackfillShare float64
	// ProbeInterval is the least time between two non-blocking primary
	// checks while backfill is being worked. Defaults to ProbeIntervalDefault.
	ProbeInterval time.Duration
	// PrimaryReader keeps a blocking read of the primary lane outstanding
	// beside the backfill reads, instead of probing primary between
	// backfill runs (lanes on only; see primaryreader.go).
	PrimaryReader bool
	// BackfillYield pauses each backfill worker, while production entries
	// are arriving, for as long as its handlers ran since its last pause;
	// at concurrency 1 primary may use the pausing worker's slot (lanes on
	// only; see yield.go and lend.go).
	BackfillYield bool
	// BackfillShortSlice runs a backfill handler whose predecessor was
	// CPU-bound, while production entries are arriving, with the shortest
	// time slice the kernel accepts, so that the production path's threads
	// woken on its core preempt it sooner (Linux 6.12+, ignored elsewhere;
	// lanes on only; see slice_linux.go).
	BackfillShortSlice bool
	// BackfillNice, when above 0, runs backfill handlers on OS threads
	// whose nice value is that much above the process's, up to 19 (Linux;
	// see workers.go). 0 runs them like primary handlers.
	BackfillNice int
	// ShutdownTimeout bounds Stop's wait for in-flight handlers before their
	// context is cancelled. Defaults to ShutdownTimeoutDefault.
	ShutdownTimeout time.Duration
	// Decode turns an entry into an envelope; an error sends the entry to
	// the DLQ at once. It runs on the goroutine that read the entry, so it
	// must be safe for concurrent use. Defaults to envelope.Decode of the
	// data field.
	Decode func(e lanewaybroker.Entry) (envelope.Envelope, error)
	// Handle handles one message. Required. Its context is cancelled only
	// when Stop gives up waiting (ShutdownTimeout or Stop's ctx). m is the
	// consumer's own record of the entry, shared with no copy (a copy per
	// message is a third of a small message's allocation): Handle reads it
	// and must not modify it.
	Handle func(ctx context.Context, m *Message) error
	// Outage reports whether a handler error means a dependency (the
	// database) is unreachable rather than that the message failed. It is
	// called on the handler's goroutine, so it may do I/O such as a ping.
	// Such a failure is not an attempt: the entry stays pending with its
	// delivery count, and handlers pause (backoff with jitter, one handler
	// probing at a time) until one succeeds. Defaults to nil: every error is
	// an attempt.
	Outage func(err error) bool
	// Alive, when set, turns on the takeover of dead consumers' entries:
	// it returns a predicate telling whether a consumer name belongs to a
	// running engine (the engine answers from the heartbeat keys). Entries
	// of a consumer it calls dead are claimed at once, not after ClaimIdle,
	// and the consumer is deleted once it holds nothing. Defaults to nil:
	// only the ClaimIdle reclaim takes entries over.
	Alive func(ctx context.Context) (func(consumer string) bool, error)
	// TakeoverGrace is how long takeovers wait after this consumer's broker
	// came back from an outage, so the live engines' heartbeats, which
	// may have expired during it, are written again first. Defaults to
	// TakeoverGraceDefault.
	TakeoverGrace time.Duration
	// ReclaimGrace is how long the ClaimIdle reclaim waits after this
	// consumer's broker came back from an outage. No touch got through
	// during it, so live consumers' entries may look idle until their
	// owners are back, each after its own backoff and a read that may have
	// to time out first: longer than a heartbeat needs. Defaults to
	// ReclaimGraceDefault.
	ReclaimGrace time.Duration
	// StartGrace is how long after Start takeovers and the ClaimIdle
	// reclaim wait. A consumer just started cannot tell whether the broker
	// was unreachable to everyone a moment before: such an outage expires
	// live engines' heartbeats and ages their entries, and their owners
	// need a moment to renew and touch them. Defaults to 0.
	StartGrace time.Duration
	// HandlerTimeout, when positive, bounds one handler run: its context is
	// cancelled after it and the run counts as a failed attempt. Defaults
	// to 0 (no bound).
	HandlerTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer is optional.
	Observer Observer
	// Control, when set, pauses lanes, throttles the backfill and lowers
	// its slots (see Control). Defaults to nil: no controls.
	Control Control
	// OnDeadLetter, when set, is called on the consumer's goroutine after
	// an entry was moved to dlq, or dropped (dlq "") with the DLQ off;
	// reason is its failure reason (tracing). Optional.
	OnDeadLetter func(m *Message, dlq, reason string)
	// Gate, when set, holds this consumer's backfill while another
	// consumer of the gate has primary work (see Gate): the engine gives
	// one to the consumers of a handler on a partitioned category's
	// partitions. Defaults to nil: the lanes of this consumer alone decide.
	Gate *Gate
}

func (c *Config) validateAndDefault() error {
	switch {
	case c.Group == "":
		return errors.New("consumer: Config.Group is required")
	case c.Primary == "":
		return errors.New("consumer: Config.Primary is required")
	case c.Handle == nil:
		return errors.New("consumer: Config.Handle is required")
	case c.Backfill == c.Primary:
		return fmt.Errorf("consumer: Config.Backfill %q equals Primary", c.Backfill)
	case c.Backfill != "" && c.Backfill == c.Naming.DLQ(c.Primary):
		return fmt.Errorf("consumer: Config.Backfill %q collides with the primary DLQ", c.Backfill)
	case c.Count < 0, c.Block < 0, c.MaxRetries < 0, c.RetryDelay < 0, c.ClaimIdle < 0,
		c.Concurrency < 0, c.BackfillConcurrency < 0, c.ProbeInterval < 0, c.ShutdownTimeout < 0,
		c.TakeoverGrace < 0, c.ReclaimGrace < 0, c.StartGrace < 0, c.HandlerTimeout < 0:
		return errors.New("consumer: Config durations and counts must not be negative")
	case c.BackfillNice < 0 || c.BackfillNice > 19:
		return fmt.Errorf("consumer: Config.BackfillNice %d must be in [0,19]", c.BackfillNice)
	case c.MinBackfillShare < 0 || c.MinBackfillShare >= 1:
		return fmt.Errorf("consumer: Config.MinBackfillShare %v must be in [0,1)", c.MinBackfillShare)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Count, CountDefault)
	def(&c.MaxRetries, MaxRetriesDefault)
	def(&c.Concurrency, 1)
	def(&c.BackfillConcurrency, 1)
	defD(&c.Block, BlockDefault)
	defD(&c.RetryDelay, RetryDelayDefault)
	defD(&c.ClaimIdle, ClaimIdleDefault)
	defD(&c.ProbeInterval, ProbeIntervalDefault)
	defD(&c.ShutdownTimeout, ShutdownTimeoutDefault)
	defD(&c.TakeoverGrace, TakeoverGraceDefault)
	defD(&c.ReclaimGrace, ReclaimGraceDefault)
	if c.Decode == nil {
		c.Decode = func(e lanewaybroker.Entry) (envelope.Envelope, error) {
			if _, ok := e.Fields["data"]; !ok && e.Fields != nil {
				return envelope.Envelope{}, errors.New("malformed envelope: entry has no data field")
			}
			return envelope.DecodeString(e.Data)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Stats are the consumer's counters since New.
type Stats struct {
	// Reads counts read calls by kind; Entries the entries they returned.
	Reads   map[ReadMode]int64
	Entries map[ReadMode]int64
	// Handled counts successful handler runs per lane, Failed failed ones.
	Handled map[Lane]int64
	Failed  map[Lane]int64
	// Retries counts scheduled retries; DeadLettered entries moved to a DLQ
	// (or acked away with the DLQ off); DecodeErrors undecodable entries.
	Retries      int64
	DeadLettered int64
	DecodeErrors int64
	// Inline counts the primary entries an idle consumer's primary reader
	// started itself, without the dispatcher's hand-offs.
	Inline int64
}
