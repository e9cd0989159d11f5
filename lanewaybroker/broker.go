// Package lanewaybroker defines the message broker seam: Redis Streams
// semantics (consumer groups, pending entries, delivery counts). The one
// implementation, redisbroker, talks to a real Redis or to the embedded
// in-process server, so production and the embedded default share one code
// path. Every implementation passes brokertest.Exercise.
package lanewaybroker

import (
	"context"
	"errors"
	"time"
)

// ErrNoGroup is returned by group operations when the consumer group (or
// its stream) does not exist.
var ErrNoGroup = errors.New("laneway: consumer group does not exist")

// Publication is one entry to append with XADD. The entry has a single field
// "data" holding Data (the JSON envelope).
type Publication struct {
	Stream string
	Data   string
}

// Entry is one stream entry. Data is the value of field "data". Fields is
// nil when "data" is the entry's only field (every entry Laneway writes);
// otherwise it holds every field as stored, so an entry written by another
// tool can be reported verbatim.
type Entry struct {
	ID     string
	Data   string
	Fields map[string]string
}

// StreamEntries is the part of a read result that came from one stream.
type StreamEntries struct {
	Stream  string
	Entries []Entry
}

// ReadParams is one XREADGROUP call over one or more streams, reading new
// entries (">"). Block 0 means do not block: the call returns at once when
// nothing is available. Block > 0 waits at most that long for an entry on
// any of the streams. (There is deliberately no way to block forever.)
type ReadParams struct {
	Group    string
	Consumer string
	Streams  []string
	Count    int
	Block    time.Duration
	// Batches > 1 sends that many reads of Count in one round trip
	// (pipelined, in order) and returns what they read together, each
	// stream's entries in stream order: a consumer with a backlog waiting
	// reads it with a round trip per Batches reads. Only without Block (a
	// blocked read would hold the ones behind it).
	Batches int
}

// AckParams acknowledges IDs of one stream for one group.
type AckParams struct {
	Stream string
	Group  string
	IDs    []string
}

// PendingParams lists pending entries (XPENDING extended form) between Start
// and End ("-" and "+" for all), optionally of one consumer and at least
// MinIdle idle.
type PendingParams struct {
	Stream   string
	Group    string
	Start    string
	End      string
	Count    int
	Consumer string
	MinIdle  time.Duration
}

// PendingEntry is one entry of a group's pending entries list.
type PendingEntry struct {
	ID         string
	Consumer   string
	Idle       time.Duration
	Deliveries int64
}

// ClaimParams transfers ownership of IDs to Consumer (XCLAIM) when they have
// been idle at least MinIdle. When RetryCount >= 0 the delivery counter is
// set to it and the entry is not counted as a new delivery; otherwise the
// counter is incremented. Idle, when >= 0, sets the entry's idle time (used
// to hand an entry back so another consumer may claim it at once).
type ClaimParams struct {
	Stream     string
	Group      string
	Consumer   string
	MinIdle    time.Duration
	IDs        []string
	RetryCount int64
	Idle       time.Duration
}

// AutoClaimParams claims up to Count entries idle at least MinIdle, scanning
// from Start ("0-0" for the beginning), with XAUTOCLAIM.
type AutoClaimParams struct {
	Stream   string
	Group    string
	Consumer string
	MinIdle  time.Duration
	Start    string
	Count    int
}

// AutoClaimResult holds the claimed entries and the cursor for the next call
// ("0-0" when the scan is complete). Deleted lists pending ids whose entries
// no longer exist (they are removed from the pending list by Redis).
type AutoClaimResult struct {
	Entries []Entry
	Next    string
	Deleted []string
}

// GroupInfo describes one consumer group of a stream. Lag is the number of
// entries not yet delivered to the group; when the server cannot compute it
// (the embedded broker) the implementation derives it.
type GroupInfo struct {
	Name            string
	Consumers       int64
	Pending         int64
	LastDeliveredID string
	Lag             int64
}

// ConsumerInfo describes one consumer of a group.
type ConsumerInfo struct {
	Name    string
	Pending int64
	Idle    time.Duration
}

