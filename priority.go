package laneway

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Priority orders work: higher values are more urgent. Any int is valid;
// the named constants are the values users of the reference system know.
// Messages whose priority is below the configured lane threshold travel
// through the backfill lane when priority lanes are enabled.
type Priority int

// The named priorities, lowest first. With lanes enabled at the default
// threshold (0), Bulk and Low travel on the backfill lane.
const (
	Bulk     Priority = -100
	Low      Priority = -50
	Normal   Priority = 0
	High     Priority = 50
	Critical Priority = 100
)

// NoPriority is what ParsePriority returns beside its error. It is not a
// priority: Process refuses it, so a failed parse whose error was dropped
// cannot silently run at Normal.
const NoPriority Priority = math.MinInt

var priorityNames = map[Priority]string{
	Bulk: "BULK", Low: "LOW", Normal: "NORMAL", High: "HIGH", Critical: "CRITICAL",
}

// String returns the constant's name (LOW, ...) or the integer for custom
// values ("NONE" for NoPriority).
func (p Priority) String() string {
	if p == NoPriority {
		return "NONE"
	}
	if n, ok := priorityNames[p]; ok {
		return n
	}
	return strconv.Itoa(int(p))
}

// ParsePriority accepts a name in any case (low, LOW, Bulk) or an integer
// ("-10"). On error it returns NoPriority.
func ParsePriority(s string) (Priority, error) {
	t := strings.TrimSpace(s)
	for p, n := range priorityNames {
		if strings.EqualFold(t, n) {
			return p, nil
		}
	}
	if v, err := strconv.Atoi(t); err == nil && Priority(v) != NoPriority {
		return Priority(v), nil
	}
	return NoPriority, fmt.Errorf("invalid priority %q: use one of bulk, low, normal, high, critical or an integer", s)
}

// Set and Type make *Priority usable as a command-line flag value.
func (p *Priority) Set(s string) error {
	v, err := ParsePriority(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Type names the flag value type in help output.
func (p *Priority) Type() string { return "priority" }

// UnmarshalText lets Priority appear in config files and JSON as a name or a number.
func (p *Priority) UnmarshalText(b []byte) error { return p.Set(string(b)) }

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
