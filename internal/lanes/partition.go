package lanes

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// Cluster hash tags and partitions.
//
// On a Redis Cluster every primary stream name is wrapped in a hash tag
// ("{customer}"), and the names derived from it (its backfill lane, their
// DLQs: "{customer}:backfill", "{customer}:dlq", "{customer}:backfill:dlq")
// keep the tag, so a lane pair and its DLQs hash to one slot: the single
// blocking XREADGROUP over both lanes, and every command that names one of
// them, stays on one master. On a standalone server names carry no tag.
//
// A partitioned category (partitions = N > 1) has N primary streams:
// partition 0 keeps the category's own name ("customer"), partition p > 0
// is "customer.<p>" ("{customer.3}" on a cluster), each with its own
// backfill lane and DLQs. An event goes to partition
// PartitionOf(aggregate id, N): all events of one aggregate travel through
// one partition, in order. With N = 1 (the default) the names are exactly
// the unpartitioned ones.

// partSep separates a category from its partition number.
const partSep = "."

// PartitionOf is the partition of an aggregate id among n: the 32-bit
// FNV-1a hash of the id's bytes, modulo n. It is part of the wire format:
// every producer of a partitioned category must compute it the same way.
func PartitionOf(aggregateID string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(aggregateID))
	return int(h.Sum32() % uint32(n))
}

// Partitions is the number of partitions of a logical category
// ("customer" or "customer:command": a category's commands are partitioned
// like its events): its entry in PartitionsByCategory, else
// DefaultPartitions, at least 1.
func (n Naming) Partitions(category string) int {
	agg := strings.TrimSuffix(category, sep+commandPart)
	if p, ok := n.PartitionsByCategory[agg]; ok && p > 0 {
		return p
	}
	return max(n.DefaultPartitions, 1)
}

// PrimaryPartition is the primary stream of partition p of a logical
// category: "customer" for p = 0, "customer.3" for p = 3, hash-tagged on a
// cluster ("{customer}", "{customer.3}").
func (n Naming) PrimaryPartition(category string, p int) string {
	base := n.Prefix + category
	if p > 0 {
		base += partSep + strconv.Itoa(p)
	}
	if n.Cluster {
		return "{" + base + "}"
	}
	return base
}

// PrimaryFor is the primary stream an entry of aggregate instance stream
// ("customer-42") in a logical category goes to: the partition of its
// aggregate id ("42").
func (n Naming) PrimaryFor(category, instanceStream string) string {
	parts := n.Partitions(category)
	if parts <= 1 {
		return n.PrimaryPartition(category, 0)
	}
	return n.PrimaryPartition(category, PartitionOf(AggregateID(category, instanceStream), parts))
}

// AggregateID is the aggregate id in an aggregate instance stream name:
// "42" in "customer-42" (category "customer" or "customer:command"); the
// whole name when it does not start with the category.
func AggregateID(category, instanceStream string) string {
	agg := strings.TrimSuffix(category, sep+commandPart)
	for _, c := range []string{category, agg} {
		if id, ok := strings.CutPrefix(instanceStream, c+"-"); ok {
			return id
		}
	}
	return instanceStream
}

// EventPartitions are the primary streams of every partition of an
// aggregate category's events, partition 0 first.
func (n Naming) EventPartitions(category string) []string {
	return n.partitions(category)
}

// CommandPartitions are the primary streams of every partition of a
// category's commands.
func (n Naming) CommandPartitions(category string) []string {
	return n.partitions(CommandCategory(category))
}

func (n Naming) partitions(logical string) []string {
	out := make([]string, n.Partitions(logical))
	for p := range out {
		out[p] = n.PrimaryPartition(logical, p)
	}
	return out
}

// untag removes a cluster hash tag: "{customer.3}:backfill" is read as
// "customer.3:backfill".
func (n Naming) untag(stream string) string {
	if !n.Cluster || !strings.HasPrefix(stream, "{") {
		return stream
	}
	inner, rest, ok := strings.Cut(stream[1:], "}")
	if !ok {
		return stream
	}
	return inner + rest
}

// cutPartition splits "customer.3:backfill" after base "customer" into
// partition 3 and the rest ":backfill". ok is false when no partition
// number follows base.
func cutPartition(s, base string) (p int, rest string, ok bool) {
	t, found := strings.CutPrefix(s, base+partSep)
	if !found {
		return 0, "", false
	}
	end := strings.Index(t, sep)
	if end < 0 {
		end = len(t)
	}
	v, err := strconv.Atoi(t[:end])
	if err != nil || v <= 0 || strconv.Itoa(v) != t[:end] {
		return 0, "", false
	}
	return v, t[end:], true
}
