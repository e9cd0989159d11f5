package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/laneway/laneway/lanewaystore"
)

// sqlstateDivisionByZero is how a queued aggregate save reports a version
// conflict (see QueueSaveAggregate).
const sqlstateDivisionByZero = "22012"

// uow is the unit of work's transaction. On loopback a round trip costs as
// much as the statement it carries, so the transaction is pipelined: BEGIN
// travels with the first statement, and the outbox insert, which is always
// the last write of a unit of work, travels with COMMIT and the NOTIFY. A
// command that creates an aggregate costs two round trips instead of four,
// and a unit of work that writes nothing costs none.
//
// Statements whose result the caller needs at once (aggregate load and save,
// Exec, MarkProcessed) are sent at once, together with whatever is queued.
// In a pipeline the server skips everything after a failed statement until
// the batch ends, and the transaction is then aborted, so any error leaves
// nothing half-written: the caller's error makes InTx roll back.
type uow struct {
	conn     *pgx.Conn
	begun    bool // BEGIN has been sent
	notify   bool // outbox rows were inserted: NOTIFY after COMMIT
	deferred []deferredStmt
	// lost is set when BEGIN or queued statements did not run: the caller
	// may ignore the error of the statement that carried them, but the
	// commit must not report success for writes that never happened.
	lost error
}

type deferredStmt struct {
	sql  string
	args []any
	what string // for error messages
	// conflict, when set, marks a queued aggregate save: its
	// division_by_zero is a version conflict, described by this text.
	conflict string
	// returning, when set, reads the statement's rows (and closes them).
	returning func(pgx.Rows) error
}

// send runs the queued statements, preceded by BEGIN if it has not been
// sent, followed by last (when not empty) and then the argument-less
// statements of tail, in one round trip. It returns the batch results
// positioned at last, which the caller reads and closes.
func (t *uow) send(ctx context.Context, last string, tail ...string) (pgx.BatchResults, error) {
	return t.sendArgs(ctx, last, nil, tail...)
}

func (t *uow) sendArgs(ctx context.Context, last string, args []any, tail ...string) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	begin := !t.begun
	if begin {
		b.Queue("BEGIN")
	}
	for _, d := range t.deferred {
		b.Queue(d.sql, d.args...)
	}
	if last != "" {
		b.Queue(last, args...)
	}
	for _, q := range tail {
		b.Queue(q)
	}
	queued := t.deferred
	t.deferred, t.begun = nil, true
	br := t.conn.SendBatch(ctx, b)
	if begin {
		// BEGIN itself does not fail: an error here is the batch's (the
		// connection, or a statement the server could not prepare).
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			t.lost = err
			return nil, err
		}
	}
	for _, d := range queued {
		var err error
		if d.returning != nil {
			var res pgx.Rows
			if res, err = br.Query(); err == nil {
				err = d.returning(res)
			}
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			_ = br.Close()
			var pe *pgconn.PgError
			if d.conflict != "" && errors.As(err, &pe) && pe.Code == sqlstateDivisionByZero {
				err = fmt.Errorf("%s: %w", d.conflict, lanewaystore.ErrVersionConflict)
			} else {
				err = fmt.Errorf("pgstore: %s: %w", d.what, err)
			}
			t.lost = err
			return nil, err
		}
	}
	return br, nil
}

// exec sends one statement (with the queue) and returns its command tag.
func (t *uow) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br, err := t.sendArgs(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// queryRow sends one single-row query (with the queue) and scans its row.
func (t *uow) queryRow(ctx context.Context, scan func(pgx.Row) error, sql string, args ...any) error {
	br, err := t.sendArgs(ctx, sql, args)
	if err != nil {
		return err
	}
	err = scan(br.QueryRow())
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// flush sends BEGIN and the queue, for statements that must run on the bare
// connection (multi-row queries, whose rows the caller reads later).
func (t *uow) flush(ctx context.Context) error {
	if t.begun && len(t.deferred) == 0 {
		return nil
	}
	br, err := t.send(ctx, "")
	if err != nil {
		return err
	}
	return br.Close()
}

// commit sends the queue, COMMIT and, when outbox rows were written, the
// NOTIFY (see notifySQL) in one round trip. A COMMIT that the server answers
// with ROLLBACK (the transaction had failed earlier and the caller ignored
// the error) is an error: nothing was written. A failed NOTIFY is not: the
// rows are committed, and the relays' fallback poll finds them.
func (t *uow) commit(ctx context.Context) error {
	if !t.begun && len(t.deferred) == 0 {
		return nil
	}
	if t.lost != nil {
		t.rollback(ctx)
		return fmt.Errorf("pgstore: commit: an earlier statement failed, nothing was written: %w", t.lost)
	}
	notify := t.notify
	var tail []string
	if notify {
		tail = []string{notifySQL}
	}
	br, err := t.send(ctx, "COMMIT", tail...)
	if err != nil {
		t.rollback(ctx)
		return err
	}
	tag, err := br.Exec()
	if err == nil && notify {
		_, _ = br.Exec()
	}
	if cerr := br.Close(); err == nil && !notify {
		err = cerr
	}
	if err != nil {
		t.rollback(ctx)
		return fmt.Errorf("pgstore: commit: %w", err)
	}
	if tag.String() == "ROLLBACK" {
		return fmt.Errorf("pgstore: commit: %w", pgx.ErrTxCommitRollback)
	}
	return nil
}

// rollback ends a transaction that is still open; a connection it cannot
// clean is closed by the pool on release.
func (t *uow) rollback(ctx context.Context) {
	t.deferred = nil
	if !t.begun || t.conn.IsClosed() || t.conn.PgConn().TxStatus() == 'I' {
		return
	}
	rctx, cancel := rollbackContext(ctx)
	defer cancel()
	_, _ = t.conn.Exec(rctx, "ROLLBACK") // on failure the pool closes the connection: it is not idle
}
