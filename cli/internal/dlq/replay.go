package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/lanewaybroker"
)

// TargetOf returns the stream a replay of e with target t publishes to, or
// ErrUnreadTarget when nothing would read it under the current
// configuration (the entry would sit there unseen).
func (m *Manager) TargetOf(e Entry, t Target) (string, error) {
	orig := e.OriginalStream()
	s, ok := m.classify(orig)
	if !ok {
		// original_stream names something outside the domain; fall back to
		// the lane the DLQ stream belongs to.
		if s, ok = m.classify(m.naming.DLQSource(e.Stream)); !ok {
			return "", fmt.Errorf("DLQ entry %s: original stream %q is not a stream of this domain", e.ID, orig)
		}
		orig = s.Source
	}
	var target string
	switch t {
	case ToOriginal, "":
		target = orig
	case ToPrimary:
		target = s.Primary
	case ToBackfill:
		target = m.naming.Backfill(s.Primary)
	default:
		return "", fmt.Errorf("--to %q: use original, primary or backfill", t)
	}
	if target == s.Primary {
		return target, nil
	}
	if !m.enabled {
		return "", fmt.Errorf("%w: %s is a backfill lane and priority lanes are disabled in this configuration, so nothing reads it; replay with --to primary, or enable lanes for this environment and restart the engine", ErrUnreadTarget, target)
	}
	if target != m.naming.Backfill(s.Primary) {
		return "", fmt.Errorf("%w: %s is not a lane of the current configuration (backfill_suffix = %q); replay with --to backfill or --to primary", ErrUnreadTarget, target, m.naming.Suffix())
	}
	return target, nil
}

// StreamTarget is TargetOf for the entries of DLQ stream s that carry no
// original_stream of their own (the lane s belongs to).
func (m *Manager) StreamTarget(s Stream, to Target) (string, error) {
	return m.TargetOf(Entry{Stream: s.Name, ID: "of " + s.Name}, to)
}

// ReplayParams replay one entry.
type ReplayParams struct {
	ID     string
	Stream string // optional: the DLQ stream to look in
	To     Target
}

// Replayed reports one replayed entry.
type Replayed struct {
	Entry  Entry
	Target string // the stream it was published to
	NewID  string // its id there
}

// Replay publishes the entry to its target and then deletes it from the DLQ.
func (m *Manager) Replay(ctx context.Context, p ReplayParams) (Replayed, error) {
	e, err := m.Find(ctx, p.ID, p.Stream)
	if err != nil {
		return Replayed{}, err
	}
	if e.Problem != "" {
		return Replayed{}, fmt.Errorf("DLQ entry %s in %s cannot be replayed: %s", e.ID, e.Stream, e.Problem)
	}
	target, err := m.TargetOf(e, p.To)
	if err != nil {
		return Replayed{}, err
	}
	data, err := replayData(e)
	if err != nil {
		return Replayed{}, err
	}
	ids, err := m.b.Publish(ctx, []lanewaybroker.Publication{{Stream: target, Data: data}})
	if err != nil {
		return Replayed{}, fmt.Errorf("replay %s to %s: %w (the entry is still in %s)", e.ID, target, err, e.Stream)
	}
	if _, err := m.b.Delete(ctx, e.Stream, e.ID); err != nil {
		return Replayed{}, fmt.Errorf("replayed %s to %s as %s, but could not delete it from %s: %w (delete it with redis-cli XDEL, or a second replay delivers it twice)", e.ID, target, ids[0], e.Stream, err)
	}
	return Replayed{Entry: e, Target: target, NewID: ids[0]}, nil
}

// ReplayAllResult reports a ReplayAll.
type ReplayAllResult struct {
	Stream   Stream
	Replayed int64
	// Targets counts replayed entries per target stream.
	Targets map[string]int64
	// Skipped lists entries left in the DLQ, with the reason.
	Skipped []Entry
}

// batch is the number of entries per round trip in ReplayAll and Purge.
const batch = 200

// ReplayAll replays every entry that was in the stream when it started,
// oldest first, in batches (publish, then delete). Entries that cannot be
// replayed stay and are reported in Skipped. Entries that fail again while
// it runs land behind the starting point and are not replayed a second time.
func (m *Manager) ReplayAll(ctx context.Context, stream string, to Target) (ReplayAllResult, error) {
	s, err := m.Resolve(ctx, stream)
	if err != nil {
		return ReplayAllResult{}, err
	}
	res := ReplayAllResult{Stream: s, Targets: map[string]int64{}}
	// A target nothing reads is refused for the whole stream at once rather
	// than entry by entry.
	if _, err := m.StreamTarget(s, to); err != nil {
		return res, err
	}
	err = m.walk(ctx, s, func(es []lanewaybroker.Entry) error {
		var pubs []lanewaybroker.Publication
		var ids []string
		for _, raw := range es {
			e := parseEntry(s.Name, raw)
			target := ""
			if e.Problem == "" {
				var terr error
				if target, terr = m.TargetOf(e, to); terr != nil {
					e.Problem = terr.Error()
				}
			}
			var data string
			if e.Problem == "" {
				var derr error
				if data, derr = replayData(e); derr != nil {
					e.Problem = derr.Error()
				}
			}
			if e.Problem != "" {
				res.Skipped = append(res.Skipped, e)
				continue
			}
			pubs = append(pubs, lanewaybroker.Publication{Stream: target, Data: data})
			ids = append(ids, e.ID)
		}
		if len(pubs) == 0 {
			return nil
		}
		if _, err := m.b.Publish(ctx, pubs); err != nil {
			return fmt.Errorf("replay %s: %w (%d replayed before this batch; the batch is still in the DLQ)", s.Name, err, res.Replayed)
		}
		if _, err := m.b.Delete(ctx, s.Name, ids...); err != nil {
			return fmt.Errorf("replayed %d entries of %s but could not delete them from the DLQ: %w (replaying again delivers them twice)", len(ids), s.Name, err)
		}
		for _, p := range pubs {
			res.Targets[p.Stream]++
		}
		res.Replayed += int64(len(ids))
		return nil
	})
	return res, err
}

