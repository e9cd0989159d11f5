// Package dlq finds, reads, replays and purges the dead-letter streams of a
// domain (DESIGN.md sections 4 and 7). It is the logic behind `laneway dlq`.
//
// Discovery does not depend on the configuration of the moment: the broker
// is scanned for every "<category>:...:dlq" stream of the domain's
// categories, so the DLQs of event handlers, projectors and the command
// dispatcher, of both lanes, are found whether lanes are enabled now or not,
// and whatever backfill suffix was in use when the entries failed.
//
// Replay re-publishes an entry (its envelope without "_dlq_metadata",
// addressed to the handler that failed on it so the stream's other handlers
// skip it) and only then deletes it from the DLQ: a crash in between leaves the entry in
// the DLQ, so a replay can always be repeated; at worst the message is
// delivered twice, which at-least-once handlers tolerate. Replay never
// decodes the payload: an event version that needs an upcaster is upcast by
// the engine when it reads the replayed entry.
package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/lanewaybroker"
)

// Suffix ends every DLQ stream name: "customer:dlq", "customer:backfill:dlq".
const Suffix = ":dlq"

// Errors returned by Manager methods; the CLI turns them into one-line
// messages. Match them with errors.Is.
var (
	// ErrUnknownStream: a --stream that is not a stream of the domain.
	ErrUnknownStream = errors.New("unknown stream")
	// ErrNotFound: no DLQ entry has the id.
	ErrNotFound = errors.New("no such DLQ entry")
	// ErrAmbiguous: the id exists in more than one DLQ stream.
	ErrAmbiguous = errors.New("DLQ entry id is ambiguous")
	// ErrBadID: the id is not a stream id ("<ms>-<seq>").
	ErrBadID = errors.New("not a stream entry id")
	// ErrUnreadTarget: the replay target is a stream no subscription reads
	// under the current configuration (lanes off, or another suffix).
	ErrUnreadTarget = errors.New("replay target is not read by any subscription")
)

// Layout is what the domain reads under the current configuration.
type Layout struct {
	// Categories are the domain's aggregate stream categories ("customer").
	// Their command streams ("customer:command") are covered too.
	Categories []string
	// LanesEnabled and BackfillSuffix come from [server.priority_lanes].
	LanesEnabled   bool
	BackfillSuffix string
}

// Target chooses where Replay sends an entry.
type Target string

const (
	// ToOriginal replays to the lane the entry failed on (the default).
	ToOriginal Target = "original"
	// ToPrimary replays to the primary lane of the entry's stream.
	ToPrimary Target = "primary"
	// ToBackfill replays to the backfill lane of the entry's stream.
	ToBackfill Target = "backfill"
)

// ParseTarget reads a --to value; "" is ToOriginal.
func ParseTarget(s string) (Target, error) {
	switch t := Target(strings.ToLower(strings.TrimSpace(s))); t {
	case "":
		return ToOriginal, nil
	case ToOriginal, ToPrimary, ToBackfill:
		return t, nil
	}
	return "", fmt.Errorf("--to %q: use original, primary or backfill", s)
}

// Stream is one dead-letter stream.
type Stream struct {
	Name     string `json:"stream"`   // "customer:backfill:dlq"
	Source   string `json:"source"`   // the lane stream it holds failures of: "customer:backfill"
	Primary  string `json:"primary"`  // the primary lane of Source: "customer" or "customer:command"
	Category string `json:"category"` // "customer"
	Lane     string `json:"lane"`     // "primary" or "backfill"
	Kind     string `json:"kind"`     // "event" or "command"
	Depth    int64  `json:"depth"`
}

// Entry is one DLQ entry, read leniently: entries written by the reference
// system (no failure_reason, failed_at null) are shown as far as they go.
type Entry struct {
	Stream string               `json:"dlq_stream"`
	ID     string               `json:"dlq_id"`
	Meta   envelope.DLQMetadata `json:"metadata"`
	// Type and MessageID come from the envelope's headers ("" when absent).
	Type      string `json:"type"`
	MessageID string `json:"message_id"`
	// Raw is set for an entry that held no envelope (garbage on the lane):
	// its payload is the original text.
	Raw bool `json:"raw"`
	// Payload is what a replay publishes: the envelope without
	// "_dlq_metadata" (or the raw text). Nil when the entry is unreadable.
	Payload []byte `json:"-"`
	// Problem says why an entry cannot be replayed ("" when it can).
	Problem string `json:"problem,omitempty"`
}

// OriginalStream is the lane stream the entry failed on: its metadata's
// original_stream, or the DLQ name without ":dlq" when that is missing.
func (e Entry) OriginalStream() string {
	if e.Meta.OriginalStream != "" {
		return e.Meta.OriginalStream
	}
	return strings.TrimSuffix(e.Stream, Suffix)
}

