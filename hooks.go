package laneway

import (
	"encoding/json"
	"time"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/outbox"
)

// Lane names for Handled.Lane and the per-lane counters of
// SubscriptionStats: the production lane (the category stream) and the
// bulk lane ("<category>:<backfill_suffix>").
const (
	LanePrimary  = "primary"
	LaneBackfill = "backfill"
)

// Handled describes one handler execution, reported to
// EngineOptions.OnHandled after the handler returned (and, on success,
// before the entry is acknowledged).
type Handled struct {
	// Group is the consumer group: the handler's name, or CommandGroup for
	// an async command.
	Group string
	// Stream is the physical stream the entry was read from ("customer" or
	// "customer:backfill"); Lane says which of the two it is.
	Stream string
	Lane   string
	// EntryID is the stream entry id ("1700000000000-0").
	EntryID string
	// Attempt is 1 on the first delivery.
	Attempt int
	// Meta describes the message, as the handler saw it.
	Meta Meta
	// Version is the schema version the message was written with (an
	// upcast event reaches the handler at the registered version).
	Version int
	// Time is when the message was written (zero when its header does
	// not parse).
	Time time.Time
	// Payload is the message's JSON payload as it travelled, before any
	// upcasting.
	Payload json.RawMessage
	// Err is the handler's error; nil on success.
	Err error
}

func handledFrom(group string, m *consumer.Message, prio Priority, err error) Handled {
	md := &m.Envelope.Metadata
	at, _ := time.Parse(time.RFC3339Nano, md.Headers.Time)
	return Handled{Time: at,
		Group: group, Stream: m.Stream, Lane: m.Lane.String(), EntryID: m.EntryID, Attempt: int(m.Attempt),
		Meta:    metaOf(md.Headers.ID, md.Headers.Type, md.Headers.Stream, int(prio), md.Domain.CorrelationID, md.Domain.CausationID),
		Version: md.Domain.Version, Payload: m.Envelope.Data, Err: err,
	}
}

func metaOf(id, typ, stream string, priority int, corr, cause string) Meta {
	return Meta{ID: id, Type: typ, Stream: stream, Priority: Priority(priority), CorrelationID: corr, CausationID: cause}
}

// RelayStats are the outbox relay's counters since the engine started.
type RelayStats struct {
	// Wakeups counts what woke the relay: an in-process commit (Notify),
	// a commit of another process (Listen: PostgreSQL's notification, or
	// SQLite's write-ahead log written and its commit mark moved), the
	// fallback poll timer (Poll).
	Wakeups struct{ Notify, Listen, Poll int64 }
	// Published, Failed and Abandoned count outbox rows.
	Published, Failed, Abandoned int64
	// HandedOff counts the production rows of this process's units of work
	// that the relay published without claiming them: they were leased to
	// it at insert and handed over in memory (docs/architecture.md).
	HandedOff int64
	// FoundAppended counts outbox rows that an earlier attempt, left
	// unsettled by a relay that died or lost a reply, had already appended:
	// the relay found them in their streams and marked them published
	// without a second copy (docs/RELIABILITY.md).
	FoundAppended int64
	// LeasesEnded counts outbox rows leased to the relay of an engine that
	// stopped (its heartbeat expired) whose lease this relay ended, so they
	// were claimed again at once instead of when the lease ran out.
	LeasesEnded int64
}

func relayStatsFrom(s outbox.Stats) RelayStats {
	var out RelayStats
	out.Wakeups.Notify, out.Wakeups.Listen, out.Wakeups.Poll = s.Wakeups.Notify, s.Wakeups.Listen, s.Wakeups.Poll
	out.Published, out.Failed, out.Abandoned = s.Published, s.Failed, s.Abandoned
	out.HandedOff, out.FoundAppended, out.LeasesEnded = s.HandedOff, s.FoundAppended, s.LeasesEnded
	return out
}

// SubscriptionStats are one subscription's counters (a handler, or the
// command dispatcher, on one category) since the engine started.
type SubscriptionStats struct {
	// Reads counts read calls by kind ("blocking_both",
	// "blocking_primary", "probe", "backfill", "claim"); Entries counts the
	// entries they returned.
	Reads, Entries map[string]int64
	// Handled counts successful handler runs per lane (LanePrimary,
	// LaneBackfill); Failed counts failed ones.
	Handled, Failed map[string]int64
	// Retries counts scheduled retries, DeadLettered the entries moved to a
	// DLQ (or acknowledged away with the DLQ off), DecodeErrors the
	// entries that could not be decoded.
	Retries, DeadLettered, DecodeErrors int64
}

func subscriptionStatsFrom(s consumer.Stats) SubscriptionStats {
	out := SubscriptionStats{
		Reads: map[string]int64{}, Entries: map[string]int64{}, Handled: map[string]int64{}, Failed: map[string]int64{},
		Retries: s.Retries, DeadLettered: s.DeadLettered, DecodeErrors: s.DecodeErrors,
	}
	for k, n := range s.Reads {
		out.Reads[k.String()] = n
	}
	for k, n := range s.Entries {
		out.Entries[k.String()] = n
	}
	for l, n := range s.Handled {
		out.Handled[l.String()] = n
	}
	for l, n := range s.Failed {
		out.Failed[l.String()] = n
	}
	return out
}
