package laneway

import (
	"context"

	"github.com/laneway/laneway/lanewayconfig"
)

// Priority orders work: higher values are more urgent. Any int is valid;
// the named constants are the values users of the reference system know.
// Messages whose priority is below the configured lane threshold travel
// through the backfill lane when priority lanes are enabled. It parses from
// a name in any case (low, LOW) or an integer, as a flag value
// (Set, Type) and in config files and JSON (UnmarshalText).
type Priority = lanewayconfig.Priority

// The named priorities, lowest first. With lanes enabled at the default
// threshold (0), Bulk and Low travel on the backfill lane.
const (
	Bulk     Priority = lanewayconfig.Bulk
	Low      Priority = lanewayconfig.Low
	Normal   Priority = lanewayconfig.Normal
	High     Priority = lanewayconfig.High
	Critical Priority = lanewayconfig.Critical
)

// NoPriority is what ParsePriority returns beside its error. It is not a
// priority: Process and EncodeEvent refuse it, so a failed parse whose
// error was dropped cannot silently run at Normal.
const NoPriority = lanewayconfig.NoPriority

// ParsePriority accepts a name in any case (low, LOW, Bulk) or an integer
// ("-10"). On error it returns NoPriority.
func ParsePriority(s string) (Priority, error) { return lanewayconfig.ParsePriority(s) }

type priorityKey struct{}

// WithPriority returns a context whose Process calls, and the events they
// raise, carry priority p unless a call passes an explicit priority option.
// It replaces the reference's processing_priority context manager: nesting
// works because contexts nest, and nothing leaks because a context is a value.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityFrom returns the priority carried by ctx, or Normal when none is set.
func PriorityFrom(ctx context.Context) Priority {
	if p, ok := priorityIn(ctx); ok {
		return p
	}
	return Normal
}

func priorityIn(ctx context.Context) (Priority, bool) {
	p, ok := ctx.Value(priorityKey{}).(Priority)
	return p, ok
}