// Manager operates on the DLQs of one domain. Safe for concurrent use if the
// broker is.
type Manager struct {
	b lanewaybroker.Broker
	l Layout
}

// New returns a Manager for the domain layout l on broker b.
func New(b lanewaybroker.Broker, l Layout) *Manager {
	l.Categories = append([]string(nil), l.Categories...)
	sort.Strings(l.Categories)
	return &Manager{b: b, l: l}
}

// classify tells what a lane stream name is, when it belongs to one of the
// domain's categories: "customer", "customer:<suffix>", "customer:command",
// "customer:command:<suffix>".
func (m *Manager) classify(source string) (Stream, bool) {
	for _, cat := range m.l.Categories {
		if source != cat && !strings.HasPrefix(source, cat+":") {
			continue
		}
		s := Stream{Name: source + Suffix, Source: source, Category: cat, Primary: cat, Lane: "primary", Kind: "event"}
		rest := strings.TrimPrefix(strings.TrimPrefix(source, cat), ":")
		if rest == "command" || strings.HasPrefix(rest, "command:") {
			s.Kind, s.Primary = "command", cat+":command"
			rest = strings.TrimPrefix(strings.TrimPrefix(rest, "command"), ":")
		}
		if rest != "" {
			if strings.Contains(rest, ":") || rest == "dlq" {
				return Stream{}, false
			}
			s.Lane = "backfill"
		}
		return s, true
	}
	return Stream{}, false
}

