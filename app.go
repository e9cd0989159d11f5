package laneway

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/laneway/laneway/internal/backend"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/tracing"
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
	tr    *tracing.Tracer // nil: tracing off

	mu       sync.RWMutex
	onCommit []*func() // pointers, so that a registration can be removed
	// onCommitRows are told the priorities a commit wrote (the engine's
	// relay wakes only the claim loops that have rows to claim).
	onCommitRows []*func(lo, hi int)
	// leaser is the running engine's relay, which takes this app's
	// production rows over in memory instead of claiming them (the
	// production hand-off, internal/outbox); nil without one.
	leaser *outbox.Relay
}

// Options for Open. The zero value opens the database named by
// cfg.Databases["default"].
type Options struct {
	// Store overrides the configured database (tests, embedding).
	Store lanewaystore.Store
	// TracerProvider turns on OpenTelemetry tracing: a span per Process,
	// and the trace context travels with every message the app writes (see
	// docs/operations.md). Defaults to nil: no spans, nothing added to
	// messages. The global provider is never used implicitly.
	TracerProvider trace.TracerProvider
	// NoDatabase opens no database: the app only consumes. Its engine runs
	// the subscriptions but no outbox relay (there is no outbox), event
	// handlers run with a Tx whose database calls (and Save) return
	// ErrNoDatabase, and Process returns ErrNoDatabase. A domain that
	// registers commands cannot be opened this way, since command handlers
	// always write. Defaults to false.
	NoDatabase bool
}

// ErrNoDatabase is returned by Process and by a Tx's database calls in an
// app opened with Options.NoDatabase.
var ErrNoDatabase = errors.New("laneway: this app has no database (opened with Options.NoDatabase)")

// Open connects the domain to the database of cfg (nil cfg: defaults) and
// creates or upgrades Laneway's tables.
func Open(ctx context.Context, dom *Domain, cfg *lanewayconfig.Config, opts Options) (*App, error) {
	if dom == nil {
		return nil, errors.New("laneway.Open: nil domain (build it with NewDomain(...).Build())")
	}
	if cfg == nil {
		cfg = lanewayconfig.Default()
	}
	a := &App{dom: dom, cfg: cfg, store: opts.Store, tr: tracing.New(opts.TracerProvider)}
	if opts.NoDatabase {
		return a, openWithoutDatabase(dom, opts)
	}
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

// Store returns the database (nil when opened with Options.NoDatabase).
func (a *App) Store() lanewaystore.Store { return a.store }

// OnCommit registers fn to run after every unit of work that wrote outbox
// rows commits; the engine uses it to wake the relay at once. The returned
// function removes the registration (an engine does when it stops, so an
// app that starts and stops engines does not accumulate them).
func (a *App) OnCommit(fn func()) (remove func()) {
	return register(&a.mu, &a.onCommit, fn)
}

// onCommitPriorities is OnCommit for a callback that is told the lowest
// and highest priority of the rows the unit of work wrote.
func (a *App) onCommitPriorities(fn func(lo, hi int)) (remove func()) {
	return register(&a.mu, &a.onCommitRows, fn)
}

// handOffTo lets r take this app's production rows over in memory. An app
// hands off to one relay at a time: a second engine's relay claims.
func (a *App) handOffTo(r *outbox.Relay) (remove func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.leaser != nil {
		return func() {}
	}
	a.leaser = r
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.leaser == r {
			a.leaser = nil
		}
	}
}

// lease registers a unit of work's rows with the relay just before their
// insert (outbox.Relay.Lease); settle must follow with the outcome.
func (a *App) lease(rows []lanewaystore.OutboxRow) *outbox.Ticket {
	a.mu.RLock()
	r := a.leaser
	a.mu.RUnlock()
	if r == nil {
		return nil
	}
	return r.Lease(rows)
}

// settle ends a unit of work that wrote rows under ticket t: the relay
// learns the outcome, and the commit callbacks run after a commit.
func (a *App) settle(t *outbox.Ticket, rows []lanewaystore.OutboxRow, err error) {
	t.Settle(err)
	if err == nil && len(rows) > 0 {
		a.committed(rows, t.Leased())
	}
}

// register adds fn to *list under mu and returns its removal.
func register[F any](mu *sync.RWMutex, list *[]*F, fn F) (remove func()) {
	p := &fn
	mu.Lock()
	*list = append(*list, p)
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		*list = slices.DeleteFunc(*list, func(q *F) bool { return q == p })
	}
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

