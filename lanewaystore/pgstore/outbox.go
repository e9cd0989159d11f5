package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/internal/outboxsql"
)

// Defaults for zero-valued parameters, shared by every store.
const (
	// LeaseDefault is the claim lease when ClaimParams.Lease is zero.
	LeaseDefault = outboxsql.LeaseDefault
	// CleanupLimitDefault bounds CleanupOutbox when CleanupParams.Limit is zero.
	CleanupLimitDefault = outboxsql.CleanupLimitDefault
	// ListLimitDefault bounds ListOutbox when ListOutboxParams.Limit is zero.
	ListLimitDefault = outboxsql.ListLimitDefault
)

// claimSQL leases the first Limit eligible rows in one statement. The CTE is
// MATERIALIZED so the locking subquery runs exactly once; SKIP LOCKED lets
// concurrent claimers take disjoint rows instead of waiting on each other.
// The first WHERE term repeats the claim index's predicate so the planner can
// use the partial index; the NULL checks make hand-edited rows without a
// retry time or lease claimable. The update writes only the lease, no
// indexed column, so it is a HOT update (see lanewaystore.ReportedStatus and
// migration 2's fillfactor). The priority range (ClaimParams.Priorities,
// the whole column range when unset) bounds the index's leading column, so
// the production and the backfill claims each read only their part of the
// same index.
const claimSQL = `WITH c AS MATERIALIZED (
	SELECT id FROM outbox
	WHERE status IN ('pending', 'failed', 'processing')
	  AND (locked_until IS NULL OR locked_until <= $3)
	  AND (status <> 'failed' OR next_retry_at IS NULL OR next_retry_at <= $3)
	  AND priority BETWEEN $5 AND $6
	ORDER BY priority DESC, created_at, id
	LIMIT $4
	FOR UPDATE SKIP LOCKED)
UPDATE outbox o SET locked_by = $1, locked_until = $2, ` + outboxsql.ClaimLapsed + `
FROM c WHERE o.id = c.id
RETURNING o.id, o.message_id, o.stream_name, o.stream_category, o.type, o.data, o.metadata, o.priority, o.status,
	o.retry_count, o.next_retry_at, o.locked_by, o.locked_until, o.last_error, o.created_at, o.published_at, o.published_stream,
	o.lapsed_lease_until`

// claimPlan keeps the claim on its one good plan: a walk of
// outbox_claim_idx in order that stops after LIMIT rows. Without
// statistics (a table filled faster than autovacuum analyzes it, as a
// migration fills the outbox of a new service) the planner estimated a
// handful of matching rows and chose a bitmap scan of every backfill row
// and a sort of them all: each claim then took 60-250 ms whatever its
// LIMIT, and a 100,000-row migration drained at 400-1,600 rows/s instead
// of about 20,000. The settings only price the other paths out (they stay
// possible), and only for the claim's own transaction.
var claimPlan = []string{
	"SET LOCAL enable_sort TO off",
	"SET LOCAL enable_bitmapscan TO off",
	"SET LOCAL enable_seqscan TO off",
}

// ClaimOutbox leases up to p.Limit eligible rows to p.WorkerID until
// p.Now+p.Lease and returns them ordered priority DESC, created_at, id.
// Limit <= 0 claims nothing; a zero Lease means LeaseDefault and a zero Now
// the wall clock.
func (s *Store) ClaimOutbox(ctx context.Context, p lanewaystore.ClaimParams) ([]lanewaystore.OutboxRow, error) {
	c, ok, err := outboxsql.NewClaim(p)
	if !ok {
		if err != nil {
			err = fmt.Errorf("pgstore: %w", err)
		}
		return nil, err
	}
	var out []lanewaystore.OutboxRow
	err = s.relayTx(ctx, func(res pgx.BatchResults) error {
		rows, err := res.Query()
		if err != nil {
			return err
		}
		out, err = scanOutboxRows(rows)
		return err
	}, claimPlan, claimSQL, c.WorkerID, pgTime(c.LockedUntil), pgTime(c.Now), c.Limit, c.MinPriority, c.MaxPriority)
	if err != nil {
		return nil, fmt.Errorf("pgstore: claim outbox: %w", err)
	}
	outboxsql.SortClaimed(out)
	return out, nil
}

