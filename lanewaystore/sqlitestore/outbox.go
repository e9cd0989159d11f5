package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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

const outboxColumns = outboxsql.Columns

// claimSQL leases the first Limit eligible rows. The first WHERE term repeats
// the claim index's predicate so SQLite can use the partial index; the NULL
// checks make hand-edited rows without a retry time or lease claimable. Only
// the lease is written, as in the PostgreSQL store (lanewaystore.ReportedStatus).
// The priority range (ClaimParams.Priorities, the whole column range when
// unset) bounds the leading column of the same index, so a claim of the
// production rows reads only their part of it and a claim of the backfill
// rows starts where that part ends: no other index is needed.
//
// The LIMIT is a cast, not the bare parameter: SQLite plans a bare bound
// LIMIT with its value and then marks the prepared statement stale whenever
// the parameter is bound again, so every claim whose limit differs from the
// previous one compiled the statement anew inside the write transaction.
// With lanes on the production and backfill workers claim with different
// limits by turns, and that compilation was half of each claim's CPU
// (docs/benchmarks-production-lane.md, "The claim compiled once, and the decoder's fast path
// for every payload").
const claimSQL = `UPDATE outbox SET locked_by = $1, locked_until = $2, ` + outboxsql.ClaimLapsed + `
WHERE id IN (
	SELECT id FROM outbox
	WHERE status IN ('pending', 'failed', 'processing')
	  AND (locked_until IS NULL OR locked_until <= $3)
	  AND (status <> 'failed' OR next_retry_at IS NULL OR next_retry_at <= $3)
	  AND priority BETWEEN $5 AND $6
	ORDER BY priority DESC, created_at, id
	LIMIT CAST($4 AS INTEGER))
RETURNING ` + outboxColumns

