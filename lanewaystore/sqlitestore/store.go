// Package sqlitestore implements lanewaystore.Store on a SQLite file with the
// pure-Go driver modernc.org/sqlite, for the embedded mode: nothing to install, one file that `sqlite3 FILE` can inspect.
//
// SQLite allows one writer at a time. The store therefore keeps two
// database/sql pools on the file: a writer pool of exactly one connection,
// whose transactions start with BEGIN IMMEDIATE, and a reader pool for the
// operator queries. Writers of one process queue in Go, without SQLite's
// busy polling, production writes before backfill writes (writers.go);
// writers of other processes that share the file wait on busy_timeout. The
// file runs in WAL mode so readers never block the writer. A consequence: do not call Store methods from inside InTx's fn,
// because the writer connection is held by the open transaction.
//
// Timestamps are TEXT in the fixed-width UTC format TimeFormat, so they
// compare and sort correctly as strings (`ORDER BY created_at DESC` works in
// the sqlite3 shell).
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/laneway/laneway/lanewaystore"
)

// TimeFormat is the layout of every timestamp column: UTC, microseconds, fixed
// width, so lexical order is time order.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// BusyTimeoutDefault is how long a writer waits for another process's write
// transaction on the same file before failing with SQLITE_BUSY.
const BusyTimeoutDefault = 10 * time.Second

// readConnsMax bounds the reader pool; WAL readers run in parallel.
const readConnsMax = 4

// Store is a lanewaystore.Store on one SQLite database. Safe for concurrent use.
type Store struct {
	write *sql.DB // one connection, BEGIN IMMEDIATE
	// writers queues this process's write transactions for it: production
	// first (writers.go).
	writers writerQueue
	read    *sql.DB // WAL readers; the same *sql.DB as write for in-memory databases
	// The checkpoint goroutine of a file database (checkpoint.go).
	committed       chan struct{}
	stopCheckpoints context.CancelFunc
	checkpointsDone chan struct{}
	checkpointed    atomic.Int64 // complete checkpoints (for tests)
	markReads       atomic.Int64 // reads of the commit mark (for tests)
	// stmts are the writer's statements, each prepared once (stmt.go).
	stmts  stmtCache
	path   string // for error messages
	memory bool
}

var (
	_ lanewaystore.Store      = (*Store)(nil)
	_ lanewaystore.LeaseEnder = (*Store)(nil)
)

// Open opens (creating when missing) the SQLite database dsn and checks that
// it can be written. dsn is a file path ("laneway.db", "/var/lib/laneway.db"),
// the same prefixed with "sqlite://" ("sqlite:///var/lib/laneway.db" for an
// absolute path), or a modernc.org/sqlite DSN whose own query parameters are
// passed to the driver before the store's. The parent directory of a plain
// path is created when missing. Open sets WAL mode, busy_timeout
// (BusyTimeoutDefault), foreign_keys=on and synchronous=NORMAL, and on a file
// starts the goroutine that checkpoints the WAL (the writer never does); Close
// stops it.
//
// ":memory:" (or a DSN with mode=memory) opens a private in-memory database:
// database/sql would give every pooled connection its own empty database, so
// the store then uses one single connection for everything. Prefer a file in
// a temporary directory for tests that need concurrency.
//
// Open does not create the tables; call Migrate.
func Open(ctx context.Context, dsn string) (*Store, error) {
	dsn = strings.TrimPrefix(dsn, "sqlite://")
	if dsn == "" {
		return nil, errors.New("sqlitestore: empty database path")
	}
	base, userQuery, _ := strings.Cut(dsn, "?")
	memory := base == ":memory:" || strings.HasPrefix(base, "file::memory:") || strings.Contains(userQuery, "mode=memory")
	if !memory && !strings.HasPrefix(base, "file:") {
		if dir := filepath.Dir(base); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("sqlitestore: create directory for %s: %w", base, err)
			}
		}
	}

	// The user's parameters come first: the driver reads the first value of
	// a key such as _txlock. Every _pragma applies (busy_timeout first).
	pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)",
		BusyTimeoutDefault.Milliseconds())
	build := func(extra string) string {
		q := userQuery
		for _, p := range []string{pragmas, extra} {
			if p == "" {
				continue
			}
			if q != "" {
				q += "&"
			}
			q += p
		}
		return base + "?" + q
	}

	s := &Store{path: base, memory: memory}
	writer := "_txlock=immediate"
	if !memory {
		writer += "&_pragma=wal_autocheckpoint(0)" // the checkpoint goroutine copies the WAL
	}
	w, err := sql.Open("sqlite", build(writer))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", base, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// Ping opens the writer connection first, so the file exists and is in
	// WAL mode before any reader opens it.
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", base, err)
	}
	s.write, s.read = w, w
	if !memory {
		r, err := sql.Open("sqlite", build(""))
		if err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("sqlitestore: open %s: %w", base, err)
		}
		r.SetMaxOpenConns(readConnsMax)
		r.SetMaxIdleConns(readConnsMax)
		s.read = r
		s.startCheckpoints()
	}
	return s, nil
}