// MarkPublished marks the rows still leased by p.WorkerID published, each
// with its physical stream, in one statement. The lease is cleared;
// last_error is kept as history.
func (s *Store) MarkPublished(ctx context.Context, p lanewaystore.MarkPublishedParams) error {
	if len(p.Rows) == 0 {
		return nil
	}
	ids := make([]int64, len(p.Rows))
	streams := make([]string, len(p.Rows))
	for i, r := range p.Rows {
		ids[i], streams[i] = r.ID, r.Stream
	}
	at := p.At
	if at.IsZero() {
		at = time.Now()
	}
	err := s.relayTx(ctx, func(res pgx.BatchResults) error {
		_, err := res.Exec()
		return err
	}, nil, `UPDATE outbox o
		SET status = 'published', published_at = $4, published_stream = v.stream, locked_by = NULL, locked_until = NULL
		FROM unnest($1::bigint[], $2::text[]) AS v(id, stream)
		WHERE o.id = v.id AND o.locked_by = $3 AND o.status IN ('pending', 'failed', 'processing')`,
		ids, streams, p.WorkerID, pgTime(at))
	if err != nil {
		return fmt.Errorf("pgstore: mark published: %w", err)
	}
	return nil
}

// MarkFailed records a failed publish of the rows still leased by
// p.WorkerID. A zero NextRetryAt leaves next_retry_at NULL, which makes a
// failed row claimable at once.
func (s *Store) MarkFailed(ctx context.Context, p lanewaystore.MarkFailedParams) error {
	if len(p.IDs) == 0 {
		return nil
	}
	status := lanewaystore.StatusFailed
	var next *time.Time
	if p.Abandon {
		status = lanewaystore.StatusAbandoned
	} else if !p.NextRetryAt.IsZero() {
		t := pgTime(p.NextRetryAt)
		next = &t
	}
	if p.Outage {
		_, err := s.exec(ctx, `UPDATE outbox SET last_error = $2, locked_by = NULL, locked_until = NULL,
			    `+outboxsql.FailedLapsed(`$4::boolean`)+`
			WHERE id = ANY($3::bigint[]) AND locked_by = $1 AND status IN ('pending', 'failed', 'processing')`,
			p.WorkerID, p.Error, p.IDs, !p.NotSent)
		if err != nil {
			return fmt.Errorf("pgstore: release rows: %w", err)
		}
		return nil
	}
	_, err := s.exec(ctx, `UPDATE outbox
		SET retry_count = retry_count + 1, last_error = $2, status = $3, next_retry_at = $4,
		    locked_by = NULL, locked_until = NULL,
		    `+outboxsql.FailedLapsed(`$6::boolean`)+`
		WHERE id = ANY($5::bigint[]) AND locked_by = $1 AND status IN ('pending', 'failed', 'processing')`,
		p.WorkerID, p.Error, string(status), next, p.IDs, !p.NotSent)
	if err != nil {
		return fmt.Errorf("pgstore: mark failed: %w", err)
	}
	return nil
}

// EndLeases ends, as of p.Now, the leases that the relays p.WorkerIDs hold
// past p.Now on rows still to be published (lanewaystore.LeaseEnder). The
// status term is the claim index's predicate, so only the rows that index
// holds are read.
func (s *Store) EndLeases(ctx context.Context, p lanewaystore.EndLeasesParams) (int64, error) {
	if len(p.WorkerIDs) == 0 {
		return 0, nil
	}
	tag, err := s.exec(ctx, `UPDATE outbox SET locked_until = $2
		WHERE status IN ('pending', 'failed', 'processing') AND locked_by = ANY($1::text[]) AND locked_until > $2`,
		p.WorkerIDs, pgTime(outboxsql.Now(p.Now)))
	if err != nil {
		return 0, fmt.Errorf("pgstore: end leases: %w", err)
	}
	return tag.RowsAffected(), nil
}

