// Package pgstore implements lanewaystore.Store on PostgreSQL (14 or later)
// with pgx/v5, for production. Many engine processes
// share the outbox: claims use FOR UPDATE SKIP LOCKED, and a commit that
// inserted outbox rows sends a NOTIFY that ListenOutbox turns into a wake-up
// in every process.
//
// The URL is a libpq-style URL or keyword/value string. Parameters pgx does
// not know, such as search_path or application_name, are sent to the server
// as session settings, so `?search_path=myschema` puts Laneway's tables in
// that schema. pool_max_conns bounds the connection pool (default: the
// greater of 4 and the number of CPUs).
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/laneway/laneway/lanewaystore"
)

// ConnectTimeoutDefault bounds each connection attempt when the URL has no
// connect_timeout, so an unreachable server fails Open instead of hanging.
const ConnectTimeoutDefault = 10 * time.Second

// Store is a lanewaystore.Store on PostgreSQL. Safe for concurrent use.
type Store struct {
	pool *pool
	addr string // host:port, for error messages (never the password)
}

var (
	_ lanewaystore.Store      = (*Store)(nil)
	_ lanewaystore.Notifier   = (*Store)(nil)
	_ lanewaystore.LeaseEnder = (*Store)(nil)
)

// Open connects to PostgreSQL at url and checks that it answers. The error
// names host:port and never the password. Open does not create the tables;
// call Migrate.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx redacts the password in parse errors.
		return nil, fmt.Errorf("pgstore: invalid PostgreSQL URL: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = ConnectTimeoutDefault
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	p, err := newPool(cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{pool: p, addr: addr}
	var schema *string
	if err := p.with(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema)
	}); err != nil {
		p.close()
		return nil, fmt.Errorf("cannot connect to PostgreSQL at %s: %w", addr, err)
	}
	if schema == nil {
		// Every later statement would fail with "no schema has been
		// selected to create in"; say what is wrong instead.
		p.close()
		return nil, fmt.Errorf("pgstore: no schema of search_path %q exists in database %q at %s: create it first",
			cfg.RuntimeParams["search_path"], cfg.Database, addr)
	}
	return s, nil
}

// Dialect returns "postgres".
func (s *Store) Dialect() string { return "postgres" }

// LeasesOnInsert reports that InsertOutbox writes a row's lease and sets
// its ID (lanewaystore.LeasingInserter).
func (s *Store) LeasesOnInsert() bool { return true }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.with(ctx, func(c *pgx.Conn) error { return c.Ping(ctx) }); err != nil {
		return fmt.Errorf("pgstore: ping PostgreSQL at %s: %w", s.addr, err)
	}
	return nil
}

// Close closes the idle connections; connections still in use close when
// their operation ends, and later calls fail.
func (s *Store) Close() error {
	s.pool.close()
	return nil
}

// InTx runs fn in a READ COMMITTED transaction (see uow for how its
// statements are pipelined). Serialization failures and deadlocks are
// returned as they are (errors.As *pgconn.PgError); whether to run the unit
// of work again is the caller's decision.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx lanewaystore.Tx) error) error {
	c, err := s.pool.acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: begin: %w", err)
	}
	// Deferred first, so it runs after the rollback below: release closes a
	// connection that is still inside a transaction.
	defer s.pool.release(c)
	t := &uow{conn: c.Conn}
	done := false
	defer func() {
		if !done {
			t.rollback(ctx)
		}
	}()
	if err := fn(ctx, t); err != nil {
		return err
	}
	done = true
	return t.commit(ctx)
}

// inTx runs fn in a plain pgx transaction, for the store's own multi-step
// work (migrations); it commits when fn returns nil and rolls back otherwise;
// on panic the deferred rollback runs and the panic continues.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	c, err := s.pool.acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: begin: %w", err)
	}
	defer s.pool.release(c)
	t, err := c.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: begin: %w", err)
	}
	done := false
	defer func() {
		if !done {
			rctx, cancel := rollbackContext(ctx)
			defer cancel()
			_ = t.Rollback(rctx)
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	done = true
	if err := t.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: commit: %w", err)
	}
	return nil
}