// Purge deletes every entry that was in the stream when it started and
// returns how many it deleted. Entries added while it runs are kept.
func (m *Manager) Purge(ctx context.Context, stream string) (Stream, int64, error) {
	s, err := m.Resolve(ctx, stream)
	if err != nil {
		return Stream{}, 0, err
	}
	var n int64
	err = m.walk(ctx, s, func(es []lanewaybroker.Entry) error {
		ids := make([]string, len(es))
		for i, e := range es {
			ids[i] = e.ID
		}
		d, err := m.b.Delete(ctx, s.Name, ids...)
		n += d
		return err
	})
	return s, n, err
}

// replayData is what a replay publishes: the payload, addressed to the
// consumer group that failed on it (metadata.extensions, see
// envelope.Metadata.ReplayGroup), so that the other handlers of the stream,
// which handled the original, do not handle it again. Raw entries and
// entries that name no group are re-published as they are.
func replayData(e Entry) (string, error) {
	if e.Raw || e.Meta.ConsumerGroup == "" {
		return string(e.Payload), nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(e.Payload, &top); err != nil {
		return "", fmt.Errorf("payload is not a JSON object: %w", err)
	}
	var meta map[string]json.RawMessage
	if err := json.Unmarshal(top["metadata"], &meta); err != nil || meta == nil {
		return "", fmt.Errorf("payload metadata is not a JSON object")
	}
	var ext map[string]json.RawMessage
	_ = json.Unmarshal(meta["extensions"], &ext) // absent or not an object: start afresh
	if ext == nil {
		ext = map[string]json.RawMessage{}
	}
	group, err := marshal(e.Meta.ConsumerGroup)
	if err != nil {
		return "", err
	}
	ext[envelope.ReplayGroupExtension] = group
	if meta["extensions"], err = marshal(ext); err != nil {
		return "", err
	}
	if top["metadata"], err = marshal(meta); err != nil {
		return "", err
	}
	b, err := marshal(top)
	return string(b), err
}

// marshal encodes without HTML escaping, so replayed payloads keep their
// bytes as the producer wrote them.
func marshal(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// walk calls fn with the entries of s in id order, in batches, visiting at
// most the s.Depth entries present when it started.
func (m *Manager) walk(ctx context.Context, s Stream, fn func([]lanewaybroker.Entry) error) error {
	left := s.Depth
	start := "-"
	for left > 0 {
		es, err := m.b.Range(ctx, s.Name, start, "+", int(min(left, batch)))
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return nil
		}
		if err := fn(es); err != nil {
			return err
		}
		left -= int64(len(es))
		start = "(" + es[len(es)-1].ID
	}
	return nil
}

// parseEntry reads a DLQ entry leniently.
func parseEntry(stream string, raw lanewaybroker.Entry) Entry {
	e := Entry{Stream: stream, ID: raw.ID}
	var top struct {
		Data     json.RawMessage `json:"data"`
		Metadata struct {
			Headers struct {
				ID   string `json:"id"`
				Type string `json:"type"`
			} `json:"headers"`
		} `json:"metadata"`
		Raw       *string         `json:"raw"`
		RawBase64 string          `json:"raw_base64"`
		DLQ       json.RawMessage `json:"_dlq_metadata"`
	}
	if raw.Data == "" {
		e.Problem = "the entry has no data field"
		return e
	}
	if err := json.Unmarshal([]byte(raw.Data), &top); err != nil {
		e.Problem = "the entry is not a JSON object: " + err.Error()
		return e
	}
	e.Type, e.MessageID = top.Metadata.Headers.Type, top.Metadata.Headers.ID
	e.Raw = top.Raw != nil || top.RawBase64 != ""
	if len(top.DLQ) > 0 {
		// Field by field, so one field of an unexpected type (the
		// reference writes failed_at null) does not hide the others.
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(top.DLQ, &fields)
		str := func(k string) string {
			var s string
			if json.Unmarshal(fields[k], &s) == nil {
				return s
			}
			return ""
		}
		e.Meta = envelope.DLQMetadata{
			OriginalStream: str("original_stream"), OriginalID: str("original_id"),
			ConsumerGroup: str("consumer_group"), Consumer: str("consumer"),
			FailedAt: str("failed_at"), FailureReason: str("failure_reason"),
		}
		var n json.Number
		if json.Unmarshal(fields["retry_count"], &n) == nil {
			e.Meta.RetryCount, _ = n.Int64()
		}
		if e.Meta.FailureReason == "" {
			e.Meta.FailureReason = envelope.ReasonNotRecorded
		}
	}
	p, err := envelope.ReplayPayload([]byte(raw.Data))
	if err != nil {
		e.Problem = err.Error()
		return e
	}
	e.Payload = p
	return e
}