// Broker is a Redis Streams connection. Safe for concurrent use.
type Broker interface {
	// Publish appends the publications in one pipelined round trip and
	// returns their ids in order. On error none, some or all may have been
	// appended (the outbox relay then retries: delivery is at-least-once).
	Publish(ctx context.Context, pubs []Publication) ([]string, error)
	// EnsureGroup creates group on stream starting at id 0, creating the
	// stream if needed (XGROUP CREATE ... 0 MKSTREAM). An existing group is
	// success.
	EnsureGroup(ctx context.Context, stream, group string) error
	// ReadGroup reads new entries for a consumer. An empty result is not an
	// error. A missing group is ErrNoGroup.
	ReadGroup(ctx context.Context, p ReadParams) ([]StreamEntries, error)
	// Ack acknowledges in one pipelined round trip.
	Ack(ctx context.Context, acks []AckParams) error
	Pending(ctx context.Context, p PendingParams) ([]PendingEntry, error)
	Claim(ctx context.Context, p ClaimParams) ([]Entry, error)
	AutoClaim(ctx context.Context, p AutoClaimParams) (AutoClaimResult, error)

	// Len is XLEN (0 for a missing stream).
	Len(ctx context.Context, stream string) (int64, error)
	// Range is XRANGE start end COUNT count (count <= 0: no limit).
	Range(ctx context.Context, stream, start, end string, count int) ([]Entry, error)
	// Delete is XDEL.
	Delete(ctx context.Context, stream string, ids ...string) (int64, error)
	// TrimMinID is XTRIM MINID (exact): removes entries with ids below minID.
	TrimMinID(ctx context.Context, stream, minID string) (int64, error)
	// Groups is XINFO GROUPS (empty for a missing stream).
	Groups(ctx context.Context, stream string) ([]GroupInfo, error)
	// Consumers is XINFO CONSUMERS.
	Consumers(ctx context.Context, stream, group string) ([]ConsumerInfo, error)
	// DeleteConsumer removes a consumer; it refuses (returns an error) when
	// the consumer still has pending entries, so nothing is orphaned.
	DeleteConsumer(ctx context.Context, stream, group, consumer string) error
	// Streams lists the stream keys matching a glob pattern (SCAN TYPE stream).
	Streams(ctx context.Context, pattern string) ([]string, error)

	// SetKey, GetKeys and DeleteKey hold small string values with a TTL
	// (engine heartbeats). GetKeys returns the keys matching a glob pattern.
	SetKey(ctx context.Context, key, value string, ttl time.Duration) error
	GetKeys(ctx context.Context, pattern string) (map[string]string, error)
	DeleteKey(ctx context.Context, key string) error

	Ping(ctx context.Context) error
	Close() error
}

// ReplicatedPublisher is an optional capability of a Broker, found by type
// assertion: publishing that returns only once the entries reached
// replicas. Redis replicates asynchronously, so an entry the primary
// acknowledged can vanish when a replica is promoted; a caller that must
// not forget an entry (the outbox relay, with min_replicas_acked > 0) keeps
// its own copy until PublishReplicated succeeds.
type ReplicatedPublisher interface {
	// PublishReplicated is Publish followed by WAIT replicas timeout on the
	// same connection. It fails (having possibly appended the entries) when
	// fewer than replicas replicas acknowledged within timeout, or when the
	// broker cannot have replicas (the embedded broker).
	PublishReplicated(ctx context.Context, pubs []Publication, replicas int, timeout time.Duration) ([]string, error)
}

// ReplicaWaiter is an optional capability of a Broker, found by type
// assertion: waiting until the writes the primary holds now have reached
// replicas. The outbox relay uses it for rows it finds already appended by
// an attempt whose wait for replicas never answered.
type ReplicaWaiter interface {
	// WaitReplicated writes a small key of Laneway's own ("laneway:"
	// prefix) and waits with WAIT until replicas replicas acknowledged it,
	// at most timeout. A replica applies the primary's writes in order, so
	// one that acknowledged the key holds every write before it too. It
	// fails as PublishReplicated does.
	WaitReplicated(ctx context.Context, replicas int, timeout time.Duration) error
}

// ErrNotReplicated is wrapped by PublishReplicated's error when the entries
// reached fewer replicas than asked within the timeout.
var ErrNotReplicated = errors.New("laneway: not acknowledged by enough replicas")