// rollbackContext lets a rollback reach the server even when ctx is what
// failed the transaction; otherwise pgx drops the connection.
func rollbackContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

func (t *uow) LoadAggregate(ctx context.Context, category, id string) (lanewaystore.AggregateRecord, error) {
	rec := lanewaystore.AggregateRecord{Category: category, ID: id}
	err := t.queryRow(ctx, func(r pgx.Row) error { return r.Scan(&rec.Version, &rec.Data) },
		`SELECT version, data FROM laneway_aggregates WHERE category = $1 AND id = $2`, category, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return rec, fmt.Errorf("load aggregate %s/%s: %w", category, id, lanewaystore.ErrNotFound)
	}
	if err != nil {
		return rec, fmt.Errorf("pgstore: load aggregate %s/%s: %w", category, id, err)
	}
	return rec, nil
}

func (t *uow) SaveAggregate(ctx context.Context, p lanewaystore.SaveAggregateParams) error {
	if p.ExpectedVersion < 0 {
		return fmt.Errorf("pgstore: save aggregate %s/%s: negative expected version %d", p.Category, p.ID, p.ExpectedVersion)
	}
	data := p.Data
	if data == nil {
		data = []byte{} // the column is NOT NULL
	}
	var tag pgconn.CommandTag
	var err error
	if p.ExpectedVersion == 0 {
		// DO NOTHING instead of a unique violation keeps the transaction
		// usable (a failed statement would abort it) and turns "id taken"
		// into a zero-row result. A concurrent insert of the same id waits
		// for the other transaction and then does nothing.
		tag, err = t.exec(ctx,
			`INSERT INTO laneway_aggregates (category, id, version, data, updated_at)
			 VALUES ($1, $2, 1, $3, now()) ON CONFLICT (category, id) DO NOTHING`,
			p.Category, p.ID, data)
	} else {
		// Under READ COMMITTED a concurrent update of the same row makes
		// this one wait, then re-check the version on the new row: the
		// loser matches zero rows.
		tag, err = t.exec(ctx,
			`UPDATE laneway_aggregates SET version = version + 1, data = $4, updated_at = now()
			 WHERE category = $1 AND id = $2 AND version = $3`,
			p.Category, p.ID, p.ExpectedVersion, data)
	}
	if err != nil {
		return fmt.Errorf("pgstore: save aggregate %s/%s: %w", p.Category, p.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("save aggregate %s/%s at expected version %d: %w", p.Category, p.ID, p.ExpectedVersion, lanewaystore.ErrVersionConflict)
	}
	return nil
}

// insertOutboxSQL inserts a whole batch in one statement and one round trip:
// the columns travel as arrays. WITH ORDINALITY keeps the ids in slice
// order; rows without a created_at get the server's clock_timestamp(), one
// clock for every process.
const insertOutboxSQL = `INSERT INTO outbox
	(message_id, stream_name, stream_category, type, data, metadata, priority, status, created_at, locked_by, locked_until)
SELECT m, sn, sc, ty, d::json, md::json, pr, 'pending', coalesce(ca, clock_timestamp()), lb, lu
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::timestamptz[],
	$9::text[], $10::timestamptz[])
	WITH ORDINALITY AS u(m, sn, sc, ty, d, md, pr, ca, lb, lu, ord)
ORDER BY ord
RETURNING id, message_id`

// insertOneOutboxSQL is insertOutboxSQL for the common single row (a
// command raising one event): plain parameters cost the server less than
// eight one-element arrays and a sort.
const insertOneOutboxSQL = `INSERT INTO outbox
	(message_id, stream_name, stream_category, type, data, metadata, priority, status, created_at, locked_by, locked_until)
VALUES ($1, $2, $3, $4, $5::json, $6::json, $7, 'pending', coalesce($8, clock_timestamp()), $9, $10)
RETURNING id, message_id`

// QueueSaveAggregate is SaveAggregate sent with the transaction's next
// statement or its commit (see uow), which saves a command its own round
// trip. The version check moves to the server: the statement divides by the
// number of rows it wrote, so a conflict (no row) fails it with
// division_by_zero, which send reports as lanewaystore.ErrVersionConflict.
// The failed statement aborts the transaction, which is then rolled back.
func (t *uow) QueueSaveAggregate(ctx context.Context, p lanewaystore.SaveAggregateParams) error {
	if p.ExpectedVersion < 0 {
		return fmt.Errorf("pgstore: save aggregate %s/%s: negative expected version %d", p.Category, p.ID, p.ExpectedVersion)
	}
	data := p.Data
	if data == nil {
		data = []byte{}
	}
	d := deferredStmt{
		what:     fmt.Sprintf("save aggregate %s/%s", p.Category, p.ID),
		conflict: fmt.Sprintf("save aggregate %s/%s at expected version %d", p.Category, p.ID, p.ExpectedVersion),
	}
	if p.ExpectedVersion == 0 {
		d.sql = `WITH w AS (INSERT INTO laneway_aggregates (category, id, version, data, updated_at)
			VALUES ($1, $2, 1, $3, now()) ON CONFLICT (category, id) DO NOTHING RETURNING 1)
			SELECT 1 / count(*)::int FROM w`
		d.args = []any{p.Category, p.ID, data}
	} else {
		d.sql = `WITH w AS (UPDATE laneway_aggregates SET version = version + 1, data = $4, updated_at = now()
			WHERE category = $1 AND id = $2 AND version = $3 RETURNING 1)
			SELECT 1 / count(*)::int FROM w`
		d.args = []any{p.Category, p.ID, p.ExpectedVersion, data}
	}
	t.deferred = append(t.deferred, d)
	return nil
}

// notifySQL wakes the relays of every process after a commit that inserted
// outbox rows. The payload is the schema so that listeners of other Laneway
// schemas in the same database ignore it. It is sent after COMMIT, in the
// same round trip but in a transaction of its own: PostgreSQL serializes
// the commits of notifying transactions on one lock held through the commit's
// WAL flush, so a NOTIFY inside the unit of work would make concurrent units
// of work commit one at a time. The NOTIFY-only transaction writes no WAL and
// holds that lock for microseconds.
const notifySQL = `SELECT pg_notify('` + NotifyChannel + `', coalesce(current_schema(), ''))`

func (t *uow) InsertOutbox(ctx context.Context, rows []lanewaystore.OutboxRow) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	var (
		ids, streams, cats, types, data, meta = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		prios                                 = make([]int64, n)
		created                               = make([]*time.Time, n)
		lockedBy                              = make([]*string, n)
		lockedUntil                           = make([]*time.Time, n)
		leased                                = 0
	)
	for i := range rows {
		r := &rows[i]
		if err := validateRow(r); err != nil {
			return err
		}
		ids[i], streams[i], cats[i], types[i] = r.MessageID, r.StreamName, r.StreamCategory, r.Type
		data[i], meta[i] = jsonText(r.Data), jsonText(r.Metadata)
		prios[i] = int64(r.Priority)
		if !r.CreatedAt.IsZero() {
			c := pgTime(r.CreatedAt)
			created[i] = &c
		}
		if r.LockedBy != "" && r.LockedUntil != nil {
			u := pgTime(*r.LockedUntil)
			lockedBy[i], lockedUntil[i] = &r.LockedBy, &u
			leased++
		}
	}
	// Rows leased at insert are for the relay that leased them, which
	// learns of them in its own process; no other relay may claim them
	// before the lease ends, so waking the other relays would only send
	// them to claim nothing.
	if leased < n {
		t.notify = true
	}
	sql, args := insertOutboxSQL, []any{ids, streams, cats, types, data, meta, prios, created, lockedBy, lockedUntil}
	if n == 1 {
		sql, args = insertOneOutboxSQL, []any{ids[0], streams[0], cats[0], types[0], data[0], meta[0], prios[0], created[0], lockedBy[0], lockedUntil[0]}
	}
	t.deferred = append(t.deferred, deferredStmt{
		sql:       sql,
		args:      args,
		what:      fmt.Sprintf("insert %d outbox rows (first %s)", n, rows[0].MessageID),
		returning: func(res pgx.Rows) error { return scanInsertedIDs(res, rows) },
	})
	return nil
}

