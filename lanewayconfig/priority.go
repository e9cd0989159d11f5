package lanewayconfig

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Priority orders work: higher values are more urgent. Any int but
// NoPriority is valid; the named constants are the values users of the
// reference system know. With priority lanes enabled, a priority below
// [server.priority_lanes] threshold travels on the backfill lane. It is
// defined here, beside the lane settings, so that every layer (the root
// package as laneway.Priority, the engine's internals, flags and config
// files) shares one type.
type Priority int

// The named priorities.
const (
	Bulk     Priority = -100
	Low      Priority = -50
	Normal   Priority = 0
	High     Priority = 50
	Critical Priority = 100
)

// NoPriority is what ParsePriority returns beside its error. It is not a
// priority: Process and EncodeEvent refuse it, so a failed parse whose error
// was dropped cannot silently run at Normal.
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