// Dialect returns "sqlite".
func (s *Store) Dialect() string { return "sqlite" }

// LeasesOnInsert reports that InsertOutbox writes a row's lease and sets
// its ID (lanewaystore.LeasingInserter).
func (s *Store) LeasesOnInsert() bool { return true }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlitestore: ping %s: %w", s.path, err)
	}
	return nil
}

// Close stops the checkpoint goroutine and closes both pools (the last
// connection to close checkpoints what is left in the WAL).
func (s *Store) Close() error {
	s.stopCheckpointing()
	err := errors.Join(s.stmts.close(), s.write.Close())
	if s.read != s.write {
		err = errors.Join(err, s.read.Close())
	}
	return err
}

// InTx runs fn in a BEGIN IMMEDIATE transaction on the writer connection.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx lanewaystore.Tx) error) error {
	return s.inTx(ctx, func(t *sql.Tx) error { return fn(ctx, &tx{tx: t, stmts: &s.stmts}) })
}

// inTx commits when fn returns nil and rolls back otherwise; on panic the
// deferred rollback runs and the panic continues.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	if err := s.writers.acquire(ctx, lanewaystore.IsBackfill(ctx)); err != nil {
		return fmt.Errorf("sqlitestore: begin: %w", err)
	}
	// Deferred first, so it runs last: after the rollback below.
	defer s.writers.release()
	s.stmts.prepare(ctx, s.write)
	t, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: begin: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = t.Rollback()
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	done = true
	if err := t.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	s.noteCommit()
	return nil
}

// tx is the unit of work's transaction.
type tx struct {
	tx    *sql.Tx
	stmts *stmtCache
}

const (
	loadAggregateSQL = `SELECT version, data FROM laneway_aggregates WHERE category = $1 AND id = $2`
	// DO NOTHING instead of failing keeps the transaction usable and turns
	// "id taken" into a plain zero-row result.
	insertAggregateSQL = `INSERT INTO laneway_aggregates (category, id, version, data, updated_at)
VALUES ($1, $2, 1, $3, $4) ON CONFLICT (category, id) DO NOTHING`
	markProcessedSQL = `INSERT INTO laneway_processed (handler, message_id, processed_at) VALUES ($1, $2, $3)
ON CONFLICT (handler, message_id) DO NOTHING`
	updateAggregateSQL = `UPDATE laneway_aggregates SET version = version + 1, data = $4, updated_at = $5
WHERE category = $1 AND id = $2 AND version = $3`
)

func (t *tx) LoadAggregate(ctx context.Context, category, id string) (lanewaystore.AggregateRecord, error) {
	rec := lanewaystore.AggregateRecord{Category: category, ID: id}
	err := t.stmts.queryRow(ctx, t.tx, loadAggregateSQL, category, id).Scan(&rec.Version, &rec.Data)
	if errors.Is(err, sql.ErrNoRows) {
		return rec, fmt.Errorf("load aggregate %s/%s: %w", category, id, lanewaystore.ErrNotFound)
	}
	if err != nil {
		return rec, fmt.Errorf("sqlitestore: load aggregate %s/%s: %w", category, id, err)
	}
	return rec, nil
}

