package laneway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// EventEntry is one event for EncodeEvent: every field a stream entry
// carries. Producers outside Laneway (another process, a bridge from
// another language, an importer writing straight into a lane) fill it and
// append the encoded entry with XADD; the engine then handles it exactly as
// if the relay had published it.
type EventEntry struct {
	// Domain is the domain's name ("Customers"); the type string is
	// "<Domain>.<Kind>.v<Version>".
	Domain string
	// Category is the aggregate's stream category ("customer"): it picks
	// the streams (lanes) the entry goes to.
	Category string
	// AggregateID names the aggregate instance; its stream is
	// "<Category>-<AggregateID>".
	AggregateID string
	// Kind is the event's wire name ("CustomerUpdated").
	Kind string
	// Version is the event's schema version. Defaults to 1.
	Version int
	// Sequence is "<aggregate version>.<n>" for the n-th event of one
	// save, as Laneway writes it. Optional.
	Sequence string
	// ID is the message id, unique per message (consumers deduplicate on
	// it). Defaults to "<Category>-<AggregateID>-<Sequence>" when Sequence
	// is set, a random UUID otherwise.
	ID string
	// Priority decides the lane (see RouteStream) and travels with the
	// event, so the handlers' follow-up work keeps it. Defaults to Normal.
	Priority Priority
	// CorrelationID and CausationID are carried as given. Optional.
	CorrelationID, CausationID string
	// Time is when the event happened. Defaults to now; written in UTC.
	Time time.Time
	// Payload is the event: a struct, a map, or a json.RawMessage holding
	// a JSON object. It is written in canonical form (keys sorted,
	// non-ASCII escaped) with its SHA-256 checksum.
	Payload any
}

// EncodeEvent returns the stream entry of ev, routed under cfg (nil means
// the defaults): the entry's Stream is RouteStream(cfg, ev.Domain,
// ev.Category, ev.Priority) and its Data is the value of the entry's one field,
// "data". The bytes are those the outbox relay publishes for the same event
// (same payload, metadata and checksum); appending them with
//
//	XADD <Stream> * data <Data>
//
// (or lanewaybroker.Broker.Publish) hands the event to every handler
// subscribed to the category, on the lane its priority picks. Use the
// configuration the engines run with ([server.priority_lanes] and
// [server] stream_naming decide the stream), so producer and engines agree.
func EncodeEvent(ev EventEntry, cfg *lanewayconfig.Config) (lanewaybroker.Publication, error) {
	if err := ev.validate(); err != nil {
		return lanewaybroker.Publication{}, fmt.Errorf("laneway.EncodeEvent: %w", err)
	}
	if ev.Version == 0 {
		ev.Version = 1
	}
	stream := ev.Category + "-" + ev.AggregateID
	id := ev.ID
	switch {
	case id != "":
	case ev.Sequence != "":
		id = stream + "-" + ev.Sequence
	default:
		id = newID()
	}
	at := ev.Time
	if at.IsZero() {
		at = time.Now()
	}
	payload := ev.Payload
	if raw, ok := payload.(json.RawMessage); ok {
		payload = json.RawMessage(bytes.TrimSpace(raw))
	}
	row, err := encodeRow(ev.Domain, outboxSpec{
		id: id, class: envelope.ClassEvent, name: ev.Kind, version: ev.Version, category: ev.Category,
		stream: stream, seq: ev.Sequence, payload: payload, priority: ev.Priority,
		corrID: ev.CorrelationID, causeID: ev.CausationID, at: at.UTC(),
	})
	if err != nil {
		return lanewaybroker.Publication{}, fmt.Errorf("laneway.EncodeEvent: %w", err)
	}
	data := envelope.EntryData(row.Data, row.Metadata)
	// Refuse what the engine would dead-letter as malformed (a payload
	// that is not a JSON object, for one).
	if _, err := envelope.Decode([]byte(data)); err != nil {
		return lanewaybroker.Publication{}, fmt.Errorf("laneway.EncodeEvent: %s %s: %w", ev.Kind, id, err)
	}
	stream, err = RouteStream(cfg, ev.Domain, ev.Category, ev.Priority)
	if err != nil {
		return lanewaybroker.Publication{}, fmt.Errorf("laneway.EncodeEvent: %w", err)
	}
	return lanewaybroker.Publication{Stream: stream, Data: data}, nil
}

func (ev EventEntry) validate() error {
	var errs []error
	if ev.Domain == "" || strings.ContainsAny(ev.Domain, ". \t\n") {
		errs = append(errs, fmt.Errorf("field Domain %q must be non-empty without dots or spaces", ev.Domain))
	}
	if err := validCategory(ev.Category); err != nil {
		errs = append(errs, fmt.Errorf("field Category: %w", err))
	}
	if ev.AggregateID == "" {
		errs = append(errs, errors.New("field AggregateID is empty"))
	}
	if ev.Kind == "" || strings.ContainsAny(ev.Kind, ". \t\n") {
		errs = append(errs, fmt.Errorf("field Kind %q must be non-empty without dots or spaces", ev.Kind))
	}
	if ev.Version < 0 {
		errs = append(errs, fmt.Errorf("field Version %d must be >= 1 (0 means 1)", ev.Version))
	}
	if ev.Priority == NoPriority {
		errs = append(errs, errors.New("field Priority is NoPriority (a failed ParsePriority?)"))
	}
	if ev.Payload == nil {
		errs = append(errs, errors.New("field Payload is nil; it must be a JSON object"))
	}
	return errors.Join(errs...)
}

// defaultConfig is the default configuration RouteStream reads when given
// none: built once, since a producer encoding entries one by one would
// otherwise build it (maps and all) for each of them. It is never written.
var defaultConfig = sync.OnceValue(lanewayconfig.Default)

// RouteStream is the routing rule: the stream (lane) the relay publishes an
// event of category, in domain, at priority p to, under cfg (nil means the
// defaults). With lanes enabled, a priority strictly below the threshold
// goes to the backfill lane "<stream>:<backfill_suffix>"; everything else,
// and everything with lanes disabled, goes to the category's stream
// "<category>" ("<domain>::<category>" under stream_naming = "protean").
// Async commands use the category "<category>:command".
func RouteStream(cfg *lanewayconfig.Config, domain, category string, p Priority) (string, error) {
	if cfg == nil {
		cfg = defaultConfig()
	}
	lc, err := lanes.FromConfig(cfg, domain)
	if err != nil {
		return "", err
	}
	return lc.Route(lc.Naming.Primary(category), p), nil
}

// EventEntry returns the EventEntry of ev, an event of a registered type
// raised by aggregate aggregateID, with the domain, category, kind, version
// and payload filled in from the registration; set the other fields (ID,
// Priority, Time, ...) on the result before EncodeEvent.
func (d *Domain) EventEntry(aggregateID string, ev Event) (EventEntry, error) {
	em, ok := d.eventsByType[reflect.TypeOf(ev)]
	if !ok {
		return EventEntry{}, fmt.Errorf("event type %T is not registered in domain %s (laneway.RegisterEvent)", ev, d.name)
	}
	return EventEntry{
		Domain: d.name, Category: em.aggregate.category, AggregateID: aggregateID,
		Kind: em.name, Version: em.version, Payload: ev,
	}, nil
}