// resolvePriority applies the rule: explicit option, then ctx, then Normal.
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
	if a.store == nil {
		return ErrNoDatabase
	}
	o := collectOptions(opts)
	if a.tr != nil {
		return a.processTraced(ctx, cmd, o)
	}
	c, err := a.prepare(ctx, cmd, o)
	if err != nil {
		return err
	}
	return a.process(ctx, cmd, c)
}

func (a *App) process(ctx context.Context, cmd Command, c preparedCommand) error {
	if c.async {
		row, err := a.commandRow(c)
		if err != nil {
			return err
		}
		return a.insertRows(a.storeCtx(ctx, c.priority), []lanewaystore.OutboxRow{row})
	}
	return a.runInTx(ctx, c.priority, c.corr, c.id, func(ctx context.Context, tx *Tx) error {
		return c.meta.runTyped(ctx, tx, cmd)
	})
}

// BatchError is returned by ProcessBatch when some commands failed. The
// others are committed.
type BatchError struct {
	// Errs has one entry per command of the batch: nil for a command that
	// committed, its error otherwise.
	Errs []error
}

// Failed is the number of commands that failed.
func (e *BatchError) Failed() int {
	n := 0
	for _, err := range e.Errs {
		if err != nil {
			n++
		}
	}
	return n
}

func (e *BatchError) Error() string {
	for i, err := range e.Errs {
		if err != nil {
			return fmt.Sprintf("%d of %d commands failed; first (#%d): %v", e.Failed(), len(e.Errs), i, err)
		}
	}
	return "no command failed"
}

// Unwrap returns the individual errors, so errors.Is and errors.As see them.
func (e *BatchError) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// ProcessBatch handles cmds like as many Process calls with the same
// options, but in ONE unit of work: one database transaction holds every
// command's aggregate writes and outbox rows, which is what makes bulk jobs
// (migrations, imports) fast, since a commit costs far more than a command.
// Each command keeps its own id and correlation id (unless CorrelationID is
// given), and commands see the writes of the ones before them in the batch.
//
// If any command fails, the transaction is rolled back and every command is
// retried alone in its own unit of work, so one bad record does not sink the
// batch: the result is then nil when all retries succeeded, or a
// *BatchError naming which commands failed (the others are committed). An
// unregistered command type fails the whole call before anything is written.
func (a *App) ProcessBatch(ctx context.Context, cmds []Command, opts ...ProcessOption) error {
	if a.store == nil {
		return ErrNoDatabase
	}
	if a.tr != nil {
		return a.processBatchTraced(ctx, cmds, opts)
	}
	return a.processBatch(ctx, cmds, opts)
}

func (a *App) processBatch(ctx context.Context, cmds []Command, opts []ProcessOption) error {
	o := collectOptions(opts)
	prepared := make([]preparedCommand, len(cmds))
	for i, cmd := range cmds {
		c, err := a.prepare(ctx, cmd, o)
		if err != nil {
			return fmt.Errorf("batch command #%d: %w", i, err)
		}
		prepared[i] = c
	}
	if len(cmds) == 0 {
		return nil
	}
	err := a.batchInTx(ctx, prepared)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	be := &BatchError{Errs: make([]error, len(cmds))}
	for i, cmd := range cmds {
		be.Errs[i] = a.Process(ctx, cmd, opts...)
	}
	if be.Failed() == 0 {
		return nil
	}
	return be
}

func (a *App) batchInTx(ctx context.Context, cmds []preparedCommand) error {
	top := cmds[0].priority
	for _, c := range cmds[1:] {
		top = max(top, c.priority)
	}
	var rows []lanewaystore.OutboxRow
	var ticket *outbox.Ticket
	err := a.store.InTx(a.storeCtx(ctx, top), func(ctx context.Context, st lanewaystore.Tx) error {
		ticket.Settle(errRetried) // an earlier attempt's
		ticket = nil
		rows = rows[:0]
		for _, c := range cmds {
			if c.async {
				row, err := a.commandRow(c)
				if err != nil {
					return err
				}
				rows = append(rows, row)
				continue
			}
			tx := &Tx{app: a, dom: a.dom, st: st, priority: c.priority, corrID: c.corr, causeID: c.id, traced: a.traced(ctx)}
			if err := c.meta.runTyped(WithPriority(ctx, c.priority), tx, c.cmd); err != nil {
				return err
			}
			rows = append(rows, tx.rows...)
		}
		if len(rows) == 0 {
			return nil
		}
		ticket = a.lease(rows)
		return st.InsertOutbox(ctx, rows)
	})
	a.settle(ticket, rows, err)
	return err
}

