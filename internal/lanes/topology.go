package lanes

import (
	"fmt"
	"sort"
	"strings"
)

// CommandGroup is the consumer group of asynchronous command handling on
// every command stream.
const CommandGroup = "CommandDispatcher"

// Spec is what a domain declares: the facts a topology is derived from.
type Spec struct {
	// Domain is the domain's name.
	Domain string
	// Categories are every aggregate category, whether or not a handler
	// reads it (the relay publishes every event).
	Categories []string
	// Readers are the event handlers, in registration order, with the
	// categories each reads.
	Readers []Reader
	// CommandCategories are the categories that have commands.
	CommandCategories []string
}

// Reader is one event handler (a consumer group) and the categories it reads.
type Reader struct {
	Group      string
	Categories []string
}

// Category is one primary stream of the domain and the consumer groups the
// engine runs on it: a partitioned category has one per partition.
type Category struct {
	Name     string   // the primary stream: "customer" or "customer:command"
	Category string   // the aggregate category: "customer"
	Class    Class    // Events or Commands
	Groups   []string // consumer groups reading it, sorted
	// Partition is the partition this primary stream holds (0 when the
	// category is not partitioned).
	Partition int
}

// Subscription is one consumer: a group reading a primary stream and, when
// lanes are enabled, its backfill lane.
type Subscription struct {
	Group    string
	Primary  string
	Backfill string // "" when lanes are disabled
	// Partition is the partition of the category Primary holds.
	Partition int
	// Category is the logical category ("customer", "customer:command")
	// and Partitions its partition count: the subscriptions of one group
	// with the same Category are its partitions.
	Category   string
	Partitions int
}

// Stream is one lane stream the engine reads.
type Stream struct {
	Name    string
	Primary string
	Lane    Lane
}

// Topology is every stream a domain's engine reads or leaves behind under
// one lane configuration. It is derived once, by New, for the engine and
// for the operator tools alike.
type Topology struct {
	Domain string
	Lanes  Config
	// Categories are the event categories (sorted), then the command
	// categories (sorted).
	Categories []Category
	// Subscriptions are the engine's consumers: per event handler (in
	// registration order) per category it reads per partition, then the
	// command dispatcher per command category per partition.
	Subscriptions []Subscription
}

// New derives the topology of spec under lane configuration cfg.
func New(spec Spec, cfg Config) Topology {
	t := Topology{Domain: spec.Domain, Lanes: cfg}
	n := cfg.Naming
	groups := map[string][]string{}
	for _, r := range spec.Readers {
		for _, c := range r.Categories {
			groups[c] = append(groups[c], r.Group)
			parts := n.EventPartitions(c)
			for p, primary := range parts {
				t.Subscriptions = append(t.Subscriptions, Subscription{Group: r.Group, Primary: primary, Backfill: cfg.BackfillOf(primary),
					Partition: p, Category: c, Partitions: len(parts)})
			}
		}
	}
	cats := append([]string(nil), spec.Categories...)
	sort.Strings(cats)
	for _, c := range cats {
		g := groups[c]
		sort.Strings(g)
		for p, primary := range n.EventPartitions(c) {
			t.Categories = append(t.Categories, Category{Name: primary, Category: c, Class: Events, Groups: g, Partition: p})
		}
	}
	cmds := append([]string(nil), spec.CommandCategories...)
	sort.Strings(cmds)
	for _, c := range cmds {
		parts := n.CommandPartitions(c)
		for p, primary := range parts {
			t.Categories = append(t.Categories, Category{Name: primary, Category: c, Class: Commands, Groups: []string{CommandGroup}, Partition: p})
			t.Subscriptions = append(t.Subscriptions, Subscription{Group: CommandGroup, Primary: primary, Backfill: cfg.BackfillOf(primary),
				Partition: p, Category: CommandCategory(c), Partitions: len(parts)})
		}
	}
	return t
}

// Naming is the topology's stream naming.
func (t Topology) Naming() Naming { return t.Lanes.Naming }

// Backfill is the backfill stream of primary (whether or not lanes are
// enabled now).
func (t Topology) Backfill(primary string) string { return t.Lanes.Naming.Backfill(primary) }

// AggregateCategories are the domain's aggregate categories, sorted.
func (t Topology) AggregateCategories() []string {
	var out []string
	for _, c := range t.Categories {
		if c.Class == Events {
			out = append(out, c.Category)
		}
	}
	return out
}

// ReadStreams lists, once each, the lane streams the subscriptions read:
// every primary and, with lanes enabled, its backfill lane.
func (t Topology) ReadStreams() []Stream {
	var out []Stream
	seen := map[string]bool{}
	for _, s := range t.Subscriptions {
		for _, st := range []Stream{{s.Primary, s.Primary, Primary}, {s.Backfill, s.Primary, Backfill}} {
			if st.Name == "" || seen[st.Name] {
				continue
			}
			seen[st.Name] = true
			out = append(out, st)
		}
	}
	return out
}

// DLQStreams lists the DLQ of every lane of every category, both lanes
// whether or not lanes are enabled now (entries dead-lettered while they
// were stay there).
func (t Topology) DLQStreams() []string {
	n := t.Lanes.Naming
	var out []string
	for _, c := range t.Categories {
		out = append(out, n.DLQ(c.Name), n.DLQ(n.Backfill(c.Name)))
	}
	return out
}

// Filter keeps the categories named by s: a category (primary stream), one
// of its lanes, or one of their DLQs. An unknown name is an error listing
// the known ones.
func (t Topology) Filter(s string) (Topology, error) {
	if s == "" {
		return t, nil
	}
	n := t.Lanes.Naming
	for _, c := range t.Categories {
		for _, name := range []string{c.Name, n.Backfill(c.Name), n.DLQ(c.Name), n.DLQ(n.Backfill(c.Name))} {
			if name == s {
				t.Categories = []Category{c}
				return t, nil
			}
		}
	}
	names := make([]string, len(t.Categories))
	for i, c := range t.Categories {
		names[i] = c.Name
	}
	return t, fmt.Errorf("unknown stream %q in domain %s: use one of %s (or their %q and %q streams)",
		s, t.Domain, strings.Join(names, ", "), sep+n.suffix(), sep+dlqPart)
}
