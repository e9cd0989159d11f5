package sqlitestore

import (
	"context"
	"time"
)

// Checkpoints. In WAL mode a commit appends pages to the WAL file, and a
// checkpoint copies them into the database file. By default SQLite runs
// the checkpoint inside the commit that finds the WAL over 1,000 pages:
// that commit, whichever it is (a customer's command behind a migration's
// writes, often), takes tens of milliseconds longer. The store's writer
// therefore never checkpoints (wal_autocheckpoint=0); a goroutine of the
// store runs a PASSIVE checkpoint, which waits for no writer and blocks
// none, checkpointEvery after the first commit it has not copied yet. It
// does not block readers either; what a reader still uses stays in the WAL
// until the next checkpoint.

// checkpointEvery gathers the commits that one checkpoint copies.
const checkpointEvery = 100 * time.Millisecond

// startCheckpoints starts the checkpoint goroutine; Close stops it.
func (s *Store) startCheckpoints() {
	ctx, cancel := context.WithCancel(context.Background())
	s.committed = make(chan struct{}, 1)
	s.stopCheckpoints = cancel
	s.checkpointsDone = make(chan struct{})
	go s.checkpoints(ctx)
}

// noteCommit wakes the checkpoint goroutine; it never blocks.
func (s *Store) noteCommit() {
	if s.committed == nil {
		return
	}
	select {
	case s.committed <- struct{}{}:
	default:
	}
}

func (s *Store) checkpoints(ctx context.Context) {
	defer close(s.checkpointsDone)
	timer := time.NewTimer(checkpointEvery)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.committed:
		}
		timer.Reset(checkpointEvery)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		var busy, logged, copied int
		err := s.read.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logged, &copied)
		if err != nil || copied < logged {
			// Not all copied (a reader still uses them, or an error):
			// try again after the next gathering.
			s.noteCommit()
		} else {
			s.checkpointed.Add(1)
		}
	}
}

// stopCheckpointing stops the checkpoint goroutine and waits for it.
func (s *Store) stopCheckpointing() {
	if s.stopCheckpoints != nil {
		s.stopCheckpoints()
		<-s.checkpointsDone
	}
}
