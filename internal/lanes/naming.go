package lanes

import (
	"fmt"
	"strings"

	"github.com/laneway/laneway/internal/protean"
	"github.com/laneway/laneway/lanewayconfig"
)

// The parts of the stream names. They are part of the wire format: engines
// of every version must agree on them.
const (
	sep         = ":"
	commandPart = "command"
	dlqPart     = "dlq"
)

// Naming builds every stream name of a domain. The zero value uses the
// default backfill suffix and Laneway's scheme (no prefix).
type Naming struct {
	// BackfillSuffix names the backfill lane "<primary>:<suffix>". ""
	// means lanewayconfig.BackfillSuffixDefault.
	BackfillSuffix string
	// Prefix comes before every category: "" in Laneway's scheme,
	// "<normalized domain name>::" in Protean's ("customers::"), so that
	// "customer" is read and written as "customers::customer".
	Prefix string
	// Cluster wraps every primary stream name in a hash tag
	// ("{customer}"), so a lane pair and its DLQs share one slot of a
	// Redis Cluster (see partition.go).
	Cluster bool
	// DefaultPartitions is the number of partitions of every category
	// without an entry in PartitionsByCategory; 0 and 1 mean one.
	DefaultPartitions int
	// PartitionsByCategory is the number of partitions of an aggregate
	// category (its events and commands).
	PartitionsByCategory map[string]int
}

// prefixSep ends the domain prefix of Protean's scheme.
const prefixSep = "::"

// NamingFor is the naming of the streams of domain under cfg: the backfill
// suffix of [server.priority_lanes], the scheme of server.stream_naming,
// hash tags when the default broker is a Redis Cluster, and the partitions
// of [server] partitions and [server.category_partitions]. The error says
// why a domain name gives no Protean stream names.
func NamingFor(cfg *lanewayconfig.Config, domain string) (Naming, error) {
	n := Naming{BackfillSuffix: cfg.Server.PriorityLanes.BackfillSuffix,
		Cluster: cfg.ClusterBroker(), PartitionsByCategory: cfg.Server.CategoryPartitions}
	if cfg.Server.Partitions > 1 {
		// 1 and 0 both mean one partition; leave the zero value then.
		n.DefaultPartitions = cfg.Server.Partitions
	}
	switch cfg.Server.StreamNaming {
	case "", lanewayconfig.StreamNamingLaneway:
	case lanewayconfig.StreamNamingProtean:
		name, err := protean.NormalizedName(domain)
		if err != nil {
			return Naming{}, fmt.Errorf("server.stream_naming = %q: %w", cfg.Server.StreamNaming, err)
		}
		n.Prefix = name + prefixSep
	default:
		return Naming{}, fmt.Errorf("server.stream_naming = %q: use %q or %q", cfg.Server.StreamNaming, lanewayconfig.StreamNamingLaneway, lanewayconfig.StreamNamingProtean)
	}
	return n, nil
}

// CommandCategory is the logical category of the asynchronous commands of
// an aggregate category ("customer:command"), as the outbox records it.
func CommandCategory(category string) string { return category + sep + commandPart }

// Primary is the primary stream of a logical category, an aggregate
// category ("customer") or a command category ("customer:command"): the
// category under the naming's prefix, hash-tagged on a cluster. For a
// partitioned category it is partition 0 (see PrimaryFor).
func (n Naming) Primary(category string) string { return n.PrimaryPartition(category, 0) }

func (n Naming) suffix() string {
	if n.BackfillSuffix == "" {
		return lanewayconfig.BackfillSuffixDefault
	}
	return n.BackfillSuffix
}

// Suffix is the backfill suffix in use ("backfill" by default).
func (n Naming) Suffix() string { return n.suffix() }

// Events is the primary stream of the events of an aggregate category: the
// category itself ("customer"), under the prefix ("customers::customer").
func (n Naming) Events(category string) string { return n.Primary(category) }

// Commands is the primary stream of the asynchronous commands of a
// category ("customer:command", "customers::customer:command").
func (n Naming) Commands(category string) string { return n.Primary(CommandCategory(category)) }

// Backfill is the backfill lane of a primary stream ("customer:backfill").
func (n Naming) Backfill(primary string) string { return primary + sep + n.suffix() }

// DLQ is the dead-letter stream of a lane stream ("customer:backfill:dlq").
func (n Naming) DLQ(stream string) string { return stream + sep + dlqPart }

// IsDLQ tells whether stream is a dead-letter stream.
func (n Naming) IsDLQ(stream string) bool { return strings.HasSuffix(stream, sep+dlqPart) }

// DLQSource is the lane stream a dead-letter stream holds failures of.
func (n Naming) DLQSource(dlq string) string { return strings.TrimSuffix(dlq, sep+dlqPart) }

// DLQPattern matches every dead-letter stream (a broker Streams pattern).
func (n Naming) DLQPattern() string { return "*" + sep + dlqPart }

// IsBackfill tells whether stream is a backfill lane under this naming.
func (n Naming) IsBackfill(stream string) bool { return strings.HasSuffix(stream, sep+n.suffix()) }

// Source describes a lane stream of a domain.
type Source struct {
	Name      string // the lane stream: "customer:backfill"
	Primary   string // its primary stream: "customer" or "customer:command"
	Category  string // the aggregate category: "customer"
	Partition int    // the partition of a partitioned category (0 otherwise)
	Lane      Lane
	Class     Class
}

// Classify tells what a lane stream is when it belongs to one of
// categories: "customer", "customer:<suffix>", "customer:command",
// "customer:command:<suffix>", any of them partitioned ("customer.3",
// "customer.3:<suffix>", "customer:command.3") and, on a cluster, with the
// hash tag ("{customer.3}:<suffix>"). Any backfill suffix and partition
// number are accepted, so streams written under an earlier configuration
// are recognised too.
func (n Naming) Classify(categories []string, stream string) (Source, bool) {
	flat := n.untag(stream)
	if n.Cluster && flat == stream {
		return Source{}, false
	}
	for _, cat := range categories {
		base := n.Prefix + cat
		if flat != base && !strings.HasPrefix(flat, base+sep) && !strings.HasPrefix(flat, base+partSep) {
			continue
		}
		s := Source{Name: stream, Category: cat, Lane: Primary, Class: Events}
		logical, lbase := cat, base
		if t := strings.TrimPrefix(flat, base+sep+commandPart); t != flat && (t == "" || strings.HasPrefix(t, sep) || strings.HasPrefix(t, partSep)) {
			s.Class, logical, lbase = Commands, CommandCategory(cat), base+sep+commandPart
		}
		var rest string
		switch {
		case flat == lbase:
		case strings.HasPrefix(flat, lbase+sep):
			rest = flat[len(lbase)+1:]
		default:
			p, r, ok := cutPartition(flat, lbase)
			if !ok {
				continue
			}
			s.Partition, rest = p, strings.TrimPrefix(r, sep)
		}
		s.Primary = n.PrimaryPartition(logical, s.Partition)
		if rest != "" {
			if strings.Contains(rest, sep) || rest == dlqPart {
				return Source{}, false
			}
			s.Lane = Backfill
		}
		return s, true
	}
	return Source{}, false
}
