package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
)

// The commit mark: whether another process has committed (notify.go reads
// it when the write-ahead log was written). It is PRAGMA data_version on the
// writer's connection: SQLite changes the value a connection reads whenever
// another connection commits a change, and never for the connection's own
// commits. Every write of this store goes through that connection, so the
// mark moves for other processes' commits (and other Stores' on the same
// file) only: this process's units of work wake its relay themselves, and a
// relay's own claims and marks do not wake it again. The read takes the
// writer's turn as a backfill write would, for the few microseconds it
// lasts; it looks only at shared memory.
//
// An in-memory database has no other process: its mark never moves.

// dataVersionSQL reads the writer connection's data_version.
const dataVersionSQL = `PRAGMA data_version`

// CommitMark returns a value that changes whenever another process (or
// another Store on the same file) has committed a change to the database
// since the previous call. Commits of this Store do not change it.
func (s *Store) CommitMark(ctx context.Context) (uint64, error) {
	if s.memory {
		return 0, nil
	}
	s.markReads.Add(1)
	if err := s.writers.acquire(ctx, true); err != nil {
		return 0, fmt.Errorf("sqlitestore: commit mark %s: %w", s.path, err)
	}
	defer s.writers.release()
	s.stmts.prepare(ctx, s.write)
	// Without ctx's cancellation: the driver watches a cancellable context
	// from a goroutine of its own per query, a thread's wake-up more for a
	// read that only looks at shared memory.
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
