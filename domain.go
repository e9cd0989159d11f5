package laneway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"unicode"

	"github.com/laneway/laneway/internal/flatjson"
	"github.com/laneway/laneway/internal/upcast"
)

// Message is implemented by commands and events. Kind is the stable wire
// name ("CustomerUpdated"), independent of the Go type name, so renaming a Go
// type never changes the wire.
type Message interface {
	Kind() string
}

// Command asks the domain to do something. A command may also implement
// Targeted so its outbox row and stream name carry the aggregate id.
type Command interface{ Message }

// Event records something that happened. Events implement Versioned to
// declare a schema version other than 1.
type Event interface{ Message }

// Versioned declares the schema version of an event type (default 1).
type Versioned interface{ Version() int }

// Targeted names the aggregate a command acts on (used for the command's
// stream name and per-aggregate ordering of async commands).
type Targeted interface{ TargetID() string }

// CommandHandler runs a command inside a unit of work.
type CommandHandler[C Command] func(ctx context.Context, tx *Tx, cmd C) error

// EventFunc handles one event type inside a unit of work.
type EventFunc[E Event] func(ctx context.Context, tx *Tx, ev E, meta Meta) error

// Meta describes the message being handled.
type Meta struct {
	ID            string
	Type          string
	Stream        string
	Priority      Priority
	CorrelationID string
	CausationID   string
}

// UpcastFunc transforms one event payload; it may modify and return
// payload. Numbers arrive as json.Number, so integers of any size survive;
// an upcaster that computes with a number converts it itself.
type UpcastFunc func(payload map[string]any) (map[string]any, error)

// Upcaster transforms the payload of one event type from version From to To.
// Upcasters are pure functions.
type Upcaster struct {
	// Event is the event's wire name ("CustomerUpdated").
	Event string
	// From and To are schema versions, From < To.
	From, To int
	Fn       UpcastFunc
}

type aggregateMeta struct {
	name     string
	category string
	typ      reflect.Type
}

type eventMeta struct {
	name      string
	version   int
	typ       reflect.Type
	aggregate *aggregateMeta
}

type commandMeta struct {
	name      string
	typ       reflect.Type
	aggregate *aggregateMeta
	run       func(ctx context.Context, tx *Tx, payload json.RawMessage) error
	runTyped  func(ctx context.Context, tx *Tx, cmd Command) error
}

// Handler is a named event handler or projector. Its consumer group on
// every stream it reads is its name (e.g. "CustomerProjector") unless
// ConsumerGroup or [handlers.NAME] consumer_group names another.
type Handler struct {
	name  string
	group string                 // explicit consumer group; "" means the name
	funcs map[string]handlerFunc // event name -> func
	order []string
}

type handlerFunc struct {
	typ reflect.Type
	run func(ctx context.Context, tx *Tx, payload json.RawMessage, meta Meta) error
}