// ClaimOutbox leases up to p.Limit eligible rows to p.WorkerID until
// p.Now+p.Lease, in one BEGIN IMMEDIATE transaction, and returns them ordered
// priority DESC, created_at, id. Limit <= 0 claims nothing; a zero Lease means
// LeaseDefault and a zero Now the wall clock.
func (s *Store) ClaimOutbox(ctx context.Context, p lanewaystore.ClaimParams) ([]lanewaystore.OutboxRow, error) {
	c, ok, err := outboxsql.NewClaim(p)
	if !ok {
		if err != nil {
			err = fmt.Errorf("sqlitestore: %w", err)
		}
		return nil, err
	}
	var out []lanewaystore.OutboxRow
	err = s.inTx(ctx, func(t *sql.Tx) error {
		rows, err := s.stmts.query(ctx, t, claimSQL, c.WorkerID, formatTime(c.LockedUntil), formatTime(c.Now), c.Limit, c.MinPriority, c.MaxPriority)
		if err != nil {
			return err
		}
		out, err = scanOutboxRows(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: claim outbox: %w", err)
	}
	outboxsql.SortClaimed(out)
	return out, nil
}

const markPublishedSQL = `UPDATE outbox
SET status = 'published', published_at = $2, published_stream = v.stream, locked_by = NULL, locked_until = NULL
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS stream FROM json_each($3)) AS v
WHERE outbox.id = v.id AND outbox.locked_by = $1 AND outbox.status IN ('pending', 'failed', 'processing')`

// MarkPublished marks the rows still leased by p.WorkerID published, each
// with its physical stream, in one statement. The stream per id travels as
// one JSON parameter ([[id, "stream"], ...]) so the statement text does not
// depend on the batch size. The lease is cleared; last_error is kept as
// history.
func (s *Store) MarkPublished(ctx context.Context, p lanewaystore.MarkPublishedParams) error {
	if len(p.Rows) == 0 {
		return nil
	}
	pairs := make([][2]any, len(p.Rows))
	for i, r := range p.Rows {
		pairs[i] = [2]any{r.ID, r.Stream}
	}
	js, err := json.Marshal(pairs)
	if err != nil {
		return fmt.Errorf("sqlitestore: mark published: %w", err)
	}
	at := p.At
	if at.IsZero() {
		at = time.Now()
	}
	err = s.inTx(ctx, func(t *sql.Tx) error {
		_, err := s.stmts.exec(ctx, t, markPublishedSQL, p.WorkerID, formatTime(at), string(js))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: mark published: %w", err)
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
	ids, err := json.Marshal(p.IDs)
	if err != nil {
		return fmt.Errorf("sqlitestore: mark failed: %w", err)
	}
	status := lanewaystore.StatusFailed
	var next any
	if p.Abandon {
		status = lanewaystore.StatusAbandoned
	} else if !p.NextRetryAt.IsZero() {
		next = formatTime(p.NextRetryAt)
	}
	if p.Outage {
		err = s.inTx(ctx, func(t *sql.Tx) error {
			_, err := t.ExecContext(ctx, `UPDATE outbox SET last_error = $2, locked_by = NULL, locked_until = NULL,
				    `+outboxsql.FailedLapsed(`$4`)+`
				WHERE id IN (SELECT value FROM json_each($3)) AND locked_by = $1 AND status IN ('pending', 'failed', 'processing')`,
				p.WorkerID, p.Error, string(ids), !p.NotSent)
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlitestore: release rows: %w", err)
		}
		return nil
	}
	err = s.inTx(ctx, func(t *sql.Tx) error {
		_, err := t.ExecContext(ctx, `UPDATE outbox
			SET retry_count = retry_count + 1, last_error = $2, status = $3, next_retry_at = $4,
			    locked_by = NULL, locked_until = NULL,
			    `+outboxsql.FailedLapsed(`$6`)+`
			WHERE id IN (SELECT value FROM json_each($5)) AND locked_by = $1 AND status IN ('pending', 'failed', 'processing')`,
			p.WorkerID, p.Error, string(status), next, string(ids), !p.NotSent)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: mark failed: %w", err)
	}
	return nil
}

// EndLeases ends, as of p.Now, the leases that the relays p.WorkerIDs hold
// past p.Now on rows still to be published (lanewaystore.LeaseEnder). No
// index leads to a lease holder (the claim writes no indexed column), so
// the rows are found on a read connection, where the walk over every row
// to publish does not hold the one writer that production's commits wait
// for; the write then ends the leases of those rows, by id, that are still
// held. The status term is the claim index's predicate, so only the rows
// that index holds are read.
func (s *Store) EndLeases(ctx context.Context, p lanewaystore.EndLeasesParams) (int64, error) {
	if len(p.WorkerIDs) == 0 {
		return 0, nil
	}
	workers, err := json.Marshal(p.WorkerIDs)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: end leases: %w", err)
	}
	now := formatTime(outboxsql.Now(p.Now))
	rows, err := s.read.QueryContext(ctx, `SELECT id FROM outbox
		WHERE status IN ('pending', 'failed', 'processing')
		  AND locked_by IN (SELECT value FROM json_each($1)) AND locked_until > $2`, string(workers), now)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: end leases: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("sqlitestore: end leases: %w", err)
		}
		ids = append(ids, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("sqlitestore: end leases: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	idList, err := json.Marshal(ids)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: end leases: %w", err)
	}
	var n int64
	err = s.inTx(ctx, func(t *sql.Tx) error {
		res, err := t.ExecContext(ctx, `UPDATE outbox SET locked_until = $3
			WHERE id IN (SELECT value FROM json_each($1)) AND status IN ('pending', 'failed', 'processing')
			  AND locked_by IN (SELECT value FROM json_each($2)) AND locked_until > $3`,
			string(idList), string(workers), now)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: end leases: %w", err)
	}
	return n, nil
}

// CleanupOutbox deletes at most p.Limit (CleanupLimitDefault when zero) old
// published and abandoned rows and returns how many it deleted.
func (s *Store) CleanupOutbox(ctx context.Context, p lanewaystore.CleanupParams) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(t *sql.Tx) error {
		res, err := t.ExecContext(ctx, `DELETE FROM outbox WHERE id IN (
			SELECT id FROM outbox
			WHERE (status = 'published' AND published_at < $1) OR (status = 'abandoned' AND created_at < $2)
			LIMIT $3)`,
			formatTime(p.PublishedBefore), formatTime(p.AbandonedBefore), outboxsql.CleanupLimit(p))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: cleanup outbox: %w", err)
	}
	return n, nil
}

// OutboxStats counts rows by status and priority (ordered by status, then
// priority DESC) and finds the oldest pending or failed row.
func (s *Store) OutboxStats(ctx context.Context) (lanewaystore.OutboxStats, error) {
	var st lanewaystore.OutboxStats
	rows, err := s.read.QueryContext(ctx,
		outboxsql.Counts)
	if err != nil {
		return st, fmt.Errorf("sqlitestore: outbox stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c lanewaystore.OutboxCount
		var status string
		if err := rows.Scan(&status, &c.Priority, &c.Count); err != nil {
			return st, fmt.Errorf("sqlitestore: outbox stats: %w", err)
		}
		c.Status = lanewaystore.OutboxStatus(status)
		st.Counts = append(st.Counts, c)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("sqlitestore: outbox stats: %w", err)
	}
	var oldest sql.NullString
	if err := s.read.QueryRowContext(ctx,
		outboxsql.OldestPending).Scan(&oldest); err != nil {
		return st, fmt.Errorf("sqlitestore: outbox stats: %w", err)
	}
	if st.OldestPending, err = parseNullTime(oldest); err != nil {
		return st, err
	}
	return st, nil
}

// ListOutbox returns rows newest first (created_at DESC, id DESC), optionally
// of one status, at most p.Limit (ListLimitDefault when zero).
func (s *Store) ListOutbox(ctx context.Context, p lanewaystore.ListOutboxParams) ([]lanewaystore.OutboxRow, error) {
	rows, err := s.read.QueryContext(ctx, outboxsql.List, string(p.Status), outboxsql.ListLimit(p))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list outbox: %w", err)
	}
	out, err := scanOutboxRows(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list outbox: %w", err)
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
		return 0, fmt.Errorf("sqlitestore: %w", err)
	}
	var n int64
	err = s.inTx(ctx, func(t *sql.Tx) error {
		res, err := t.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: retry outbox: %w", err)
	}
	return n, nil
}

// scanOutboxRows reads every row of outboxColumns and closes rows.
func scanOutboxRows(rows *sql.Rows) ([]lanewaystore.OutboxRow, error) {
	defer rows.Close()
	var out []lanewaystore.OutboxRow
	for rows.Next() {
		var (
			r                                    lanewaystore.OutboxRow
			status                               string
			created                              string
			nextRetry, lockedUntil, published    sql.NullString
			lapsed                               sql.NullString
			lockedBy, lastError, publishedStream sql.NullString
		)
		if err := rows.Scan(&r.ID, &r.MessageID, &r.StreamName, &r.StreamCategory, &r.Type, &r.Data, &r.Metadata,
			&r.Priority, &status, &r.RetryCount, &nextRetry, &lockedBy, &lockedUntil, &lastError, &created,
			&published, &publishedStream, &lapsed); err != nil {
			return nil, err
		}
		r.LockedBy, r.LastError, r.PublishedStream = lockedBy.String, lastError.String, publishedStream.String
		r.Status = lanewaystore.ReportedStatus(lanewaystore.OutboxStatus(status), r.LockedBy)
		var err error
		if r.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		if r.NextRetryAt, err = parseNullTime(nextRetry); err != nil {
			return nil, err
		}
		if r.LockedUntil, err = parseNullTime(lockedUntil); err != nil {
			return nil, err
		}
		if r.PublishedAt, err = parseNullTime(published); err != nil {
			return nil, err
		}
		if r.LapsedLease, err = parseNullTime(lapsed); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
