package laneway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/laneway/laneway/internal/backend"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

// App is a domain bound to its database: it processes commands. The engine
// (relay and subscriptions) runs on top of an App. Safe for concurrent use.
type App struct {
	dom   *Domain
	cfg   *lanewayconfig.Config
	store lanewaystore.Store
	owned bool

	mu       sync.RWMutex
	onCommit []func()
}

// Options for Open. The zero value opens the database named by
// cfg.Databases["default"].
type Options struct {
	// Store overrides the configured database (tests, embedding).
	Store lanewaystore.Store
}

// Open connects the domain to the database of cfg (nil cfg: defaults) and
// creates or upgrades Laneway's tables.
func Open(ctx context.Context, dom *Domain, cfg *lanewayconfig.Config, opts Options) (*App, error) {
	if dom == nil {
		return nil, errors.New("laneway.Open: nil domain (build it with NewDomain(...).Build())")
	}
	if cfg == nil {
		cfg = lanewayconfig.Default()
	}
	a := &App{dom: dom, cfg: cfg, store: opts.Store}
	if a.store == nil {
		st, err := backend.OpenStore(ctx, cfg.Databases["default"])
		if err != nil {
			return nil, err
		}
		a.store, a.owned = st, true
	}
	if err := a.store.Migrate(ctx); err != nil {
		a.Close()
		return nil, fmt.Errorf("migrate %s database: %w", a.store.Dialect(), err)
	}
	return a, nil
}

// Domain returns the app's domain.
func (a *App) Domain() *Domain { return a.dom }

// Config returns the resolved configuration.
func (a *App) Config() *lanewayconfig.Config { return a.cfg }

// Store returns the database.
func (a *App) Store() lanewaystore.Store { return a.store }

// OnCommit registers fn to run after every unit of work that wrote outbox
// rows commits; the engine uses it to wake the relay at once.
func (a *App) OnCommit(fn func()) {
	a.mu.Lock()
	a.onCommit = append(a.onCommit, fn)
	a.mu.Unlock()
}

// Close closes the database if Open opened it.
func (a *App) Close() error {
	if a.owned && a.store != nil {
		return a.store.Close()
	}
	return nil
}

// ProcessOption adjusts one Process call.
type ProcessOption func(*processOptions)

type processOptions struct {
	priority    *Priority
	async       *bool
	correlation string
}

// AtPriority sets this call's priority; it beats WithPriority on the context.
func AtPriority(p Priority) ProcessOption { return func(o *processOptions) { o.priority = &p } }

// Async writes the command to the outbox for the engine to handle, whatever
// command_processing says.
func Async() ProcessOption { t := true; return func(o *processOptions) { o.async = &t } }

// Sync runs the command handler in the caller, whatever command_processing says.
func Sync() ProcessOption { f := false; return func(o *processOptions) { o.async = &f } }

// CorrelationID sets the correlation id carried by the command's events.
func CorrelationID(id string) ProcessOption { return func(o *processOptions) { o.correlation = id } }

// ResolvePriority applies the rule: explicit option, then ctx, then Normal.
func resolvePriority(ctx context.Context, o processOptions) Priority {
	if o.priority != nil {
		return *o.priority
	}
	return PriorityFrom(ctx)
}

// Process handles cmd. Synchronously (the default, command_processing =
// "sync"), the command handler runs in one unit of work and every event it
// raises is written to the outbox in the same transaction, stamped with the
// resolved priority. Asynchronously the command itself is written to the
// outbox (category "<category>:command") and the engine runs it later.
func (a *App) Process(ctx context.Context, cmd Command, opts ...ProcessOption) error {
	var o processOptions
	for _, opt := range opts {
		opt(&o)
	}
	cm, ok := a.dom.cmdByType[reflect.TypeOf(cmd)]
	if !ok {
		return fmt.Errorf("command %T is not registered in domain %s (laneway.RegisterCommand)", cmd, a.dom.name)
	}
	p := resolvePriority(ctx, o)
	async := a.cfg.CommandProcessing == "async"
	if o.async != nil {
		async = *o.async
	}
	cmdID := newID()
	corr := o.correlation
	if corr == "" {
		corr = cmdID
	}
	if async {
		return a.enqueueCommand(ctx, cm, cmd, cmdID, corr, p)
	}
	return a.runInTx(ctx, p, corr, cmdID, func(ctx context.Context, tx *Tx) error {
		return cm.runTyped(ctx, tx, cmd)
	})
}