// NewHandler returns an empty handler named name; add functions with On.
func NewHandler(name string, opts ...HandlerOption) *Handler {
	h := &Handler{name: name, funcs: map[string]handlerFunc{}}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Name is the handler's registered name.
func (h *Handler) Name() string { return h.name }

// On adds fn to h for events of type E. Registering two functions for one
// event type on the same handler is reported by Build.
func On[E Event](h *Handler, fn EventFunc[E]) {
	var zero E
	name := zero.Kind()
	if _, dup := h.funcs[name]; dup {
		name = "\x00dup:" + name
	}
	plan := flatjson.Compile(reflect.TypeOf(zero)) // nil unless E is a flat struct
	h.funcs[name] = handlerFunc{
		typ: reflect.TypeOf(zero),
		run: func(ctx context.Context, tx *Tx, payload json.RawMessage, meta Meta) error {
			var ev E
			if !plan.Decode(payload, &ev) {
				ev = zero
				if err := json.Unmarshal(payload, &ev); err != nil {
					return fmt.Errorf("decode %s: %w", meta.Type, err)
				}
			}
			return fn(ctx, tx, ev, meta)
		},
	}
	h.order = append(h.order, name)
}

// Builder collects registrations; Build validates them all at once.
type Builder struct {
	name       string
	aggregates []*aggregateMeta
	events     []*eventMeta
	commands   []*commandMeta
	handlers   []*Handler
	upcasters  []Upcaster
	errs       []error
}

// NewDomain starts a domain named name; type strings are "<name>.<Kind>.v<N>".
func NewDomain(name string) *Builder { return &Builder{name: name} }

// AggregateOptions configure an aggregate type.
type AggregateOptions struct {
	// Category is the stream category. Defaults to the snake_case type name.
	Category string
}

// RegisterAggregate registers aggregate type T (a struct embedding AggregateRoot).
func RegisterAggregate[T any, PT interface {
	*T
	Aggregate
}](b *Builder, opts AggregateOptions) {
	typ := reflect.TypeOf((*T)(nil)).Elem()
	cat := opts.Category
	if cat == "" {
		cat = snakeCase(typ.Name())
	}
	b.aggregates = append(b.aggregates, &aggregateMeta{name: typ.Name(), category: cat, typ: typ})
}

// RegisterEvent registers event type E as raised by aggregate A.
func RegisterEvent[A any, E Event](b *Builder) {
	var zero E
	v := 1
	if vv, ok := any(zero).(Versioned); ok {
		v = vv.Version()
	}
	b.events = append(b.events, &eventMeta{
		name: zero.Kind(), version: v, typ: reflect.TypeOf(zero),
		aggregate: &aggregateMeta{typ: reflect.TypeOf((*A)(nil)).Elem()},
	})
}

// RegisterCommand registers command type C, handled by fn, acting on aggregate A.
func RegisterCommand[A any, C Command](b *Builder, fn CommandHandler[C]) {
	var zero C
	if fn == nil {
		b.errs = append(b.errs, fmt.Errorf("command %s: no handler", zero.Kind()))
		return
	}
	plan := flatjson.Compile(reflect.TypeOf(zero)) // nil unless C is a flat struct
	b.commands = append(b.commands, &commandMeta{
		name: zero.Kind(), typ: reflect.TypeOf(zero),
		aggregate: &aggregateMeta{typ: reflect.TypeOf((*A)(nil)).Elem()},
		run: func(ctx context.Context, tx *Tx, payload json.RawMessage) error {
			var cmd C
			if !plan.Decode(payload, &cmd) {
				cmd = zero
				if err := json.Unmarshal(payload, &cmd); err != nil {
					return fmt.Errorf("decode command %s: %w", zero.Kind(), err)
				}
			}
			return fn(ctx, tx, cmd)
		},
		runTyped: func(ctx context.Context, tx *Tx, cmd Command) error { return fn(ctx, tx, cmd.(C)) },
	})
}

// AddHandler registers an event handler or projector.
func (b *Builder) AddHandler(h *Handler) { b.handlers = append(b.handlers, h) }

// AddUpcaster registers an upcaster; chains are validated by Build.
func (b *Builder) AddUpcaster(u Upcaster) { b.upcasters = append(b.upcasters, u) }

// Domain is a validated, immutable set of registrations.
type Domain struct {
	name         string
	aggregates   map[reflect.Type]*aggregateMeta
	byCategory   map[string]*aggregateMeta
	events       map[string]*eventMeta // by name
	eventsByType map[reflect.Type]*eventMeta
	commands     map[string]*commandMeta
	cmdByType    map[reflect.Type]*commandMeta
	handlers     []*Handler
	upcasts      *upcast.Chains
}

// Build validates every registration and reports all problems at once:
// duplicate names or categories, events or commands whose aggregate is not
// registered, handlers for unregistered events, invalid upcaster chains.
func (b *Builder) Build() (*Domain, error) {
	errs := append([]error(nil), b.errs...)
	if b.name == "" || strings.ContainsAny(b.name, ". \t") {
		errs = append(errs, fmt.Errorf("domain name %q must be non-empty without dots or spaces", b.name))
	}
	d := &Domain{
		name:         b.name,
		aggregates:   map[reflect.Type]*aggregateMeta{},
		byCategory:   map[string]*aggregateMeta{},
		events:       map[string]*eventMeta{},
		eventsByType: map[reflect.Type]*eventMeta{},
		commands:     map[string]*commandMeta{},
		cmdByType:    map[reflect.Type]*commandMeta{},
	}
	for _, a := range b.aggregates {
		if _, dup := d.aggregates[a.typ]; dup {
			errs = append(errs, fmt.Errorf("aggregate %s registered twice", a.name))
			continue
		}
		if o, dup := d.byCategory[a.category]; dup {
			errs = append(errs, fmt.Errorf("aggregates %s and %s share stream category %q", o.name, a.name, a.category))
			continue
		}
		if err := validCategory(a.category); err != nil {
			errs = append(errs, fmt.Errorf("aggregate %s: %w", a.name, err))
		}
		d.aggregates[a.typ] = a
		d.byCategory[a.category] = a
	}
	current := map[string]int{}
	for _, e := range b.events {
		agg, ok := d.aggregates[e.aggregate.typ]
		if !ok {
			errs = append(errs, fmt.Errorf("event %s: aggregate %s is not registered", e.name, e.aggregate.typ.Name()))
			continue
		}
		if e.version < 1 {
			errs = append(errs, fmt.Errorf("event %s: version %d must be >= 1", e.name, e.version))
		}
		if _, dup := d.events[e.name]; dup {
			errs = append(errs, fmt.Errorf("event %s registered twice", e.name))
			continue
		}
		e.aggregate = agg
		d.events[e.name] = e
		d.eventsByType[e.typ] = e
		current[e.name] = e.version
	}
	for _, c := range b.commands {
		agg, ok := d.aggregates[c.aggregate.typ]
		if !ok {
			errs = append(errs, fmt.Errorf("command %s: aggregate %s is not registered", c.name, c.aggregate.typ.Name()))
			continue
		}
		if _, dup := d.commands[c.name]; dup {
			errs = append(errs, fmt.Errorf("command %s registered twice (one handler per command)", c.name))
			continue
		}
		c.aggregate = agg
		d.commands[c.name] = c
		d.cmdByType[c.typ] = c
	}
	seen := map[string]bool{}
	for _, h := range b.handlers {
		if h.name == "" {
			errs = append(errs, errors.New("a handler has an empty name"))
			continue
		}
		if seen[h.name] {
			errs = append(errs, fmt.Errorf("handler %s registered twice", h.name))
			continue
		}
		seen[h.name] = true
		if err := validGroup(h.Group()); err != nil {
			errs = append(errs, fmt.Errorf("handler %s: %w", h.name, err))
		}
		if len(h.funcs) == 0 {
			errs = append(errs, fmt.Errorf("handler %s handles no event (add functions with laneway.On)", h.name))
		}
		for _, name := range h.order {
			if strings.HasPrefix(name, "\x00dup:") {
				errs = append(errs, fmt.Errorf("handler %s: two functions for event %s", h.name, strings.TrimPrefix(name, "\x00dup:")))
				continue
			}
			ev, ok := d.events[name]
			if !ok {
				errs = append(errs, fmt.Errorf("handler %s handles event %s, which is not registered (laneway.RegisterEvent)", h.name, name))
				continue
			}
			if ev.typ != h.funcs[name].typ {
				errs = append(errs, fmt.Errorf("handler %s: event kind %s belongs to Go type %s, not %s", h.name, name, ev.typ, h.funcs[name].typ))
			}
		}
		d.handlers = append(d.handlers, h)
	}
	ups := make([]upcast.Upcaster, len(b.upcasters))
	for i, u := range b.upcasters {
		ups[i] = upcast.Upcaster{Event: u.Event, From: u.From, To: u.To, Fn: upcast.Func(u.Fn)}
	}
	chains, err := upcast.Build(ups, current)
	if err != nil {
		errs = append(errs, err)
	}
	d.upcasts = chains
	if len(errs) > 0 {
		return nil, fmt.Errorf("domain %s: %w", b.name, errors.Join(errs...))
	}
	return d, nil
}

// Name is the domain name.
func (d *Domain) Name() string { return d.name }

// Handlers returns the registered event handlers.
func (d *Domain) Handlers() []*Handler { return append([]*Handler(nil), d.handlers...) }

// Categories returns the stream categories a handler reads, sorted.
func (d *Domain) Categories(h *Handler) []string {
	set := map[string]bool{}
	for name := range h.funcs {
		if ev, ok := d.events[name]; ok {
			set[ev.aggregate.category] = true
		}
	}
	return sortedKeys(set)
}

// CommandCategories returns the categories that have commands, sorted.
func (d *Domain) CommandCategories() []string {
	set := map[string]bool{}
	for _, c := range d.commands {
		set[c.aggregate.category] = true
	}
	return sortedKeys(set)
}

// AllCategories returns every aggregate category, sorted.
func (d *Domain) AllCategories() []string {
	set := map[string]bool{}
	for c := range d.byCategory {
		set[c] = true
	}
	return sortedKeys(set)
}

// TypeString returns "<Domain>.<Kind>.v<N>" for a registered event kind.
func (d *Domain) TypeString(kind string) string {
	if ev, ok := d.events[kind]; ok {
		return fmt.Sprintf("%s.%s.v%d", d.name, kind, ev.version)
	}
	return fmt.Sprintf("%s.%s.v1", d.name, kind)
}

// EventVersion returns the registered schema version of event kind.
func (d *Domain) EventVersion(kind string) (int, bool) { return d.upcasts.Current(kind) }

// CanUpcast reports, as a nil error, that an event kind written at version
// from can reach the registered version through the domain's upcasters (or
// is at it); the error says what is missing.
func (d *Domain) CanUpcast(kind string, from int) error {
	_, err := d.upcasts.Path(kind, from)
	return err
}

// Upcast brings payload, event kind at version from, to the registered
// version and returns it with that version. At the registered version it
// returns payload untouched.
func (d *Domain) Upcast(kind string, from int, payload json.RawMessage) (json.RawMessage, int, error) {
	return d.upcasts.Upcast(kind, from, payload)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func validCategory(c string) error {
	if c == "" || strings.ContainsAny(c, ": \t\n") {
		return fmt.Errorf("stream category %q must be non-empty without ':' or whitespace", c)
	}
	return nil
}

// snakeCase turns "LoyaltyAccount" into "loyalty_account".
func snakeCase(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}