// expected lists the DLQ streams the current configuration writes to.
func (m *Manager) expected() []Stream {
	var out []Stream
	for _, cat := range m.l.Categories {
		for _, primary := range []string{cat, cat + ":command"} {
			sources := []string{primary}
			if m.l.BackfillSuffix != "" {
				sources = append(sources, primary+":"+m.l.BackfillSuffix)
			}
			for _, src := range sources {
				if s, ok := m.classify(src); ok {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// Streams returns every DLQ stream of the domain that exists on the broker,
// with its depth, sorted by name.
func (m *Manager) Streams(ctx context.Context) ([]Stream, error) {
	names, err := m.b.Streams(ctx, "*"+Suffix)
	if err != nil {
		return nil, fmt.Errorf("list DLQ streams: %w", err)
	}
	var out []Stream
	for _, name := range names {
		s, ok := m.classify(strings.TrimSuffix(name, Suffix))
		if !ok {
			continue
		}
		if s.Depth, err = m.b.Len(ctx, name); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Resolve turns a --stream value into its DLQ stream. Both the DLQ name
// ("customer:backfill:dlq") and the lane stream ("customer:backfill") are
// accepted. Names of the domain's categories are valid even when the DLQ
// does not exist (its depth is then 0); anything else is ErrUnknownStream,
// with the domain's DLQ streams in the message.
func (m *Manager) Resolve(ctx context.Context, name string) (Stream, error) {
	source := strings.TrimSuffix(strings.TrimSpace(name), Suffix)
	s, ok := m.classify(source)
	if !ok {
		var known []string
		seen := map[string]bool{}
		existing, err := m.Streams(ctx)
		if err != nil {
			return Stream{}, err
		}
		for _, s := range append(m.expected(), existing...) {
			if !seen[s.Name] {
				seen[s.Name] = true
				known = append(known, s.Name)
			}
		}
		sort.Strings(known)
		return Stream{}, fmt.Errorf("%w %q: the DLQ streams of this domain are %s", ErrUnknownStream, name, strings.Join(known, ", "))
	}
	n, err := m.b.Len(ctx, s.Name)
	if err != nil {
		return Stream{}, err
	}
	s.Depth = n
	return s, nil
}

// streamsFor returns the one stream named by name, or every existing DLQ
// stream when name is "".
func (m *Manager) streamsFor(ctx context.Context, name string) ([]Stream, error) {
	if name == "" {
		return m.Streams(ctx)
	}
	s, err := m.Resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	return []Stream{s}, nil
}

// ListParams select entries: of one stream (any form Resolve accepts) or
// of all, oldest first, at most Limit (LimitDefault when <= 0).
type ListParams struct {
	Stream string
	Limit  int
	// Filter keeps only the entries it matches (the zero value keeps all).
	Filter Filter
}

// LimitDefault bounds List when ListParams.Limit is not set.
const LimitDefault = 100

// ListResult holds the streams looked at (with their depths) and the
// entries, oldest first across streams (ordered by DLQ id, the time each
// entry was dead-lettered).
type ListResult struct {
	Streams []Stream
	Entries []Entry
	// Total is the number of entries in Streams (Entries may hold fewer).
	Total int64
	// Matched is the number of entries the filter matched (Total without a
	// filter); with a filter, at most FilterScanLimit entries of each
	// stream are looked at.
	Matched int64
}

// List reads DLQ entries without changing anything.
func (m *Manager) List(ctx context.Context, p ListParams) (ListResult, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = LimitDefault
	}
	streams, err := m.streamsFor(ctx, p.Stream)
	if err != nil {
		return ListResult{}, err
	}
	res := ListResult{Streams: streams}
	for _, s := range streams {
		res.Total += s.Depth
		if s.Depth == 0 {
			continue
		}
		if !p.Filter.IsZero() {
			matched, err := m.filtered(ctx, s, p.Filter, limit)
			if err != nil {
				return ListResult{}, err
			}
			res.Matched += matched.n
			res.Entries = append(res.Entries, matched.entries...)
			continue
		}
		res.Matched += s.Depth
		es, err := m.b.Range(ctx, s.Name, "-", "+", limit)
		if err != nil {
			return ListResult{}, err
		}
		for _, e := range es {
			res.Entries = append(res.Entries, parseEntry(s.Name, e))
		}
	}
	sort.SliceStable(res.Entries, func(i, j int) bool { return idLess(res.Entries[i].ID, res.Entries[j].ID) })
	if len(res.Entries) > limit {
		res.Entries = res.Entries[:limit]
	}
	return res, nil
}

var idRE = regexp.MustCompile(`^[0-9]+(-[0-9]+)?$`)

// Find returns the entry with DLQ id id, in stream (when set) or in any of
// the domain's DLQ streams. An id found in several streams is ErrAmbiguous.
func (m *Manager) Find(ctx context.Context, id, stream string) (Entry, error) {
	id = strings.TrimSpace(id)
	if !idRE.MatchString(id) {
		return Entry{}, fmt.Errorf("%q: %w (want <milliseconds>-<sequence>, as `laneway dlq list` shows)", id, ErrBadID)
	}
	if !strings.Contains(id, "-") {
		id += "-0"
	}
	streams, err := m.streamsFor(ctx, stream)
	if err != nil {
		return Entry{}, err
	}
	var found []Entry
	var where []string
	for _, s := range streams {
		where = append(where, s.Name)
		es, err := m.b.Range(ctx, s.Name, id, id, 1)
		if err != nil {
			return Entry{}, err
		}
		for _, e := range es {
			found = append(found, parseEntry(s.Name, e))
		}
	}
	switch len(found) {
	case 0:
		if len(where) == 0 {
			return Entry{}, fmt.Errorf("%w: %s (the domain's DLQ streams are empty)", ErrNotFound, id)
		}
		return Entry{}, fmt.Errorf("%w: %s is not in %s (see `laneway dlq list`)", ErrNotFound, id, strings.Join(where, ", "))
	case 1:
		return found[0], nil
	}
	var in []string
	for _, f := range found {
		in = append(in, f.Stream)
	}
	return Entry{}, fmt.Errorf("%w: %s exists in %s; pass --stream to choose", ErrAmbiguous, id, strings.Join(in, " and "))
}

// TargetOf returns the stream a replay of e with target t publishes to, or
// ErrUnreadTarget when nothing would read it under the current
// configuration (the entry would sit there unseen).
func (m *Manager) TargetOf(e Entry, t Target) (string, error) {
	orig := e.OriginalStream()
	s, ok := m.classify(orig)
	if !ok {
		// original_stream names something outside the domain; fall back to
		// the lane the DLQ stream belongs to.
		if s, ok = m.classify(strings.TrimSuffix(e.Stream, Suffix)); !ok {
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
		if m.l.BackfillSuffix == "" {
			return "", fmt.Errorf("%w: no backfill_suffix configured", ErrUnreadTarget)
		}
		target = s.Primary + ":" + m.l.BackfillSuffix
	default:
		return "", fmt.Errorf("--to %q: use original, primary or backfill", t)
	}
	if target == s.Primary {
		return target, nil
	}
	if !m.l.LanesEnabled {
		return "", fmt.Errorf("%w: %s is a backfill lane and priority lanes are disabled in this configuration, so nothing reads it; replay with --to primary, or enable lanes for this environment and restart the engine", ErrUnreadTarget, target)
	}
	if target != s.Primary+":"+m.l.BackfillSuffix {
		return "", fmt.Errorf("%w: %s is not a lane of the current configuration (backfill_suffix = %q); replay with --to backfill or --to primary", ErrUnreadTarget, target, m.l.BackfillSuffix)
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
	}
	p, err := envelope.ReplayPayload([]byte(raw.Data))
	if err != nil {
		e.Problem = err.Error()
		return e
	}
	e.Payload = p
	return e
}

// idLess orders stream ids numerically.
func idLess(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	if am != bm {
		return am < bm
	}
	return as < bs
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}
