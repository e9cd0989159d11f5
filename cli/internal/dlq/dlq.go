// Package dlq finds, reads, replays and purges the dead-letter streams of a
// domain. It is the logic behind `laneway dlq` (docs/operations.md).
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
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
)

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
	Name     string      `json:"stream"`   // "customer:backfill:dlq"
	Source   string      `json:"source"`   // the lane stream it holds failures of: "customer:backfill"
	Primary  string      `json:"primary"`  // the primary lane of Source: "customer" or "customer:command"
	Category string      `json:"category"` // "customer"
	Lane     lanes.Lane  `json:"lane"`     // primary or backfill
	Class    lanes.Class `json:"kind"`     // event or command
	Depth    int64       `json:"depth"`
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
	return lanes.Naming{}.DLQSource(e.Stream)
}

// Manager operates on the DLQs of one domain. Safe for concurrent use if the
// broker is.
type Manager struct {
	b          lanewaybroker.Broker
	naming     lanes.Naming
	enabled    bool     // lanes are enabled under the current configuration
	categories []string // the domain's aggregate categories, sorted
}

// New returns a Manager for the streams of topo on broker b.
func New(b lanewaybroker.Broker, topo lanes.Topology) *Manager {
	cats := topo.AggregateCategories()
	sort.Strings(cats)
	return &Manager{b: b, naming: topo.Naming(), enabled: topo.Lanes.Enabled, categories: cats}
}

// classify tells what a lane stream name is, when it belongs to one of the
// domain's categories (under any backfill suffix).
func (m *Manager) classify(source string) (Stream, bool) {
	src, ok := m.naming.Classify(m.categories, source)
	if !ok {
		return Stream{}, false
	}
	return Stream{Name: m.naming.DLQ(source), Source: source, Category: src.Category, Primary: src.Primary, Lane: src.Lane, Class: src.Class}, true
}

// expected lists the DLQ streams the current configuration writes to.
func (m *Manager) expected() []Stream {
	var out []Stream
	for _, cat := range m.categories {
		for _, primary := range append(m.naming.EventPartitions(cat), m.naming.CommandPartitions(cat)...) {
			for _, src := range []string{primary, m.naming.Backfill(primary)} {
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
	names, err := m.b.Streams(ctx, m.naming.DLQPattern())
	if err != nil {
		return nil, fmt.Errorf("list DLQ streams: %w", err)
	}
	var out []Stream
	for _, name := range names {
		s, ok := m.classify(m.naming.DLQSource(name))
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
	source := m.naming.DLQSource(strings.TrimSpace(name))
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
	sort.SliceStable(res.Entries, func(i, j int) bool { return lanes.CompareIDs(res.Entries[i].ID, res.Entries[j].ID) < 0 })
	if len(res.Entries) > limit {
		res.Entries = res.Entries[:limit]
	}
	return res, nil
}

var idRE = regexp.MustCompile(`^\d+(-\d+)?$`)

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
