package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migration is one numbered schema change. The version numbers match the
// PostgreSQL store's list (pgstore), which makes the same change in its own
// dialect.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations are applied in order, each once, each in its own transaction.
// Never edit an applied migration; append a new one.
var migrations = []migration{
	{version: 1, name: "outbox, aggregates, processed markers", sql: `
CREATE TABLE outbox (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	message_id       TEXT    NOT NULL UNIQUE,
	stream_name      TEXT    NOT NULL,
	stream_category  TEXT    NOT NULL,
	type             TEXT    NOT NULL,
	-- Valid JSON, as PostgreSQL's json type enforces.
	data             TEXT    NOT NULL CHECK (json_valid(data)),
	metadata         TEXT    NOT NULL CHECK (json_valid(metadata)),
	priority         INTEGER NOT NULL DEFAULT 0,
	status           TEXT    NOT NULL DEFAULT 'pending'
	                 CHECK (status IN ('pending', 'processing', 'published', 'failed', 'abandoned')),
	retry_count      INTEGER NOT NULL DEFAULT 0,
	next_retry_at    TEXT,
	locked_by        TEXT,
	locked_until     TEXT,
	last_error       TEXT,
	-- Same fixed-width format as the store writes (%f gives milliseconds).
	created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
	published_at     TEXT,
	published_stream TEXT
);
-- The claim reads this index in order and stops after LIMIT rows; its WHERE
-- matches the claim query's first term word for word, which is what lets
-- SQLite use a partial index.
CREATE INDEX outbox_claim_idx ON outbox (priority DESC, created_at, id)
	WHERE status IN ('pending', 'failed', 'processing');
CREATE INDEX outbox_published_at_idx ON outbox (published_at) WHERE status = 'published';
CREATE INDEX outbox_created_at_idx ON outbox (created_at);

CREATE TABLE laneway_aggregates (
	category   TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	data       BLOB    NOT NULL,
	updated_at TEXT    NOT NULL,
	PRIMARY KEY (category, id)
);

CREATE TABLE laneway_processed (
	handler      TEXT NOT NULL,
	message_id   TEXT NOT NULL,
	processed_at TEXT NOT NULL,
	PRIMARY KEY (handler, message_id)
);
`},
	{version: 2, name: "claims update outbox rows in place", sql: `
-- A claim now writes only the lease (lanewaystore.ReportedStatus): rows that
-- version 1 stored as processing keep their lease and are stored as what
-- they were before the claim.
UPDATE outbox SET status = CASE WHEN retry_count > 0 THEN 'failed' ELSE 'pending' END
WHERE status = 'processing';
`},
	{version: 3, name: "outbox rows remember an unsettled lease", sql: `
-- The end of an earlier lease that left the row unmarked (its relay died or
-- its publish failed): the row may be in its stream already, and the relay
-- looks for it there before appending it again (OutboxRow.LapsedLease).
ALTER TABLE outbox ADD COLUMN lapsed_lease_until TEXT;
`},
}

// Migrate creates or upgrades the tables. It is idempotent and safe to run
// from several processes at once: each migration runs in a BEGIN IMMEDIATE
// transaction that re-checks whether another process applied it meanwhile.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrateTo(ctx, migrations[len(migrations)-1].version)
}

// migrateTo applies the migrations up to version last; tests use it to build
// an older schema to upgrade from.
func (s *Store) migrateTo(ctx context.Context, last int) error {
	if _, err := s.write.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS laneway_schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("sqlitestore: migrate: %w", err)
	}
	for _, m := range migrations {
		if m.version > last {
			break
		}
		err := s.inTx(ctx, func(t *sql.Tx) error {
			var n int
			if err := t.QueryRowContext(ctx, `SELECT count(*) FROM laneway_schema_migrations WHERE version = $1`, m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := t.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := t.ExecContext(ctx, `INSERT INTO laneway_schema_migrations (version, applied_at) VALUES ($1, $2)`,
				m.version, formatTime(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlitestore: migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}
