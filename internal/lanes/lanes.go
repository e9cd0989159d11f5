// Package lanes owns the vocabulary of priority lanes: the Priority type,
// the routing rule (a priority below the threshold goes to the backfill
// lane), every stream name a domain uses, the topology of a domain under a
// configuration (which streams exist, which consumer groups read them) and
// the arithmetic of stream entry ids.
//
// Nothing else in the module builds a stream name: the engine, the relay,
// the consumers, the metrics and the operator tools all ask a Naming. Names
// follow one scheme today ("customer", "customer:backfill",
// "customer:command", "customer:dlq"); keeping them behind one value lets a
// later scheme (a domain prefix, cluster hash tags) change them in one
// place.
package lanes

import (
	"github.com/laneway/laneway/lanewayconfig"
)

// Priority is the priority type; it lives in lanewayconfig, a public leaf
// package, so that the root package can name it without naming an
// internal type.
type Priority = lanewayconfig.Priority

// The named priorities.
const (
	Bulk     = lanewayconfig.Bulk
	Low      = lanewayconfig.Low
	Normal   = lanewayconfig.Normal
	High     = lanewayconfig.High
	Critical = lanewayconfig.Critical
)

// ParsePriority is lanewayconfig.ParsePriority.
func ParsePriority(s string) (Priority, error) { return lanewayconfig.ParsePriority(s) }

// Lane is one of the two lanes of a primary stream.
type Lane string

// The lanes, as they appear in JSON output and metric labels.
const (
	Primary  Lane = "primary"
	Backfill Lane = "backfill"
)

// Class tells whether a primary stream carries events or commands.
type Class string

// The stream classes, as they appear in JSON output.
const (
	Events   Class = "event"
	Commands Class = "command"
)

// Config is the routing part of [server.priority_lanes].
type Config struct {
	// Enabled routes priorities below Threshold to the backfill lane.
	Enabled bool
	// Threshold: a priority strictly below it goes to backfill.
	Threshold Priority
	// Naming names the streams.
	Naming Naming
}

// FromConfig is the lane configuration of [server.priority_lanes] for the
// streams of domain, named as server.stream_naming says (see NamingFor).
func FromConfig(cfg *lanewayconfig.Config, domain string) (Config, error) {
	n, err := NamingFor(cfg, domain)
	if err != nil {
		return Config{}, err
	}
	pl := cfg.Server.PriorityLanes
	return Config{Enabled: pl.Enabled, Threshold: Priority(pl.Threshold), Naming: n}, nil
}

// ReadPriority is the priority a message read from lane, stamped p, is
// handled under (and so the priority of the work it causes). A backfill
// entry at or above the threshold counts as Threshold-1: a producer that
// picks the lane without writing the priority into the message (Protean
// writes 0 into every event and routes by its outbox row) would otherwise
// have its backfill work propagate as NORMAL, and everything that work
// causes would jump to the primary lane. Entries Laneway routed to backfill
// are below the threshold and keep their exact priority; primary entries
// are never changed.
func (c Config) ReadPriority(l Lane, p Priority) Priority {
	if l == Backfill && p >= c.Threshold {
		return c.Threshold - 1
	}
	return p
}

// LaneOf is the lane a message at priority p travels through.
func (c Config) LaneOf(p Priority) Lane {
	if c.Enabled && p < c.Threshold {
		return Backfill
	}
	return Primary
}

// Route returns the physical stream of a message for primary at priority
// p: the backfill lane of primary when lanes are enabled and p is strictly
// below the threshold, primary itself otherwise.
func (c Config) Route(primary string, p Priority) string {
	if c.LaneOf(p) == Backfill {
		return c.Naming.Backfill(primary)
	}
	return primary
}

// BackfillOf is the backfill lane consumers of primary read, or "" when
// lanes are disabled.
func (c Config) BackfillOf(primary string) string {
	if !c.Enabled {
		return ""
	}
	return c.Naming.Backfill(primary)
}
