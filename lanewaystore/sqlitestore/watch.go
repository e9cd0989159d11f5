package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/laneway/laneway/lanewaystore"
)

// Watching for commits (lanewaystore.CommitWatcher). SQLite cannot wake a
// relay in another process, so the relay polls; without a watcher every
// poll was a claim, a write transaction that found nothing, 80 a second on
// an idle engine with lanes on, and most of its CPU. CommitMark tells the
// poll, with one read of shared memory, whether it has anything to look
// for.
//
// On a file it is PRAGMA data_version on a connection of its own, which
// never writes: SQLite changes the value that connection reads whenever
// another connection, of this process or another, commits a change. A
// transaction that changed nothing, as an empty claim, leaves it alone.
// The value is only comparable on the same connection, so a new connection
// (the first call, or one after an error) also starts a new generation,
// which the mark carries: a mark from before never equals one from after.
//
// An in-memory database has one connection and no other process. The mark
// is then the count of rows its transactions have changed (total_changes()),
// which an empty claim leaves alone too.

// commitWatch is the connection CommitMark reads on.
type commitWatch struct {
	mu   sync.Mutex
	db   *sql.DB   // opened at the first CommitMark; nil on an in-memory store
	conn *sql.Conn // pinned: data_version is per connection
	stmt *sql.Stmt // PRAGMA data_version, prepared on conn
	gen  uint64    // connections opened, in the mark's high bits
	// closed is set by Close: no connection is opened after it.
	closed bool
}

// markBits is the width of the value read in a mark; the generation
// takes the bits above it.
const markBits = 40

var _ lanewaystore.CommitWatcher = (*Store)(nil)

// CommitMark returns a value that changes whenever a transaction of any
// connection, in any process, has committed a change to the database since
// the previous call (lanewaystore.CommitWatcher).
func (s *Store) CommitMark(ctx context.Context) (uint64, error) {
	if s.memory {
		var n int64
		if err := s.write.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&n); err != nil {
			return 0, fmt.Errorf("sqlitestore: commit mark %s: %w", s.path, err)
		}
		return uint64(n), nil
	}
	w := &s.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, fmt.Errorf("sqlitestore: commit mark %s: store closed", s.path)
	}
	if w.conn == nil {
		if w.db == nil {
			db, err := sql.Open("sqlite", s.readDSN)
			if err != nil {
				return 0, fmt.Errorf("sqlitestore: commit mark %s: %w", s.path, err)
			}
			db.SetMaxOpenConns(1)
			w.db = db
		}
		c, err := w.db.Conn(ctx)
		if err != nil {
			return 0, fmt.Errorf("sqlitestore: commit mark %s: %w", s.path, err)
		}
		st, err := c.PrepareContext(ctx, `PRAGMA data_version`)
		if err != nil {
			_ = c.Close()
			return 0, fmt.Errorf("sqlitestore: commit mark %s: %w", s.path, err)
		}
		w.conn, w.stmt = c, st
		w.gen++
	}
	// Without ctx's cancellation: the driver watches a cancellable context
	// from a goroutine of its own per query, a thread's wake-up more for a
	// read that only looks at shared memory, every 25 ms.
	var v int64
	if err := w.stmt.QueryRowContext(context.WithoutCancel(ctx)).Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlitestore: commit mark %s: %w", s.path, errors.Join(err, w.dropConn()))
	}
	return w.gen<<markBits | uint64(v)&(1<<markBits-1), nil
}

// closeWatch closes CommitMark's connection, if it opened one.
func (s *Store) closeWatch() error {
	w := &s.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	err := w.dropConn()
	if w.db != nil {
		if cerr := w.db.Close(); err == nil {
			err = cerr
		}
		w.db = nil
	}
	return err
}

// dropConn closes the pinned connection and its statement; w.mu is held.
func (w *commitWatch) dropConn() error {
	if w.conn == nil {
		return nil
	}
	err := errors.Join(w.stmt.Close(), w.conn.Close())
	w.conn, w.stmt = nil, nil
	return err
}
