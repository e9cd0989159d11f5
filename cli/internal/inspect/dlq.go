package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/lanewaybroker"
)

// DLQEntry is one dead-letter entry as far as it can be read. Parsing is
// lenient on purpose: entries land in a DLQ precisely because they may be
// malformed, and a tool must still list them.
type DLQEntry struct {
	ID      string               `json:"id"`
	Stream  string               `json:"stream"`
	Type    string               `json:"type"`    // headers.type, "" when unreadable
	Class   string               `json:"kind"`    // EVENT or COMMAND
	Event   string               `json:"event"`   // the type's name part
	Version int                  `json:"version"` // the type's version, 0 when unknown
	Raw     bool                 `json:"raw"`     // not an envelope (garbage kept verbatim)
	Meta    envelope.DLQMetadata `json:"dlq_metadata"`
	// UpcastFix is set for an event whose version this domain cannot bring
	// to the current one: what to do about it ("write an upcaster from v1
	// for CustomerUpdated").
	UpcastFix string `json:"upcast_fix,omitempty"`
}

// dlqShape is the part of a DLQ entry ParseDLQ reads.
type dlqShape struct {
	Metadata *struct {
		Headers struct {
			Type string `json:"type"`
		} `json:"headers"`
		Domain struct {
			Class string `json:"kind"`
		} `json:"domain"`
	} `json:"metadata"`
	DLQ envelope.DLQMetadata `json:"_dlq_metadata"`
}

// ParseDLQ reads one DLQ entry and checks its event version against the
// topology's upcaster chains.
func (t Topology) ParseDLQ(stream string, e lanewaybroker.Entry) DLQEntry {
	out := DLQEntry{ID: e.ID, Stream: stream}
	var sh dlqShape
	if err := json.Unmarshal([]byte(e.Data), &sh); err != nil {
		out.Raw = true
		out.Meta.FailureReason = "(unreadable DLQ entry: " + err.Error() + ")"
		return out
	}
	out.Meta = sh.DLQ
	if out.Meta.FailureReason == "" {
		out.Meta.FailureReason = envelope.ReasonNotRecorded
	}
	if sh.Metadata == nil {
		out.Raw = true // NewDLQRaw: data and metadata are null
		return out
	}
	out.Type, out.Class = sh.Metadata.Headers.Type, sh.Metadata.Domain.Class
	_, name, version, err := envelope.ParseType(out.Type)
	if err != nil {
		return out
	}
	out.Event, out.Version = name, version
	if out.Class == envelope.ClassEvent && t.Upcasts != nil {
		if _, ok := t.Upcasts.EventVersion(name); ok {
			if err := t.Upcasts.CanUpcast(name, version); err != nil {
				out.UpcastFix = upcastFix(name, version, t.Upcasts)
			}
		}
	}
	return out
}

func upcastFix(name string, version int, c Upcasts) string {
	cur, _ := c.EventVersion(name)
	if version > cur {
		return fmt.Sprintf("%s v%d is newer than this code (v%d): deploy the newer code, then replay", name, version, cur)
	}
	if version < 1 {
		return fmt.Sprintf("%s v%d is not a valid version (versions start at v1): purge or repair the entry", name, version)
	}
	return fmt.Sprintf("write an upcaster from v%d for %s (to v%d), then replay", version, name, cur)
}

// Upcasts tells which event versions the domain can bring up to date
// (*laneway.Domain implements it).
type Upcasts interface {
	EventVersion(kind string) (int, bool)
	CanUpcast(kind string, from int) error
}

// DLQSummary is a DLQ stream's depth, its entries grouped by failure
// reason, and its entries of versions no upcaster reaches.
type DLQSummary struct {
	Stream  string        `json:"stream"`
	Depth   int64         `json:"depth"`
	Scanned int           `json:"scanned"` // entries read (at most the limit)
	Reasons []ReasonCount `json:"reasons"`
	Upcast  []UpcastGap   `json:"upcast_gaps"`
}

// ReasonCount is how many scanned entries failed with one reason.
type ReasonCount struct {
	Reason  string   `json:"reason"`
	Count   int      `json:"count"`
	FirstID string   `json:"first_id"`
	Groups  []string `json:"consumer_groups"` // the groups it failed in, sorted
}

// UpcastGap counts entries of one event version that cannot be upcast.
type UpcastGap struct {
	Event   string `json:"event"`
	Version int    `json:"version"`
	Count   int    `json:"count"`
	Fix     string `json:"fix"`
}

// DLQSummaryLimitDefault is how many entries DLQ summarises read per stream.
const DLQSummaryLimitDefault = 10000

// DLQSummaries summarises every DLQ stream of the topology that holds
// entries, reading at most limit entries of each (<= 0: the default).
func (in *Inspector) DLQSummaries(ctx context.Context, limit int) ([]DLQSummary, error) {
	if limit <= 0 {
		limit = DLQSummaryLimitDefault
	}
	out := []DLQSummary{}
	for _, s := range in.topo.DLQStreams() {
		n, err := in.broker.Len(ctx, s)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			continue
		}
		entries, err := in.broker.Range(ctx, s, "-", "+", limit)
		if err != nil {
			return nil, err
		}
		sum := DLQSummary{Stream: s, Depth: n, Scanned: len(entries), Reasons: []ReasonCount{}, Upcast: []UpcastGap{}}
		reasons := map[string]*ReasonCount{}
		gaps := map[string]*UpcastGap{}
		for _, e := range entries {
			d := in.topo.ParseDLQ(s, e)
			r := reasons[d.Meta.FailureReason]
			if r == nil {
				r = &ReasonCount{Reason: d.Meta.FailureReason, FirstID: d.ID, Groups: []string{}}
				reasons[d.Meta.FailureReason] = r
			}
			r.Count++
			if g := d.Meta.ConsumerGroup; g != "" && !slices.Contains(r.Groups, g) {
				r.Groups = append(r.Groups, g)
				sort.Strings(r.Groups)
			}
			if d.UpcastFix != "" {
				k := fmt.Sprintf("%s/%d", d.Event, d.Version)
				g := gaps[k]
				if g == nil {
					g = &UpcastGap{Event: d.Event, Version: d.Version, Fix: d.UpcastFix}
					gaps[k] = g
				}
				g.Count++
			}
		}
		for _, r := range reasons {
			sum.Reasons = append(sum.Reasons, *r)
		}
		sort.Slice(sum.Reasons, func(i, j int) bool {
			a, b := sum.Reasons[i], sum.Reasons[j]
			if a.Count != b.Count {
				return a.Count > b.Count
			}
			return a.Reason < b.Reason
		})
		for _, g := range gaps {
			sum.Upcast = append(sum.Upcast, *g)
		}
		sort.Slice(sum.Upcast, func(i, j int) bool {
			a, b := sum.Upcast[i], sum.Upcast[j]
			if a.Event != b.Event {
				return a.Event < b.Event
			}
			return a.Version < b.Version
		})
		out = append(out, sum)
	}
	return out, nil
}