func collectOptions(opts []ProcessOption) processOptions {
	var o processOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// preparedCommand is a command with its options resolved.
type preparedCommand struct {
	cmd      Command
	meta     *commandMeta
	priority Priority
	async    bool
	id, corr string
	trace    traceContext // written into an async command's row
}

func (a *App) prepare(ctx context.Context, cmd Command, o processOptions) (preparedCommand, error) {
	cm, ok := a.dom.cmdByType[reflect.TypeOf(cmd)]
	if !ok {
		return preparedCommand{}, fmt.Errorf("command %T is not registered in domain %s (laneway.RegisterCommand)", cmd, a.dom.name)
	}
	c := preparedCommand{cmd: cmd, meta: cm, priority: resolvePriority(ctx, o), async: a.cfg.CommandProcessing == "async", id: newID(), corr: o.correlation}
	if c.priority == NoPriority {
		return preparedCommand{}, fmt.Errorf("command %s: NoPriority is not a priority (ParsePriority failed?)", cm.name)
	}
	if o.async != nil {
		c.async = *o.async
	}
	if c.corr == "" {
		c.corr = c.id
	}
	if a.tr != nil {
		c.trace = traceContextOf(ctx)
	}
	return c, nil
}

// commandRow is the outbox row of an async command.
func (a *App) commandRow(c preparedCommand) (lanewaystore.OutboxRow, error) {
	target := c.id
	if t, ok := c.cmd.(Targeted); ok && t.TargetID() != "" {
		target = t.TargetID()
	}
	category := lanes.CommandCategory(c.meta.aggregate.category)
	return a.dom.outboxRow(outboxSpec{
		id: c.id, class: envelope.ClassCommand, name: c.meta.name, version: 1, category: category,
		stream: category + "-" + target, payload: c.cmd, priority: c.priority, corrID: c.corr, at: time.Now().UTC(), trace: c.trace,
	})
}

func (a *App) insertRows(ctx context.Context, rows []lanewaystore.OutboxRow) error {
	var ticket *outbox.Ticket
	err := a.store.InTx(ctx, func(ctx context.Context, st lanewaystore.Tx) error {
		ticket.Settle(errRetried) // an earlier attempt's
		ticket = a.lease(rows)
		return st.InsertOutbox(ctx, rows)
	})
	a.settle(ticket, rows, err)
	return err
}

// runInTx runs a command handler in one unit of work at priority p and
// writes its events. Command handlers load or save an aggregate first thing,
// so the transaction begins at once: the hand-off of a lazy transaction
// (runInLazyTx) would cost every command a goroutine switch for nothing.
func (a *App) runInTx(ctx context.Context, p Priority, corr, cause string, fn func(ctx context.Context, tx *Tx) error) error {
	ctx = WithPriority(ctx, p)
	var written []lanewaystore.OutboxRow
	var ticket *outbox.Ticket
	err := a.store.InTx(a.storeCtx(ctx, p), func(ctx context.Context, st lanewaystore.Tx) error {
		ticket.Settle(errRetried) // an earlier attempt's
		ticket, written = nil, nil
		tx := &Tx{app: a, dom: a.dom, st: st, priority: p, corrID: corr, causeID: cause, traced: a.traced(ctx)}
		defer func() { tx.st = nil }() // a Tx kept past its unit of work fails instead of writing
		if err := fn(ctx, tx); err != nil {
			return err
		}
		if len(tx.rows) == 0 {
			return nil
		}
		written = tx.rows
		ticket = a.lease(tx.rows)
		return st.InsertOutbox(ctx, tx.rows)
	})
	a.settle(ticket, written, err)
	return err
}

// storeCtx marks ctx as backfill work for the store when work at priority
// p goes to the backfill lane (lanes on, below the threshold): a store with
// one writer (SQLite) then lets production commits go first, so a migration
// committing in batches does not hold up a customer's command.
func (a *App) storeCtx(ctx context.Context, p Priority) context.Context {
	pl := a.cfg.Server.PriorityLanes
	lc := lanes.Config{Enabled: pl.Enabled, Threshold: lanes.Priority(pl.Threshold)}
	if lc.LaneOf(p) == lanes.Backfill {
		return lanewaystore.AsBackfill(ctx)
	}
	return ctx
}

// runInLazyTx runs an event handler in one unit of work at priority p and
// writes its events. The database transaction begins when fn first uses the
// database (see lazyTx); a unit of work that never does commits nothing, and
// a slow handler that never touches the database holds no connection (on
// SQLite: not the single writer) while it works.
func (a *App) runInLazyTx(ctx context.Context, p Priority, corr, cause string, fn func(ctx context.Context, tx *Tx) error) (err error) {
	ctx = WithPriority(ctx, p)
	// One allocation for both: this runs once per message handled.
	unit := &struct {
		tx Tx
		lz lazyTx
	}{
		tx: Tx{app: a, dom: a.dom, priority: p, corrID: corr, causeID: cause, traced: a.traced(ctx)},
		lz: lazyTx{store: a.store, ctx: ctx},
	}
	tx, lz := &unit.tx, &unit.lz
	tx.lazy = lz
	finished := false
	defer func() {
		if !finished { // fn panicked: roll back, let the panic go on
			_ = lz.finish(errors.New("laneway: unit of work panicked"))
		}
	}()
	err = fn(ctx, tx)
	var ticket *outbox.Ticket
	if err == nil && len(tx.rows) > 0 {
		var st lanewaystore.Tx
		if st, err = tx.store(); err == nil {
			ticket = a.lease(tx.rows)
			err = st.InsertOutbox(ctx, tx.rows)
		}
	}
	finished = true
	err = lz.finish(err)
	tx.st, tx.lazy = nil, nil
	a.settle(ticket, tx.rows, err)
	return err
}

// errRetried settles the ticket of a unit of work's attempt that the store
// runs again (its rows were not committed).
var errRetried = errors.New("laneway: unit of work retried")

// committed runs the commit callbacks after a unit of work wrote rows.
// Rows handed to the relay in memory do not wake its claim loops.
func (a *App) committed(rows []lanewaystore.OutboxRow, handedOff bool) {
	lo, hi := rows[0].Priority, rows[0].Priority
	for _, r := range rows[1:] {
		lo, hi = min(lo, r.Priority), max(hi, r.Priority)
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, fn := range a.onCommit {
		(*fn)()
	}
	if handedOff {
		return
	}
	for _, fn := range a.onCommitRows {
		(*fn)(lo, hi)
	}
}

// dispatch runs one decoded message for the engine: a command (kind COMMAND)
// through its command handler, or an event through handler h. It returns
// (false, nil) when h does not handle the event type (a no-op to ack).
func (a *App) dispatch(ctx context.Context, h *Handler, env *envelope.Envelope, prio Priority, propagate bool) (bool, error) {
	_, name, version, err := envelope.ParseType(env.Metadata.Headers.Type)
	if err != nil {
		return false, err
	}
	p := Normal
	if propagate {
		p = prio
	}
	// The closures below capture copies of what they need, not env: a
	// captured env would move to the heap on every call.
	corr, id, data := env.Metadata.Domain.CorrelationID, env.Metadata.Headers.ID, env.Data
	if env.Metadata.Domain.Class == envelope.ClassCommand {
		cm, ok := a.dom.commands[name]
		if !ok {
			return false, fmt.Errorf("command type %s is not registered in domain %s", env.Metadata.Headers.Type, a.dom.name)
		}
		return true, a.runInTx(ctx, p, corr, id, func(ctx context.Context, tx *Tx) error {
			return cm.run(ctx, tx, data)
		})
	}
	if _, ok := a.dom.events[name]; !ok {
		return false, fmt.Errorf("event type %s is not registered in domain %s", env.Metadata.Headers.Type, a.dom.name)
	}
	payload, _, err := a.dom.upcasts.Upcast(name, version, data)
	if err != nil {
		return false, fmt.Errorf("%w: %w", errUpcast, err)
	}
	hf, ok := h.funcs[name]
	if !ok {
		return false, nil
	}
	meta := Meta{
		ID: id, Type: env.Metadata.Headers.Type, Stream: env.Metadata.Headers.Stream,
		Priority: prio, CorrelationID: corr, CausationID: env.Metadata.Domain.CausationID,
	}
	return true, a.runInLazyTx(ctx, p, corr, meta.ID, func(ctx context.Context, tx *Tx) error {
		return hf.run(ctx, tx, payload, meta)
	})
}
