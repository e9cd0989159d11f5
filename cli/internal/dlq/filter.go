package dlq

import (
	"context"
	"strings"

	"github.com/laneway/laneway/lanewaybroker"
)

// Filter selects DLQ entries by what an operator looks for first: the
// handler that failed, words of the failure reason, the message type.
type Filter struct {
	// Handler is the consumer group that dead-lettered the entry (a handler
	// name, or the command dispatcher's group); exact, case-insensitive.
	Handler string
	// Reason is a case-insensitive substring of the failure reason.
	Reason string
	// Type is a case-insensitive substring of the message type
	// ("CustomerRegistered" matches "Customers.CustomerRegistered.v1").
	Type string
}

// IsZero reports whether f keeps every entry.
func (f Filter) IsZero() bool { return f == Filter{} }

// Match reports whether e passes the filter. An unreadable entry's
// problem counts as its reason, since that is why it is in the DLQ.
func (f Filter) Match(e Entry) bool {
	if f.Handler != "" && !strings.EqualFold(f.Handler, e.Meta.ConsumerGroup) {
		return false
	}
	reason := e.Meta.FailureReason
	if e.Problem != "" {
		reason += " " + e.Problem
	}
	if f.Reason != "" && !containsFold(reason, f.Reason) {
		return false
	}
	return f.Type == "" || containsFold(e.Type, f.Type)
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// FilterScanLimit bounds how many entries of one stream a filtered List
// reads, so a filter over a huge DLQ answers in bounded time.
const FilterScanLimit = 10000

type matches struct {
	n       int64
	entries []Entry
}

// filtered reads s oldest first and keeps the first limit entries f
// matches, counting every match within FilterScanLimit entries.
func (m *Manager) filtered(ctx context.Context, s Stream, f Filter, limit int) (matches, error) {
	var out matches
	scan := s
	scan.Depth = min(s.Depth, FilterScanLimit)
	err := m.walk(ctx, scan, func(es []lanewaybroker.Entry) error {
		for _, raw := range es {
			e := parseEntry(s.Name, raw)
			if !f.Match(e) {
				continue
			}
			out.n++
			if len(out.entries) < limit {
				out.entries = append(out.entries, e)
			}
		}
		return nil
	})
	return out, err
}
