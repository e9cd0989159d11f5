package sqlitestore

import (
	"context"
	"path/filepath"
	"time"

	"github.com/laneway/laneway/internal/filechange"
	"github.com/laneway/laneway/internal/startstop"
	"github.com/laneway/laneway/lanewaystore"
)

// Waking relays on other processes' commits (lanewaystore.Notifier).
// SQLite sends no notification, so ListenOutbox makes one: it watches the
// database's write-ahead log for writes (inotify on Linux), reads the
// commit mark when the log was written, and calls notify when the mark
// moved. Every commit in WAL mode writes the log, in any process on the
// host (WAL needs them all on one host: they share the log's index in
// memory), so a row another process commits wakes the relay at once, and
// an idle database costs no wake-up at all.
//
// This store's own commits write the log too, but do not move the mark:
// its units of work wake their relay themselves. The mark is read at most
// once per commitCheckGap however busy the log is, so writes keep no
// goroutine spinning and take the writer's turn at most that often.
//
// Where the log cannot be watched (another platform, or the host's inotify
// limits reached) the mark is read every commitCheckGap instead, as the
// relay did before the watch. Either way the relay still polls with a claim
// once per max_tick_interval, which finds rows that become claimable with
// no commit (a retry's time, a lapsed lease).

// commitCheckGap is the least time between two reads of the commit mark,
// and the poll's period where the log cannot be watched.
const commitCheckGap = 25 * time.Millisecond

var _ lanewaystore.Notifier = (*Store)(nil)

// ListenOutbox calls notify, from one goroutine, after commits of other
// processes (and of other Stores on the same file) to the database, until
// ctx is done or stop is called; stop waits for the goroutine. A commit
// before ListenOutbox returns is not signalled: the caller's first claim
// finds it. A commit of this Store is never signalled. An in-memory
// database has no other process: nothing is watched.
func (s *Store) ListenOutbox(ctx context.Context, notify func()) (stop func(), err error) {
	if s.memory {
		return func() {}, nil
	}
	var changes <-chan struct{}
	closeWatch := func() error { return nil }
	if w, err := s.watchLog(ctx); err == nil {
		changes, closeWatch = w.Changes(), w.Close
	}
	// The mark is read after the watch started: a commit between the two
	// is either before the mark, or wakes the watch.
	l := &commitListener{s: s, notify: notify}
	l.last, err = s.CommitMark(ctx)
	l.known = err == nil
	return startstop.Background(ctx, func(ctx context.Context) {
		defer func() { _ = closeWatch() }()
		l.run(ctx, changes)
	}), nil
}

// commitListener calls notify when the commit mark moved.
type commitListener struct {
	s      *Store
	notify func()
	last   uint64 // the mark last read,
	known  bool   // unless its read failed
}

// run reads the mark after each signal of changes, at most once per
// commitCheckGap, or every commitCheckGap without a watch (changes nil)
// and once the watch failed (changes closed).
func (l *commitListener) run(ctx context.Context, changes <-chan struct{}) {
	var ticker *time.Ticker
	var tick <-chan time.Time
	pollFromNow := func() {
		ticker = time.NewTicker(commitCheckGap)
		tick, changes = ticker.C, nil
	}
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	if changes == nil {
		pollFromNow()
	}
	gap := time.NewTimer(commitCheckGap)
	gap.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				pollFromNow() // and read the mark now: writes may have been missed
			}
		case <-tick:
		}
		if !l.check(ctx) || changes == nil {
			continue
		}
		// Writes during the gap are one more signal, taken after it.
		gap.Reset(commitCheckGap)
		select {
		case <-ctx.Done():
			gap.Stop()
			return
		case <-gap.C:
		}
	}
}

// check reads the mark and notifies when it moved, or when it cannot be
// read (the relay's claim then reports the database's state). It reports
// whether the mark was read.
func (l *commitListener) check(ctx context.Context) bool {
	mark, err := l.s.CommitMark(ctx)
	if err != nil {
		if ctx.Err() == nil {
			l.notify()
		}
		l.known = false
		return false
	}
	if !l.known || mark != l.last {
		l.notify()
	}
	l.last, l.known = mark, true
	return true
}

// watchLog watches the database's write-ahead log, named by SQLite itself
// (the main file's path as it opened it, plus "-wal").
func (s *Store) watchLog(ctx context.Context) (*filechange.Watcher, error) {
	var seq int
	var name, file string
	if err := s.read.QueryRowContext(ctx, `PRAGMA database_list`).Scan(&seq, &name, &file); err != nil {
		return nil, err
	}
	return filechange.Watch(filepath.Dir(file), filepath.Base(file)+"-wal")
}