func (t *tx) SaveAggregate(ctx context.Context, p lanewaystore.SaveAggregateParams) error {
	if p.ExpectedVersion < 0 {
		return fmt.Errorf("sqlitestore: save aggregate %s/%s: negative expected version %d", p.Category, p.ID, p.ExpectedVersion)
	}
	data := p.Data
	if data == nil {
		data = []byte{} // the column is NOT NULL
	}
	now := formatTime(time.Now())
	var res sql.Result
	var err error
	if p.ExpectedVersion == 0 {
		res, err = t.stmts.exec(ctx, t.tx, insertAggregateSQL, p.Category, p.ID, data, now)
	} else {
		res, err = t.stmts.exec(ctx, t.tx, updateAggregateSQL, p.Category, p.ID, p.ExpectedVersion, data, now)
	}
	if err != nil {
		return fmt.Errorf("sqlitestore: save aggregate %s/%s: %w", p.Category, p.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlitestore: save aggregate %s/%s: %w", p.Category, p.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("save aggregate %s/%s at expected version %d: %w", p.Category, p.ID, p.ExpectedVersion, lanewaystore.ErrVersionConflict)
	}
	return nil
}

const insertOutboxSQL = `INSERT INTO outbox
	(message_id, stream_name, stream_category, type, data, metadata, priority, status, created_at, locked_by, locked_until)
	VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10)`

func (t *tx) InsertOutbox(ctx context.Context, rows []lanewaystore.OutboxRow) error {
	if len(rows) == 0 {
		return nil
	}
	for i := range rows {
		if err := validateRow(&rows[i]); err != nil {
			return err
		}
	}
	// One statement for every row: prepared once per store, or else once
	// per transaction when there is more than one row.
	st := t.stmts.get(insertOutboxSQL)
	if st != nil {
		st = t.tx.StmtContext(ctx, st)
	} else if len(rows) > 1 {
		var err error
		if st, err = t.tx.PrepareContext(ctx, insertOutboxSQL); err != nil {
			return fmt.Errorf("sqlitestore: insert outbox: %w", err)
		}
		defer st.Close()
	}
	exec := func(ctx context.Context, args ...any) (sql.Result, error) {
		if st != nil {
			return st.ExecContext(ctx, args...)
		}
		return t.tx.ExecContext(ctx, insertOutboxSQL, args...)
	}
	now := time.Now()
	for i := range rows {
		r := &rows[i]
		created := r.CreatedAt
		if created.IsZero() {
			created = now
		}
		lockedBy, lockedUntil := insertLease(r)
		res, err := exec(ctx, r.MessageID, r.StreamName, r.StreamCategory, r.Type,
			jsonText(r.Data), jsonText(r.Metadata), r.Priority, formatTime(created), lockedBy, lockedUntil)
		if err != nil {
			return fmt.Errorf("sqlitestore: insert outbox row %s: %w", r.MessageID, err)
		}
		if r.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("sqlitestore: insert outbox row %s: %w", r.MessageID, err)
		}
	}
	return nil
}

// insertLease is the lease a row is inserted with (see
// lanewaystore.Tx.InsertOutbox): none unless both LockedBy and LockedUntil
// are set.
func insertLease(r *lanewaystore.OutboxRow) (by, until any) {
	if r.LockedBy == "" || r.LockedUntil == nil {
		return nil, nil
	}
	return r.LockedBy, formatTime(*r.LockedUntil)
}

func (t *tx) MarkProcessed(ctx context.Context, handler, messageID string) (bool, error) {
	res, err := t.stmts.exec(ctx, t.tx, markProcessedSQL, handler, messageID, formatTime(time.Now()))
	if err != nil {
		return false, fmt.Errorf("sqlitestore: mark processed %s/%s: %w", handler, messageID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlitestore: mark processed %s/%s: %w", handler, messageID, err)
	}
	return n == 1, nil
}

// Exec runs the caller's SQL. modernc.org/sqlite binds $N to the N-th
// argument (SQLite treats "$1" as a named parameter and the driver maps the
// name to the ordinal), so PostgreSQL-style placeholders need no rewriting.
func (t *tx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *tx) Query(ctx context.Context, query string, args ...any) (lanewaystore.Rows, error) {
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (t *tx) QueryRow(ctx context.Context, query string, args ...any) lanewaystore.Row {
	return row{t.tx.QueryRowContext(ctx, query, args...)}
}

// row maps sql.ErrNoRows to lanewaystore.ErrNotFound (both match errors.Is).
type row struct{ r *sql.Row }

func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %w", lanewaystore.ErrNotFound, err)
	}
	return err
}

// validateRow rejects rows the relay could not route.
func validateRow(r *lanewaystore.OutboxRow) error {
	switch {
	case r.MessageID == "":
		return errors.New("sqlitestore: insert outbox: empty message_id")
	case r.StreamCategory == "":
		return fmt.Errorf("sqlitestore: insert outbox row %s: empty stream_category", r.MessageID)
	case r.Type == "":
		return fmt.Errorf("sqlitestore: insert outbox row %s: empty type", r.MessageID)
	}
	return nil
}

// jsonText stores JSON as TEXT (readable in the sqlite3 shell, usable with
// json_extract); an empty payload is stored as "{}".
func jsonText(b []byte) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}

func formatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// timeLayouts are tried in order when reading a timestamp; the later ones
// accept values an operator wrote by hand (datetime('now'), RFC 3339).
var timeLayouts = []string{TimeFormat, time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"}

func parseTime(s string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("sqlitestore: unreadable timestamp %q", s)
}

func parseNullTime(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}
