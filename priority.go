package laneway

import (
	"context"

	"github.com/laneway/laneway/internal/lanes"
)

// Priority orders work: higher values are more urgent. Any int is valid;
// the named constants are the values users of the reference system know.
// Messages whose priority is below the configured lane threshold travel
// through the backfill lane when priority lanes are enabled. It parses from
// a name in any case (low, LOW) or an integer, as a flag value
// (Set, Type) and in config files and JSON (UnmarshalText).
type Priority = lanes.Priority

// The named priorities.
const (
	Bulk     Priority = lanes.Bulk
	Low      Priority = lanes.Low
	Normal   Priority = lanes.Normal
	High     Priority = lanes.High
	Critical Priority = lanes.Critical
)

// ParsePriority accepts a name in any case (low, LOW, Bulk) or an integer ("-10").
func ParsePriority(s string) (Priority, error) { return lanes.ParsePriority(s) }

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
	if p, ok := ctx.Value(priorityKey{}).(Priority); ok {
		return p
	}
	return Normal
}