// CleanupOutbox deletes at most p.Limit (CleanupLimitDefault when zero) old
// published and abandoned rows and returns how many it deleted.
func (s *Store) CleanupOutbox(ctx context.Context, p lanewaystore.CleanupParams) (int64, error) {
	// = ANY(ARRAY(...)) makes the delete look the ids up by primary key;
	// IN (subquery) plans a hash join over the whole table.
	tag, err := s.exec(ctx, `DELETE FROM outbox WHERE id = ANY(ARRAY(
		SELECT id FROM outbox
		WHERE (status = 'published' AND published_at < $1) OR (status = 'abandoned' AND created_at < $2)
		LIMIT $3))`,
		pgTime(p.PublishedBefore), pgTime(p.AbandonedBefore), outboxsql.CleanupLimit(p))
	if err != nil {
		return 0, fmt.Errorf("pgstore: cleanup outbox: %w", err)
	}
	return tag.RowsAffected(), nil
}

// OutboxStats counts rows by status and priority (ordered by status, then
// priority DESC) and finds the oldest pending or failed row.
func (s *Store) OutboxStats(ctx context.Context) (lanewaystore.OutboxStats, error) {
	var st lanewaystore.OutboxStats
	err := s.pool.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx,
			outboxsql.Counts)
		if err != nil {
			return err
		}
		st.Counts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (lanewaystore.OutboxCount, error) {
			var c lanewaystore.OutboxCount
			var status string
			err := r.Scan(&status, &c.Priority, &c.Count)
			c.Status = lanewaystore.OutboxStatus(status)
			return c, err
		})
		if err != nil {
			return err
		}
		return c.QueryRow(ctx,
			outboxsql.OldestPending).Scan(&st.OldestPending)
	})
	if err != nil {
		return st, fmt.Errorf("pgstore: outbox stats: %w", err)
	}
	if len(st.Counts) == 0 {
		st.Counts = nil
	}
	if st.OldestPending != nil {
		t := st.OldestPending.UTC()
		st.OldestPending = &t
	}
	return st, nil
}

// ListOutbox returns rows newest first (created_at DESC, id DESC), optionally
// of one status, at most p.Limit (ListLimitDefault when zero).
func (s *Store) ListOutbox(ctx context.Context, p lanewaystore.ListOutboxParams) ([]lanewaystore.OutboxRow, error) {
	out, err := s.queryRows(ctx, outboxsql.List, string(p.Status), outboxsql.ListLimit(p))
	if err != nil {
		return nil, fmt.Errorf("pgstore: list outbox: %w", err)
	}
	return out, nil
}

// RetryOutbox resets failed or abandoned rows to pending: the row p.ID, or
// every abandoned row when p.Abandoned is set. retry_count returns to 0 and
// the lease and next_retry_at are cleared; last_error is kept as history
// until the next failure overwrites it. Rows in other states are left alone.
func (s *Store) RetryOutbox(ctx context.Context, p lanewaystore.RetryOutboxParams) (int64, error) {
	query, args, err := outboxsql.Retry(p)
	if err != nil {
		return 0, fmt.Errorf("pgstore: %w", err)
	}
	tag, err := s.exec(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("pgstore: retry outbox: %w", err)
	}
	return tag.RowsAffected(), nil
}