// scanInsertedIDs sets each row's ID from the insert's RETURNING id,
// message_id. The rows are matched by message id, which is unique, so the
// order RETURNING gives them in does not matter.
func scanInsertedIDs(res pgx.Rows, rows []lanewaystore.OutboxRow) error {
	defer res.Close()
	byMessage := make(map[string]int64, len(rows))
	for res.Next() {
		var id int64
		var msg string
		if err := res.Scan(&id, &msg); err != nil {
			return err
		}
		byMessage[msg] = id
	}
	if err := res.Err(); err != nil {
		return err
	}
	for i := range rows {
		id, ok := byMessage[rows[i].MessageID]
		if !ok {
			return fmt.Errorf("the insert returned no id for message %s", rows[i].MessageID)
		}
		rows[i].ID = id
	}
	return nil
}

func (t *uow) MarkProcessed(ctx context.Context, handler, messageID string) (bool, error) {
	tag, err := t.exec(ctx,
		`INSERT INTO laneway_processed (handler, message_id, processed_at) VALUES ($1, $2, now())
		 ON CONFLICT (handler, message_id) DO NOTHING`,
		handler, messageID)
	if err != nil {
		return false, fmt.Errorf("pgstore: mark processed %s/%s: %w", handler, messageID, err)
	}
	return tag.RowsAffected() == 1, nil
}

