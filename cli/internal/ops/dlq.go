package ops

import (
	"context"
	"encoding/json"

	"github.com/laneway/laneway/cli/internal/dlq"
	"github.com/laneway/laneway/internal/envelope"
)

// DLQList is `laneway dlq list --json`: the streams looked at, their total
// depth, how many entries the filter matched, and the entries shown.
type DLQList struct {
	Streams []dlq.Stream `json:"streams"`
	Total   int64        `json:"total"`
	Matched int64        `json:"matched"`
	Entries []dlq.Entry  `json:"entries"`
}

// ListDLQ lists DLQ entries (never nil slices, so JSON shows []).
func ListDLQ(ctx context.Context, m *dlq.Manager, p dlq.ListParams) (DLQList, error) {
	res, err := m.List(ctx, p)
	if err != nil {
		return DLQList{}, err
	}
	out := DLQList{Streams: res.Streams, Total: res.Total, Matched: res.Matched, Entries: res.Entries}
	if out.Streams == nil {
		out.Streams = []dlq.Stream{}
	}
	if out.Entries == nil {
		out.Entries = []dlq.Entry{}
	}
	return out, nil
}

// DLQEntry is `laneway dlq inspect --json`: one entry's failure metadata,
// where a replay would send it, and its payload (the envelope without
// "_dlq_metadata": JSON when it is JSON, else the text).
type DLQEntry struct {
	DLQStream      string               `json:"dlq_stream"`
	DLQID          string               `json:"dlq_id"`
	Metadata       envelope.DLQMetadata `json:"metadata"`
	Type           string               `json:"type"`
	MessageID      string               `json:"message_id"`
	Raw            bool                 `json:"raw"`
	OriginalStream string               `json:"original_stream"`
	// ReplayTarget is the stream a replay to the original lane publishes
	// to; ReplayProblem says why there is none.
	ReplayTarget  string `json:"replay_target,omitempty"`
	ReplayProblem string `json:"replay_problem,omitempty"`
	// Problem says why the entry cannot be read (no payload then).
	Problem string `json:"problem,omitempty"`
	Payload any    `json:"payload,omitempty"`

	// Entry is the entry as read, for text output.
	Entry dlq.Entry `json:"-"`
}

// InspectDLQ finds one entry by id (in stream, when set).
func InspectDLQ(ctx context.Context, m *dlq.Manager, id, stream string) (DLQEntry, error) {
	e, err := m.Find(ctx, id, stream)
	if err != nil {
		return DLQEntry{}, err
	}
	out := DLQEntry{
		DLQStream: e.Stream, DLQID: e.ID, Metadata: e.Meta, Type: e.Type, MessageID: e.MessageID, Raw: e.Raw,
		OriginalStream: e.OriginalStream(), Problem: e.Problem, Entry: e,
	}
	if target, err := m.TargetOf(e, dlq.ToOriginal); err == nil {
		out.ReplayTarget = target
	} else {
		out.ReplayProblem = err.Error()
	}
	switch {
	case e.Problem != "":
	case !e.Raw && json.Valid(e.Payload):
		out.Payload = json.RawMessage(e.Payload)
	default:
		out.Payload = string(e.Payload)
	}
	return out, nil
}

// Replayed is `laneway dlq replay --json`.
type Replayed struct {
	DLQStream string `json:"dlq_stream"`
	DLQID     string `json:"dlq_id"`
	Target    string `json:"target"`
	NewID     string `json:"new_id"`
}

// ReplayDLQ replays one entry.
func ReplayDLQ(ctx context.Context, m *dlq.Manager, p dlq.ReplayParams) (Replayed, error) {
	r, err := m.Replay(ctx, p)
	if err != nil {
		return Replayed{}, err
	}
	return Replayed{DLQStream: r.Entry.Stream, DLQID: r.Entry.ID, Target: r.Target, NewID: r.NewID}, nil
}

// ReplayedAll is `laneway dlq replay-all --json`.
type ReplayedAll struct {
	DLQStream string           `json:"dlq_stream"`
	Replayed  int64            `json:"replayed"`
	Targets   map[string]int64 `json:"targets"`
	Skipped   []Skipped        `json:"skipped"`
}

// Skipped is an entry a replay-all left in its DLQ, and why.
type Skipped struct {
	DLQID   string `json:"dlq_id"`
	Problem string `json:"problem"`
}

// ReplayAllDLQ replays every entry of one DLQ stream.
func ReplayAllDLQ(ctx context.Context, m *dlq.Manager, stream string, to dlq.Target) (ReplayedAll, error) {
	res, err := m.ReplayAll(ctx, stream, to)
	out := ReplayedAll{DLQStream: res.Stream.Name, Replayed: res.Replayed, Targets: res.Targets, Skipped: []Skipped{}}
	if out.Targets == nil {
		out.Targets = map[string]int64{}
	}
	for _, e := range res.Skipped {
		out.Skipped = append(out.Skipped, Skipped{DLQID: e.ID, Problem: e.Problem})
	}
	return out, err
}

// Purged is `laneway dlq purge --json`.
type Purged struct {
	DLQStream string `json:"dlq_stream"`
	Purged    int64  `json:"purged"`
}

// PurgeDLQ deletes every entry of one DLQ stream.
func PurgeDLQ(ctx context.Context, m *dlq.Manager, stream string) (Purged, error) {
	s, n, err := m.Purge(ctx, stream)
	return Purged{DLQStream: s.Name, Purged: n}, err
}
