// Package lanewaystore defines the database seam of Laneway: the unit of work's
// transaction (aggregate state, outbox rows, the caller's own read-model SQL)
// and the outbox relay's claim/mark operations. Implementations live in
// sub-packages (sqlitestore, pgstore) and all pass storetest.Exercise.
//
// SQL that handlers run through Tx.Exec/Query uses PostgreSQL-style $1, $2
// placeholders on every store, so one read-model query works on both.
package lanewaystore

import (
	"context"
	"errors"
	"time"
)

// Errors returned by stores. Callers match them with errors.Is.
var (
	// ErrNotFound is returned by Tx.LoadAggregate when no such aggregate exists.
	ErrNotFound = errors.New("laneway: not found")
	// ErrVersionConflict is returned by Tx.SaveAggregate when the stored
	// version differs from the expected one (another writer won the race),
	// or when a new aggregate's id is already taken.
	ErrVersionConflict = errors.New("laneway: version conflict")
)

// OutboxStatus is the lifecycle state of an outbox row.
type OutboxStatus string

// The statuses of an outbox row as reported (a leased row reads as
// processing).
const (
	StatusPending    OutboxStatus = "pending"
	StatusProcessing OutboxStatus = "processing"
	StatusPublished  OutboxStatus = "published"
	StatusFailed     OutboxStatus = "failed"
	StatusAbandoned  OutboxStatus = "abandoned"
)

// ReportedStatus is the status a store reports for a row stored with
// status and lease holder lockedBy. A claim writes only the lease (locked_by,
// locked_until) and leaves the stored status pending or failed: changing no
// indexed column lets PostgreSQL update the row in place (a HOT update, no
// index writes), which makes the claim about three times cheaper. A leased
// row is processing; stores report it so everywhere (claims, lists, counts),
// and in SQL it is the row with locked_by set. Rows stored as processing by
// schema version 1 are reported as they are.
func ReportedStatus(status OutboxStatus, lockedBy string) OutboxStatus {
	if lockedBy != "" && (status == StatusPending || status == StatusFailed) {
		return StatusProcessing
	}
	return status
}

// OutboxRow is one row of the `outbox` table. Column names match the field
// names in snake_case, as in the reference schema.
type OutboxRow struct {
	ID              int64 // assigned by the database; FIFO tie-breaker
	MessageID       string
	StreamName      string // aggregate instance stream, e.g. "customer-42"
	StreamCategory  string // "customer" for events, "customer:command" for commands
	Type            string // "<Domain>.<Name>.v<N>"
	Data            []byte // JSON payload
	Metadata        []byte // JSON metadata (headers, envelope, domain)
	Priority        int
	Status          OutboxStatus
	RetryCount      int
	NextRetryAt     *time.Time
	LockedBy        string
	LockedUntil     *time.Time
	LastError       string
	CreatedAt       time.Time
	PublishedAt     *time.Time
	PublishedStream string // physical stream: "customer" or "customer:backfill"
	// LapsedLease is the end of the first earlier lease of the row that
	// ended with the row not marked published: the lease ran out (its relay
	// died, or lost the database between publishing and marking), or a
	// publish that failed gave the row back. A relay of that lease or a
	// later one may have appended the row to its stream, so the relay looks
	// for the row there before appending it again. Nil for a row that no
	// claim left unsettled. Stores record it at claim and at MarkFailed.
	LapsedLease *time.Time
}

// AggregateRecord is the stored state of one aggregate instance.
type AggregateRecord struct {
	Category string
	ID       string
	Version  int64 // 1 after the first save
	Data     []byte
}

// SaveAggregateParams saves an aggregate with optimistic concurrency.
// ExpectedVersion 0 means "new": the row must not exist yet. The stored
// version becomes ExpectedVersion+1.
type SaveAggregateParams struct {
	Category        string
	ID              string
	ExpectedVersion int64
	Data            []byte
}

