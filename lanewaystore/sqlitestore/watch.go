package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/laneway/laneway/lanewaystore"
)

// Watching for other processes' commits (lanewaystore.CommitWatcher).
// SQLite cannot wake a relay in another process, so the relay polls;
// without a watcher every poll was a claim, a write transaction that found
// nothing, 80 a second on an idle engine with lanes on, and most of its
// CPU. CommitMark tells the poll, with one read of shared memory, whether
// another process has written since.
//
// It is PRAGMA data_version on the writer's connection: SQLite changes the
// value a connection reads whenever another connection commits a change,
// and never for the connection's own commits. Every write of this store
// goes through that connection, so the mark moves for other processes'
// commits (and other Stores' on the same file) only: this process's units
// of work wake its relay themselves, and a relay's own claims and marks do
// not wake it again. The read takes the writer's turn as a backfill write
// would, for the few microseconds it lasts.
//
// An in-memory database has no other process: its mark never moves.

// dataVersionSQL reads the writer connection's data_version.
const dataVersionSQL = `PRAGMA data_version`

var _ lanewaystore.CommitWatcher = (*Store)(nil)

// CommitMark returns a value that changes whenever another process (or
// another Store on the same file) has committed a change to the database
// since the previous call (lanewaystore.CommitWatcher). Commits of this
// Store do not change it.
func (s *Store) CommitMark(ctx context.Context) (uint64, error) {
	if s.memory {
		return 0, nil
	}
	if err := s.writers.acquire(ctx, true); err != nil {
		return 0, fmt.Errorf("sqlitestore: commit mark %s: %w", s.path, err)
	}
	defer s.writers.release()
	s.stmts.prepare(ctx, s.write)
	// Without ctx's cancellation: the driver watches a cancellable context
	// from a goroutine of its own per query, a thread's wake-up more for a
	// read that only looks at shared memory, every 25 ms.
	qctx := context.WithoutCancel(ctx)
	var row *sql.Row
	if st := s.stmts.get(dataVersionSQL); st != nil {
		row = st.QueryRowContext(qctx)
	} else {
		row = s.write.QueryRowContext(qctx, dataVersionSQL)
	}
	var v int64
	if err := row.Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlitestore: commit mark %s: %w", s.path, err)
	}
	return uint64(v), nil
}
