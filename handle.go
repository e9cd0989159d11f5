package laneway

import (
	"context"
	"fmt"
	"sort"

	"github.com/laneway/laneway/internal/envelope"
)

// Process issues cmd from inside this unit of work: an event handler (or a
// command handler) that needs the domain to do something next calls
// tx.Process instead of reaching for an *App. The command joins the unit of
// work, so it commits or rolls back with the handler's own writes, and a
// retried handler does not leave a command behind from a failed attempt.
//
// Synchronously (command_processing = "sync", or Sync()) the command
// handler runs at once in this transaction and the events it raises are
// written with the handler's; asynchronously (Async()) the command is
// written to the outbox in this transaction and the engine runs it later.
//
// Priority: an AtPriority option wins, then a priority set on ctx with
// WithPriority, then the priority of this unit of work, which for an event
// handler is the propagated priority of the event it handles. So the
// follow-up work of a LOW event travels on the backfill lane like the event
// did. The command's events carry this unit of work's correlation id unless
// CorrelationID is given; their causation id is the command's id.
func (tx *Tx) Process(ctx context.Context, cmd Command, opts ...ProcessOption) error {
	if tx.app == nil {
		return fmt.Errorf("laneway: tx.Process(%s): this Tx does not belong to an App", cmd.Kind())
	}
	o := collectOptions(opts)
	if o.priority == nil {
		p, ok := priorityIn(ctx)
		if !ok {
			p = tx.priority
		}
		o.priority = &p
	}
	if o.correlation == "" {
		o.correlation = tx.corrID
	}
	c, err := tx.app.prepare(ctx, cmd, o)
	if err != nil {
		return err
	}
	if c.async {
		row, err := tx.app.commandRow(c)
		if err != nil {
			return err
		}
		tx.rows = append(tx.rows, row)
		return nil
	}
	st, err := tx.store()
	if err != nil {
		return fmt.Errorf("laneway: tx.Process(%s): %w", cmd.Kind(), err)
	}
	child := &Tx{app: tx.app, dom: tx.dom, st: st, priority: c.priority, corrID: c.corr, causeID: c.id}
	err = c.meta.runTyped(WithPriority(ctx, c.priority), child, cmd)
	child.st = nil // the child ends with the command, the transaction goes on
	if err != nil {
		return err
	}
	tx.rows = append(tx.rows, child.rows...)
	return nil
}

// HandleEntry runs one stream entry through handler h outside the engine,
// as the engine would: data is the value of the entry's "data" field (what
// EncodeEvent produces, or what the relay publishes). It returns false,
// with a nil error, when h does not handle that event type. Tests and tools
// use it to run a handler on a given entry; a command entry runs its command
// handler whatever h is. The handler runs at the entry's priority when
// priority_lanes.propagate is on (the default), at Normal otherwise.
func (a *App) HandleEntry(ctx context.Context, h *Handler, data []byte) (handled bool, err error) {
	env, err := envelope.Decode(data)
	if err != nil {
		return false, err
	}
	return a.dispatch(ctx, h, &env, Priority(env.Metadata.Domain.Priority), a.cfg.Server.PriorityLanes.Propagate)
}

// openWithoutDatabase checks that dom can run without a database.
func openWithoutDatabase(dom *Domain, opts Options) error {
	if opts.Store != nil {
		return fmt.Errorf("laneway.Open: Options.Store and Options.NoDatabase both set; pick one")
	}
	if len(dom.commands) > 0 {
		names := make([]string, 0, len(dom.commands))
		for n := range dom.commands {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("laneway.Open: domain %s registers commands (%v) whose handlers write to a database; open it with a database, or without Options.NoDatabase", dom.name, names)
	}
	return nil
}

// dialect names the database for logs ("none" without one).
func (a *App) dialect() string {
	if a.store == nil {
		return "none"
	}
	return a.store.Dialect()
}