// Tx is one database transaction of a unit of work. It is not safe for
// concurrent use. Everything written through it commits or rolls back together.
type Tx interface {
	LoadAggregate(ctx context.Context, category, id string) (AggregateRecord, error)
	SaveAggregate(ctx context.Context, p SaveAggregateParams) error
	// InsertOutbox writes rows with status pending. CreatedAt is set by the
	// store when zero. A row with both LockedBy and LockedUntil set is
	// inserted leased to that relay, as if it had claimed it: no other
	// claim takes it before the lease ends. Every row's ID is set once the
	// database has assigned it, which a store that sends its writes with
	// the commit (PostgreSQL) does when the transaction commits; the store
	// keeps rows until then. Stores that support cross-process wake-ups
	// (PostgreSQL NOTIFY) signal listeners when the transaction commits,
	// unless every row was inserted leased.
	InsertOutbox(ctx context.Context, rows []OutboxRow) error
	// MarkProcessed records that handler has processed messageID, for
	// effectively-once handlers. It returns false when the marker already
	// existed (the message was handled before and the caller should skip it).
	MarkProcessed(ctx context.Context, handler, messageID string) (bool, error)

	// Exec, Query and QueryRow run the caller's own SQL (read models) in the
	// same transaction. Placeholders are $1, $2, ... on every store.
	Exec(ctx context.Context, sql string, args ...any) (int64, error)
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) Row
}

// Rows is the subset of database/sql.Rows and pgx.Rows that Laneway exposes.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Row is a single-row result; Scan returns ErrNotFound when there was no row.
type Row interface {
	Scan(dest ...any) error
}

// ClaimParams asks for up to Limit eligible rows: pending or failed (failed
// only once next_retry_at <= Now) and not under a lease that lasts past Now.
// Rows come back ordered priority DESC, created_at, id and are leased to
// WorkerID until Now+Lease, which makes them processing (see
// ReportedStatus).
type ClaimParams struct {
	WorkerID string
	Limit    int
	Lease    time.Duration
	Now      time.Time
	// Priorities, when set, restricts the claim to rows whose priority
	// lies in the range. A relay with priority lanes claims the rows at or
	// above the lanes threshold apart from the rows below it, so a
	// production row never waits behind a backfill batch. Nil claims rows
	// of every priority.
	Priorities *PriorityRange
}

// PriorityRange is an inclusive range of priorities, Min <= priority <= Max.
// Stores keep priorities in 32-bit columns; bounds beyond that range act as
// no bound on that side.
type PriorityRange struct {
	Min, Max int
}

// PublishedRow records where one claimed row went.
type PublishedRow struct {
	ID     int64
	Stream string
}

// MarkPublishedParams marks claimed rows published in one statement.
// Rows no longer leased by WorkerID are left alone.
type MarkPublishedParams struct {
	WorkerID string
	Rows     []PublishedRow
	At       time.Time
}

// MarkFailedParams records a failed publish of claimed rows: retry_count is
// incremented, last_error set, the lease cleared, and the status becomes
// failed (with NextRetryAt) or abandoned when Abandon is set.
//
// With Outage set the publish failed because the broker was unreachable,
// which is no fault of the rows: only last_error is set and the lease
// cleared; retry_count, status and next_retry_at are kept, so the rows are
// claimable again at once and the outage uses up none of their attempts.
type MarkFailedParams struct {
	WorkerID    string
	IDs         []int64
	Error       string
	NextRetryAt time.Time
	Abandon     bool
	Outage      bool
	// NotSent says the rows were given back before any of them was sent
	// to the broker. Otherwise the store records the lease's end as the
	// rows' LapsedLease: an append whose reply failed may have landed.
	NotSent bool
}

// CleanupParams deletes at most Limit rows per call: published rows with
// published_at before PublishedBefore and abandoned rows created before
// AbandonedBefore.
type CleanupParams struct {
	PublishedBefore time.Time
	AbandonedBefore time.Time
	Limit           int
}

// OutboxCount is one bucket of OutboxStats.
type OutboxCount struct {
	Status   OutboxStatus
	Priority int
	Count    int64
}

// OutboxStats summarises the outbox for operators.
type OutboxStats struct {
	Counts        []OutboxCount
	OldestPending *time.Time // created_at of the oldest pending or failed row
}

