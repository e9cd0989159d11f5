package laneway

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/laneway/laneway/lanewaystore"
)

// Errors callers match with errors.Is.
var (
	// ErrVersionConflict: another unit of work saved the aggregate first.
	// Returned by Process (and Tx.Save); nothing of the losing unit of work
	// was written. Retry the command if it is still valid.
	ErrVersionConflict = lanewaystore.ErrVersionConflict
	// ErrNotFound: Load found no aggregate with that id.
	ErrNotFound = lanewaystore.ErrNotFound
)

// AggregateRoot is embedded in every aggregate struct. It carries the
// identity, the stored version (for optimistic concurrency) and the events
// raised since the aggregate was loaded. Its fields are not serialized.
type AggregateRoot struct {
	id      string
	version int64
	pending []Event
}

// Aggregate is implemented by structs embedding AggregateRoot.
type Aggregate interface {
	aggregateRoot() *AggregateRoot
}

func (a *AggregateRoot) aggregateRoot() *AggregateRoot { return a }

// ID is the aggregate's identity.
func (a *AggregateRoot) ID() string { return a.id }

// Version is the stored version this instance was loaded at (0 when new).
func (a *AggregateRoot) Version() int64 { return a.version }

// Raise records an event; it is written to the outbox when the aggregate is
// saved and the unit of work commits.
func (a *AggregateRoot) Raise(e Event) { a.pending = append(a.pending, e) }

// New returns a new aggregate of type T with the given id, to be saved with
// Tx.Save.
func New[T any, PT interface {
	*T
	Aggregate
}](id string) PT {
	p := PT(new(T))
	p.aggregateRoot().id = id
	return p
}

// Load reads aggregate T by id within tx. It returns ErrNotFound when absent.
func Load[T any, PT interface {
	*T
	Aggregate
}](ctx context.Context, tx *Tx, id string) (PT, error) {
	meta, err := tx.dom.aggregateFor(reflect.TypeOf((*T)(nil)).Elem())
	if err != nil {
		return nil, err
	}
	st, err := tx.store()
	if err != nil {
		return nil, fmt.Errorf("load %s %s: %w", meta.name, id, err)
	}
	rec, err := st.LoadAggregate(ctx, meta.category, id)
	if err != nil {
		return nil, fmt.Errorf("load %s %s: %w", meta.name, id, err)
	}
	p := PT(new(T))
	if err := json.Unmarshal(rec.Data, p); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", meta.name, id, err)
	}
	r := p.aggregateRoot()
	r.id, r.version = id, rec.Version
	return p, nil
}

func (d *Domain) aggregateFor(t reflect.Type) (*aggregateMeta, error) {
	m, ok := d.aggregates[t]
	if !ok {
		return nil, fmt.Errorf("aggregate %s is not registered in domain %s", t.Name(), d.name)
	}
	return m, nil
}