// relayTx runs one statement of the relay's bookkeeping (claim, mark
// published) in its own transaction that commits without waiting for the
// WAL flush (synchronous_commit off), all in one round trip. Waiting for the
// flush costs a disk sync per statement, about as long as the statement
// itself on a small machine, and buys nothing here: the rows themselves were
// committed durably by the writer, and a bookkeeping commit lost in a server
// crash only puts rows back to pending or leased, so they are published
// again (delivery is at-least-once). Visibility to other sessions is
// unchanged, so concurrent relays still never claim the same row. fn reads
// the statement's result.
//
// The statement is also planned for its own arguments every time
// (plan_cache_mode force_custom_plan). pgx prepares it, and after five runs
// PostgreSQL may switch to a generic plan, chosen while the outbox was small
// or empty; once a backfill has put 100,000 rows in it, that plan made
// every production claim take tens of milliseconds (production Process to
// handler 56 ms at p50 during the drain, against 1.8 ms with a plan for the
// priority range at hand). Planning costs well under a millisecond.
// settings are further SET LOCAL statements run before it (claimPlan).
func (s *Store) relayTx(ctx context.Context, fn func(pgx.BatchResults) error, settings []string, sql string, args ...any) error {
	return s.pool.with(ctx, func(c *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue("SET LOCAL synchronous_commit TO OFF")
		b.Queue("SET LOCAL plan_cache_mode TO force_custom_plan")
		for _, set := range settings {
			b.Queue(set)
		}
		b.Queue(sql, args...)
		b.Queue("COMMIT")
		res := c.SendBatch(ctx, b)
		err := func() error {
			for range 3 + len(settings) {
				if _, err := res.Exec(); err != nil {
					return err
				}
			}
			if err := fn(res); err != nil {
				return err
			}
			_, err := res.Exec()
			return err
		}()
		if cerr := res.Close(); err == nil {
			err = cerr
		}
		if err != nil && !c.IsClosed() && c.PgConn().TxStatus() != 'I' {
			// Leave the connection reusable; release closes it otherwise.
			_, _ = c.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
		return err
	})
}

// exec runs one statement on a pooled connection.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := s.pool.with(ctx, func(c *pgx.Conn) error {
		var err error
		tag, err = c.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}

// queryRows runs a query returning outboxsql.Columns on a pooled connection.
func (s *Store) queryRows(ctx context.Context, sql string, args ...any) ([]lanewaystore.OutboxRow, error) {
	var out []lanewaystore.OutboxRow
	err := s.pool.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = scanOutboxRows(rows)
		return err
	})
	return out, err
}

// scanOutboxRows reads every row of outboxsql.Columns and closes rows.
func scanOutboxRows(rows pgx.Rows) ([]lanewaystore.OutboxRow, error) {
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (lanewaystore.OutboxRow, error) {
		var (
			r                                    lanewaystore.OutboxRow
			status                               string
			lockedBy, lastError, publishedStream *string
		)
		err := row.Scan(&r.ID, &r.MessageID, &r.StreamName, &r.StreamCategory, &r.Type, &r.Data, &r.Metadata,
			&r.Priority, &status, &r.RetryCount, &r.NextRetryAt, &lockedBy, &r.LockedUntil, &lastError, &r.CreatedAt,
			&r.PublishedAt, &publishedStream, &r.LapsedLease)
		if err != nil {
			return r, err
		}
		r.LockedBy, r.LastError, r.PublishedStream = deref(lockedBy), deref(lastError), deref(publishedStream)
		r.Status = lanewaystore.ReportedStatus(lanewaystore.OutboxStatus(status), r.LockedBy)
		r.CreatedAt = r.CreatedAt.UTC()
		r.NextRetryAt, r.LockedUntil, r.PublishedAt = utc(r.NextRetryAt), utc(r.LockedUntil), utc(r.PublishedAt)
		r.LapsedLease = utc(r.LapsedLease)
		return r, nil
	})
	if len(out) == 0 {
		out = nil
	}
	return out, err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// utc returns times in UTC, as the SQLite store does, so rows compare equal
// across stores.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
