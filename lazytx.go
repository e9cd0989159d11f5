package laneway

import (
	"context"
	"errors"
	"fmt"

	"github.com/laneway/laneway/lanewaystore"
)

// lazyTx opens the store transaction of an event handler's unit of work on
// the handler's first database call, so a handler that never touches the
// database (a projector into a cache, a notifier, one that skips the event)
// costs no BEGIN and COMMIT. The engine runs every handled message through a
// unit of work; with an eager transaction that was the largest cost of a
// message on SQLite.
//
// Store.InTx takes a callback, so the transaction is driven from a helper
// goroutine: InTx's callback hands the transaction over and then waits for
// the handler's outcome, which decides commit or rollback. Only one
// goroutine uses the transaction at a time (the handler while it runs, then
// the helper to commit), as lanewaystore.Tx requires.
type lazyTx struct {
	store lanewaystore.Store
	ctx   context.Context

	st      lanewaystore.Tx
	beginEr error
	outcome chan error // the handler's result, to the helper
	done    chan error // InTx's result, from the helper
}

var errHandlerPanicked = errors.New("laneway: handler panicked")

// get returns the transaction, beginning it on first use.
func (l *lazyTx) get() (lanewaystore.Tx, error) {
	if l.st != nil || l.beginEr != nil {
		return l.st, l.beginEr
	}
	ready := make(chan lanewaystore.Tx, 1)
	l.outcome, l.done = make(chan error, 1), make(chan error, 1)
	go func() {
		l.done <- l.store.InTx(l.ctx, func(ctx context.Context, st lanewaystore.Tx) error {
			ready <- st
			return <-l.outcome
		})
	}()
	select {
	case l.st = <-ready:
		return l.st, nil
	case err := <-l.done:
		// Begin failed; nothing runs on the helper any more.
		l.done = nil
		l.beginEr = fmt.Errorf("begin unit of work: %w", err)
		return nil, l.beginEr
	}
}

// finish commits (err nil) or rolls back the transaction if one was begun,
// and returns the unit of work's result.
func (l *lazyTx) finish(err error) error {
	if l.st == nil {
		if err == nil {
			err = l.beginEr
		}
		return err
	}
	l.outcome <- err
	return <-l.done
}

// lazyStoreTx is the lanewaystore.Tx a handler's Tx holds when its
// transaction is lazy: every call begins the transaction first.
type lazyStoreTx struct{ l *lazyTx }

func (t lazyStoreTx) LoadAggregate(ctx context.Context, category, id string) (lanewaystore.AggregateRecord, error) {
	st, err := t.l.get()
	if err != nil {
		return lanewaystore.AggregateRecord{}, err
	}
	return st.LoadAggregate(ctx, category, id)
}

func (t lazyStoreTx) SaveAggregate(ctx context.Context, p lanewaystore.SaveAggregateParams) error {
	st, err := t.l.get()
	if err != nil {
		return err
	}
	return st.SaveAggregate(ctx, p)
}

func (t lazyStoreTx) InsertOutbox(ctx context.Context, rows []lanewaystore.OutboxRow) error {
	st, err := t.l.get()
	if err != nil {
		return err
	}
	return st.InsertOutbox(ctx, rows)
}

func (t lazyStoreTx) MarkProcessed(ctx context.Context, handler, messageID string) (bool, error) {
	st, err := t.l.get()
	if err != nil {
		return false, err
	}
	return st.MarkProcessed(ctx, handler, messageID)
}

func (t lazyStoreTx) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	st, err := t.l.get()
	if err != nil {
		return 0, err
	}
	return st.Exec(ctx, sql, args...)
}

func (t lazyStoreTx) Query(ctx context.Context, sql string, args ...any) (lanewaystore.Rows, error) {
	st, err := t.l.get()
	if err != nil {
		return nil, err
	}
	return st.Query(ctx, sql, args...)
}

func (t lazyStoreTx) QueryRow(ctx context.Context, sql string, args ...any) lanewaystore.Row {
	st, err := t.l.get()
	if err != nil {
		return errRow{err}
	}
	return st.QueryRow(ctx, sql, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// runInLazyTx is runInTx for event handlers: the same unit of work, with its
// transaction begun on the first database call (lazyTx).
func (a *App) runInLazyTx(ctx context.Context, p Priority, corr, cause string, fn func(ctx context.Context, tx *Tx) error) (err error) {
	ctx = WithPriority(ctx, p)
	l := &lazyTx{store: a.store, ctx: ctx}
	tx := &Tx{dom: a.dom, st: lazyStoreTx{l}, priority: p, corrID: corr, causeID: cause}
	defer func() {
		if r := recover(); r != nil {
			_ = l.finish(errHandlerPanicked) // roll back, then let the panic go on
			panic(r)
		}
	}()
	err = fn(ctx, tx)
	wrote := false
	if err == nil && len(tx.rows) > 0 {
		wrote = true
		err = tx.st.InsertOutbox(ctx, tx.rows)
	}
	err = l.finish(err)
	if err == nil && wrote {
		a.committed()
	}
	return err
}
