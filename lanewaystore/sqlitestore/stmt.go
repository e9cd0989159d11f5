package sqlitestore

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// stmtCache holds the writer's hot statements, each prepared once. The
// driver compiles a statement's text every time it runs one unprepared, and
// for the relay's one-row claim that compilation was most of its cost.
//
// The writer pool has one connection, which a transaction holds: preparing
// inside a transaction would wait for itself. Statements are therefore
// prepared between transactions (inTx, with the writer's turn held and no
// connection taken) until every one has been: before Migrate the tables do
// not exist and the preparation fails, so the statements then run
// unprepared. database/sql prepares a statement again by itself when the
// connection is replaced, and SQLite recompiles it after a schema change.
type stmtCache struct {
	done atomic.Bool // every hot statement is prepared; m no longer changes
	mu   sync.Mutex
	m    map[string]*sql.Stmt
}

// hotStatements are the writer statements of every unit of work and every
// relay batch, and the commit mark's read (watch.go).
var hotStatements = []string{claimSQL, markPublishedSQL, loadAggregateSQL, insertAggregateSQL, updateAggregateSQL, insertOutboxSQL, markProcessedSQL,
	dataVersionSQL}

// prepare prepares on db the hot statements not yet prepared. Failures are
// left for the next call: the statements run unprepared meanwhile.
func (c *stmtCache) prepare(ctx context.Context, db *sql.DB) {
	if c.done.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*sql.Stmt, len(hotStatements))
	}
	for _, q := range hotStatements {
		if c.m[q] != nil {
			continue
		}
		if st, err := db.PrepareContext(ctx, q); err == nil {
			c.m[q] = st
		}
	}
	c.done.Store(len(c.m) == len(hotStatements))
}

// get returns q prepared, or nil.
func (c *stmtCache) get(q string) *sql.Stmt {
	if c.done.Load() {
		return c.m[q]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[q]
}

// exec runs q in t, prepared when it is.
func (c *stmtCache) exec(ctx context.Context, t *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st := c.get(q); st != nil {
		return t.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.ExecContext(ctx, q, args...)
}

// query runs q in t, prepared when it is.
func (c *stmtCache) query(ctx context.Context, t *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if st := c.get(q); st != nil {
		return t.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.QueryContext(ctx, q, args...)
}

// queryRow runs q in t, prepared when it is.
func (c *stmtCache) queryRow(ctx context.Context, t *sql.Tx, q string, args ...any) *sql.Row {
	if st := c.get(q); st != nil {
		return t.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.QueryRowContext(ctx, q, args...)
}

// close closes the prepared statements. The map is left as it is: once
// done, get reads it without the lock, and a store's goroutines may still
// run statements while it closes (they then fail with the closed database).
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for _, st := range c.m {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