// ListOutboxParams filters OutboxList; empty Status means any. Newest first.
type ListOutboxParams struct {
	Status OutboxStatus
	Limit  int
}

// RetryOutboxParams resets rows to pending (retry_count 0, no lease, no
// next_retry_at): one row by ID, or every abandoned row when Abandoned is set.
type RetryOutboxParams struct {
	ID        int64
	Abandoned bool
}

// Store is a database that holds aggregates and the outbox. Safe for
// concurrent use.
type Store interface {
	// Dialect is "sqlite" or "postgres".
	Dialect() string
	// Migrate creates or upgrades Laneway's tables. Idempotent.
	Migrate(ctx context.Context) error
	// InTx runs fn in a transaction, committing when fn returns nil and
	// rolling back otherwise (including on panic, which is re-raised).
	InTx(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error

	ClaimOutbox(ctx context.Context, p ClaimParams) ([]OutboxRow, error)
	MarkPublished(ctx context.Context, p MarkPublishedParams) error
	MarkFailed(ctx context.Context, p MarkFailedParams) error
	CleanupOutbox(ctx context.Context, p CleanupParams) (int64, error)
	OutboxStats(ctx context.Context) (OutboxStats, error)
	ListOutbox(ctx context.Context, p ListOutboxParams) ([]OutboxRow, error)
	RetryOutbox(ctx context.Context, p RetryOutboxParams) (int64, error)

	Ping(ctx context.Context) error
	Close() error
}

// Notifier is implemented by stores that can wake an outbox relay in another
// process when rows commit (PostgreSQL LISTEN/NOTIFY; SQLite's watch of its
// write-ahead log). Found by type assertion.
type Notifier interface {
	// ListenOutbox calls notify (from one goroutine) after every commit
	// that inserted outbox rows in another process, until ctx is done. It
	// may call it for other commits too (its own process's, or ones that
	// inserted no outbox rows): the relay then claims for nothing. It
	// returns once listening has started, with an error if it could not
	// start; the listener reconnects by itself when the connection drops.
	ListenOutbox(ctx context.Context, notify func()) (stop func(), err error)
}

// LeasingInserter is implemented by stores whose transactions' InsertOutbox
// writes the lease a row carries and sets every row's ID (see
// Tx.InsertOutbox), as both of Laneway's stores do. Found by type
// assertion: the relay hands production rows over in memory only on a
// store that reports true, and claims every row on any other, so a store
// written before leases at insert existed keeps working unchanged.
type LeasingInserter interface {
	LeasesOnInsert() bool
}

// LeaseEnder is implemented by stores that can end the leases of relays
// known to have stopped (an engine's relay, once its heartbeat expired), as
// both of Laneway's stores do. Found by type assertion: on any other store
// such rows wait for their leases to run out, as before.
type LeaseEnder interface {
	// EndLeases ends, as of p.Now, every lease that a relay named in
	// p.WorkerIDs holds past p.Now on a row not yet published, failed for
	// good or abandoned, and returns how many rows it changed. The rows keep
	// their lease holder until they are claimed again: the claim then
	// reports p.Now as their LapsedLease, so the relay looks for them in
	// their streams before appending them again (the stopped relay may have
	// appended them before it stopped).
	EndLeases(ctx context.Context, p EndLeasesParams) (int64, error)
}

// EndLeasesParams names the relays whose leases end (LeaseEnder).
type EndLeasesParams struct {
	WorkerIDs []string
	Now       time.Time
}

// QueuedSaver is implemented by store transactions that can send an
// aggregate write together with the transaction's next statement or its
// commit instead of in a round trip of its own (PostgreSQL pipelines it).
// Found by type assertion on a Tx. A version conflict of a queued save is
// reported, matching ErrVersionConflict, by whichever call sends it: a
// later statement of the transaction or the commit (InTx); either way the
// transaction rolls back and nothing of it is written.
type QueuedSaver interface {
	QueueSaveAggregate(ctx context.Context, p SaveAggregateParams) error
}