func (a *App) enqueueCommand(ctx context.Context, cm *commandMeta, cmd Command, id, corr string, p Priority) error {
	target := id
	if t, ok := cmd.(Targeted); ok && t.TargetID() != "" {
		target = t.TargetID()
	}
	category := cm.aggregate.category + ":command"
	row, err := a.dom.outboxRow(outboxSpec{
		id: id, kind: envelope.KindCommand, name: cm.name, version: 1, category: category,
		stream: category + "-" + target, payload: cmd, priority: p, corrID: corr, at: time.Now().UTC(),
	})
	if err != nil {
		return err
	}
	err = a.store.InTx(ctx, func(ctx context.Context, st lanewaystore.Tx) error {
		return st.InsertOutbox(ctx, []lanewaystore.OutboxRow{row})
	})
	if err == nil {
		a.committed()
	}
	return err
}

// runInTx runs fn in one unit of work at priority p and writes its events.
func (a *App) runInTx(ctx context.Context, p Priority, corr, cause string, fn func(ctx context.Context, tx *Tx) error) error {
	ctx = WithPriority(ctx, p)
	wrote := false
	err := a.store.InTx(ctx, func(ctx context.Context, st lanewaystore.Tx) error {
		tx := &Tx{dom: a.dom, st: st, priority: p, corrID: corr, causeID: cause}
		if err := fn(ctx, tx); err != nil {
			return err
		}
		if len(tx.rows) == 0 {
			return nil
		}
		wrote = true
		return st.InsertOutbox(ctx, tx.rows)
	})
	if err == nil && wrote {
		a.committed()
	}
	return err
}

func (a *App) committed() {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, fn := range a.onCommit {
		fn()
	}
}

// Dispatch runs one decoded message for the engine: a command (kind COMMAND)
// through its command handler, or an event through handler h. It returns
// (false, nil) when h does not handle the event type (a no-op to ack).
func (a *App) Dispatch(ctx context.Context, h *Handler, env envelope.Envelope, propagate bool) (bool, error) {
	_, name, version, err := envelope.ParseType(env.Metadata.Headers.Type)
	if err != nil {
		return false, err
	}
	p := Normal
	if propagate {
		p = Priority(env.Metadata.Domain.Priority)
	}
	corr := env.Metadata.Domain.CorrelationID
	if env.Metadata.Domain.Kind == envelope.KindCommand {
		cm, ok := a.dom.commands[name]
		if !ok {
			return false, fmt.Errorf("command type %s is not registered in domain %s", env.Metadata.Headers.Type, a.dom.name)
		}
		return true, a.runInTx(ctx, p, corr, env.Metadata.Headers.ID, func(ctx context.Context, tx *Tx) error {
			return cm.run(ctx, tx, env.Data)
		})
	}
	if _, ok := a.dom.events[name]; !ok {
		return false, fmt.Errorf("event type %s is not registered in domain %s", env.Metadata.Headers.Type, a.dom.name)
	}
	payload, _, err := a.dom.upcasts.Upcast(name, version, env.Data)
	if err != nil {
		return false, err
	}
	hf, ok := h.funcs[name]
	if !ok {
		return false, nil
	}
	meta := Meta{
		ID: env.Metadata.Headers.ID, Type: env.Metadata.Headers.Type, Stream: env.Metadata.Headers.Stream,
		Priority: Priority(env.Metadata.Domain.Priority), CorrelationID: corr, CausationID: env.Metadata.Domain.CausationID,
	}
	return true, a.runInLazyTx(ctx, p, corr, meta.ID, func(ctx context.Context, tx *Tx) error {
		return hf.run(ctx, tx, json.RawMessage(payload), meta)
	})
}
