package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migration is one numbered schema change. The version numbers match the
// SQLite store's list (sqlitestore), which makes the same change in its own
// dialect.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations are applied in order, each once, each in its own transaction.
// Never edit an applied migration; append a new one.
//
// data and metadata are json, not jsonb: json keeps the exact bytes the
// engine wrote (jsonb reorders keys and rejects \u0000), while operators can
// still use ->, ->> and json_* functions on it. Aggregate state is bytea: the
// store does not assume a format.
var migrations = []migration{
	{version: 1, name: "outbox, aggregates, processed markers", sql: `
CREATE TABLE outbox (
	id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	message_id       TEXT        NOT NULL UNIQUE,
	stream_name      TEXT        NOT NULL,
	stream_category  TEXT        NOT NULL,
	type             TEXT        NOT NULL,
	data             JSON        NOT NULL,
	metadata         JSON        NOT NULL,
	priority         INTEGER     NOT NULL DEFAULT 0,
	status           TEXT        NOT NULL DEFAULT 'pending'
	                 CHECK (status IN ('pending', 'processing', 'published', 'failed', 'abandoned')),
	retry_count      INTEGER     NOT NULL DEFAULT 0,
	next_retry_at    TIMESTAMPTZ,
	locked_by        TEXT,
	locked_until     TIMESTAMPTZ,
	last_error       TEXT,
	created_at       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
	published_at     TIMESTAMPTZ,
	published_stream TEXT
);
-- The claim reads this index in order and stops after LIMIT rows, however
-- large the backlog (an index led by status would need a sort of every
-- active row). The claim query repeats the predicate word for word.
CREATE INDEX outbox_claim_idx ON outbox (priority DESC, created_at, id)
	WHERE status IN ('pending', 'failed', 'processing');
CREATE INDEX outbox_published_at_idx ON outbox (published_at) WHERE status = 'published';
CREATE INDEX outbox_created_at_idx ON outbox (created_at);

CREATE TABLE laneway_aggregates (
	category   TEXT        NOT NULL,
	id         TEXT        NOT NULL,
	version    BIGINT      NOT NULL,
	data       BYTEA       NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (category, id)
);

CREATE TABLE laneway_processed (
	handler      TEXT        NOT NULL,
	message_id   TEXT        NOT NULL,
	processed_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (handler, message_id)
);
`},
	{version: 2, name: "claims update outbox rows in place", sql: `
-- The claim changes no indexed column, so PostgreSQL can write the leased
-- version of a row into the same page without touching any index (a HOT
-- update), but only if the page has room for it. A claim leases every row of
-- a page in one statement, so half of each page is kept free at insert. The
-- cost is disk: every row kept (pending, and published until its retention
-- ends) takes about twice the pages.
-- Pages written before this migration keep their old fill.
ALTER TABLE outbox SET (fillfactor = 50);
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
-- Not indexed, so the claim that writes it stays a HOT update.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS lapsed_lease_until TIMESTAMPTZ;
`},
}

// Migrate creates or upgrades the tables in the current schema (the first
// existing schema of search_path). It is idempotent and safe to run from
// several processes at once: each migration's transaction first takes a
// transaction-scoped advisory lock keyed on the schema, then re-checks
// whether the migration was applied meanwhile. The lock also covers the
// CREATE TABLE IF NOT EXISTS of the bookkeeping table, which is not safe
// to run concurrently on its own.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrateTo(ctx, migrations[len(migrations)-1].version)
}

// migrateTo applies the migrations up to version last; tests use it to build
// an older schema to upgrade from.
func (s *Store) migrateTo(ctx context.Context, last int) error {
	for _, m := range migrations {
		if m.version > last {
			break
		}
		err := s.inTx(ctx, func(t pgx.Tx) error {
			if _, err := t.Exec(ctx,
				`SELECT pg_advisory_xact_lock(hashtext('laneway_migrate:' || coalesce(current_schema(), '')))`); err != nil {
				return err
			}
			if _, err := t.Exec(ctx, `CREATE TABLE IF NOT EXISTS laneway_schema_migrations (
				version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
				return err
			}
			var applied bool
			if err := t.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM laneway_schema_migrations WHERE version = $1)`,
				m.version).Scan(&applied); err != nil {
				return err
			}
			if applied {
				return nil
			}
			if _, err := t.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := t.Exec(ctx, `INSERT INTO laneway_schema_migrations (version) VALUES ($1)`, m.version)
			return err
		})
		if err != nil {
			return fmt.Errorf("pgstore: migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}
