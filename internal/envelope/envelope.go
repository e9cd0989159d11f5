// Package envelope encodes and decodes the JSON envelope that travels in the
// "data" field of every stream entry. The checksum is
// byte-compatible with the reference system (Python's json.dumps with
// sort_keys, compact separators and ASCII escaping), so both systems can
// share streams.
package envelope

import "encoding/json"

// Classes of messages: the wire values of metadata.domain.kind.
const (
	ClassEvent   = "EVENT"
	ClassCommand = "COMMAND"
)

// Envelope is the whole entry value. DLQ is present only on DLQ entries.
type Envelope struct {
	Data     json.RawMessage `json:"data"`
	Metadata Metadata        `json:"metadata"`
	DLQ      *DLQMetadata    `json:"_dlq_metadata,omitempty"`
}

// Metadata groups headers, envelope integrity data and domain metadata.
type Metadata struct {
	Headers  Headers   `json:"headers"`
	Envelope Integrity `json:"envelope"`
	Domain   Domain    `json:"domain"`

	// ReplayGroup is set on an entry that `laneway dlq replay` re-published
	// for the one handler (consumer group) that had failed on it. The other
	// groups reading the stream handled the original already, so they skip
	// it instead of handling it twice. It travels as
	// metadata.extensions.laneway_replay_group (extensions is the
	// reference's place for extra attributes); Decode reads it, Encode does
	// not write it (the dlq package of the CLI adds it to the replayed entry).
	ReplayGroup string `json:"-"`

	// Extensions holds what Laneway writes into metadata.extensions; nil
	// when there is nothing to write, so the member stays absent.
	Extensions *Extensions `json:"extensions,omitempty"`
}

// Extensions are Laneway's own members of metadata.extensions, the
// reference's place for attributes it does not model.
type Extensions struct {
	// TraceState is the W3C tracestate that goes with Headers.TraceParent
	// (the reference's traceparent object has no member for it).
	TraceState string `json:"laneway_tracestate,omitempty"`
}

// TraceStateExtension is the metadata.extensions member holding
// Extensions.TraceState.
const TraceStateExtension = "laneway_tracestate"

// ReplayGroupExtension is the metadata.extensions member holding
// Metadata.ReplayGroup.
const ReplayGroupExtension = "laneway_replay_group"

// Headers identify the message. Type is "<Domain>.<Name>.v<N>"; Stream is
// the aggregate instance stream ("customer-42"); Time is RFC 3339 with
// fractional seconds, UTC.
type Headers struct {
	ID     string `json:"id"`
	Time   string `json:"time"`
	Type   string `json:"type"`
	Stream string `json:"stream"`
	// TraceParent is the trace context of the span that wrote the message;
	// nil (and absent from the JSON) when tracing is off. A pointer keeps
	// the envelope, copied along the consume path, one word larger only.
	TraceParent *TraceParent `json:"traceparent,omitempty"`
}

// TraceParent is a W3C traceparent in the shape the reference gives
// metadata.headers.traceparent: an object, not the header string. TraceID
// is 32 lowercase hex digits, ParentID (the span id of the writer) 16.
type TraceParent struct {
	TraceID  string `json:"trace_id"`
	ParentID string `json:"parent_id"`
	Sampled  bool   `json:"sampled"`
}

// Integrity carries the spec version ("1.0") and the payload checksum.
type Integrity struct {
	SpecVersion string `json:"specversion"`
	Checksum    string `json:"checksum"`
}

// Domain is the domain metadata. Version is the event version number
// (the N of the type string); SequenceID is the aggregate version that raised
// the event, "<version>.<n>" for the n-th event of that save.
type Domain struct {
	Class          string `json:"kind"` // ClassEvent or ClassCommand
	StreamCategory string `json:"stream_category"`
	Priority       int    `json:"priority"`
	Version        int    `json:"version"`
	SequenceID     string `json:"sequence_id"`
	CorrelationID  string `json:"correlation_id"`
	CausationID    string `json:"causation_id"`
}

// DLQMetadata is added to an envelope when it is moved to a dead-letter stream.
type DLQMetadata struct {
	OriginalStream string `json:"original_stream"`
	OriginalID     string `json:"original_id"`
	ConsumerGroup  string `json:"consumer_group"`
	Consumer       string `json:"consumer"`
	FailedAt       string `json:"failed_at"`   // RFC 3339, time of the failure
	RetryCount     int64  `json:"retry_count"` // handler attempts made
	FailureReason  string `json:"failure_reason"`
}