func (t *uow) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := t.exec(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// Query runs the caller's query. Close the Rows before the next statement:
// a pgx connection reads one result at a time.
func (t *uow) Query(ctx context.Context, sql string, args ...any) (lanewaystore.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	r, err := t.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

func (t *uow) QueryRow(ctx context.Context, sql string, args ...any) lanewaystore.Row {
	if err := t.flush(ctx); err != nil {
		return errRow{err}
	}
	return row{t.conn.QueryRow(ctx, sql, args...)}
}

// errRow is a Row whose statement could not be sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// rows adapts pgx.Rows, whose Close returns nothing.
type rows struct{ r pgx.Rows }

func (r rows) Next() bool             { return r.r.Next() }
func (r rows) Scan(dest ...any) error { return r.r.Scan(dest...) }
func (r rows) Err() error             { return r.r.Err() }
func (r rows) Close() error {
	r.r.Close()
	return r.r.Err()
}

// row maps pgx.ErrNoRows to lanewaystore.ErrNotFound (both match errors.Is).
type row struct{ r pgx.Row }

func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", lanewaystore.ErrNotFound, err)
	}
	return err
}

// validateRow rejects rows the relay could not route.
func validateRow(r *lanewaystore.OutboxRow) error {
	switch {
	case r.MessageID == "":
		return errors.New("pgstore: insert outbox: empty message_id")
	case r.StreamCategory == "":
		return fmt.Errorf("pgstore: insert outbox row %s: empty stream_category", r.MessageID)
	case r.Type == "":
		return fmt.Errorf("pgstore: insert outbox row %s: empty type", r.MessageID)
	}
	return nil
}

// jsonText passes JSON as text to a json column, which keeps the exact bytes
// (unlike jsonb); an empty payload is stored as "{}".
func jsonText(b []byte) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}

// pgTime truncates to the microsecond that timestamptz keeps; PostgreSQL
// would round instead, and the SQLite store truncates.
func pgTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
