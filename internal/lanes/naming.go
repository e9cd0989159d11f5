package lanes

import (
	"strings"

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
// default backfill suffix.
type Naming struct {
	// BackfillSuffix names the backfill lane "<primary>:<suffix>". ""
	// means lanewayconfig.BackfillSuffixDefault.
	BackfillSuffix string
}

func (n Naming) suffix() string {
	if n.BackfillSuffix == "" {
		return lanewayconfig.BackfillSuffixDefault
	}
	return n.BackfillSuffix
}

// Suffix is the backfill suffix in use ("backfill" by default).
func (n Naming) Suffix() string { return n.suffix() }

// Events is the primary stream of the events of an aggregate category: the
// category itself ("customer").
func (n Naming) Events(category string) string { return category }

// Commands is the primary stream of the asynchronous commands of a
// category ("customer:command").
func (n Naming) Commands(category string) string { return category + sep + commandPart }

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
	Name     string // the lane stream: "customer:backfill"
	Primary  string // its primary stream: "customer" or "customer:command"
	Category string // the aggregate category: "customer"
	Lane     Lane
	Class    Class
}

// Classify tells what a lane stream is when it belongs to one of
// categories: "customer", "customer:<suffix>", "customer:command",
// "customer:command:<suffix>". Any backfill suffix is accepted, so streams
// written under an earlier configuration are recognised too.
func (n Naming) Classify(categories []string, stream string) (Source, bool) {
	for _, cat := range categories {
		if stream != cat && !strings.HasPrefix(stream, cat+sep) {
			continue
		}
		s := Source{Name: stream, Category: cat, Primary: n.Events(cat), Lane: Primary, Class: Events}
		rest := strings.TrimPrefix(strings.TrimPrefix(stream, cat), sep)
		if rest == commandPart || strings.HasPrefix(rest, commandPart+sep) {
			s.Class, s.Primary = Commands, n.Commands(cat)
			rest = strings.TrimPrefix(strings.TrimPrefix(rest, commandPart), sep)
		}
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
