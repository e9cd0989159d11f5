package sqlitestore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

// waitQueued waits until q holds exactly prod production and back backfill
// writers.
func waitQueued(t *testing.T, q *writerQueue, prod, back int) {
	t.Helper()
	require.Eventually(t, func() bool {
		p, b := q.queued()
		return p == prod && b == back
	}, 15*time.Second, time.Millisecond, "waiting for %d production and %d backfill writers to queue", prod, back)
}

// orderLog records the order in which writers got the writer.
type orderLog struct {
	mu  sync.Mutex
	got []string
}

func (o *orderLog) add(s string) {
	o.mu.Lock()
	o.got = append(o.got, s)
	o.mu.Unlock()
}

// On a real SQLite file: while one transaction holds the writer, backfill
// and production transactions queue in an interleaved order; once it
// commits, the production ones run first, then the backfill ones, each in
// arrival order, and every one commits.
func TestWritersProductionBeforeBackfill(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "w.sqlite"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	hold, held := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		assert.NoError(t, s.InTx(ctx, func(context.Context, lanewaystore.Tx) error {
			close(held)
			<-hold
			return nil
		}))
	}()
	<-held

	var log orderLog
	write := func(name string, backfill bool) {
		c := ctx
		if backfill {
			c = lanewaystore.AsBackfill(ctx)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, s.InTx(c, func(ctx context.Context, tx lanewaystore.Tx) error {
				log.add(name)
				_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS w (name TEXT)`)
				if err == nil {
					_, err = tx.Exec(ctx, `INSERT INTO w (name) VALUES ($1)`, name)
				}
				return err
			}))
		}()
	}
	write("b1", true)
	waitQueued(t, &s.writers, 0, 1)
	write("p1", false)
	waitQueued(t, &s.writers, 1, 1)
	write("b2", true)
	waitQueued(t, &s.writers, 1, 2)
	write("p2", false)
	waitQueued(t, &s.writers, 2, 2)
	close(hold)
	wg.Wait()

	assert.Equal(t, []string{"p1", "p2", "b1", "b2"}, log.got)
	var n int
	require.NoError(t, s.read.QueryRowContext(ctx, `SELECT count(*) FROM w`).Scan(&n))
	assert.Equal(t, 4, n)
	p, b := s.writers.queued()
	assert.Zero(t, p+b)
}

// A backfill writer waits behind at most productionBurst production
// writers in a row: a sustained production load slows backfill, never
// stops it.
func TestWritersBackfillNotStarved(t *testing.T) {
	t.Parallel()
	var q writerQueue
	require.NoError(t, q.acquire(t.Context(), false))
	var log orderLog
	var wg sync.WaitGroup
	write := func(name string, backfill bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if assert.NoError(t, q.acquire(t.Context(), backfill)) {
				log.add(name)
				q.release()
			}
		}()
	}
	write("b", true)
	waitQueued(t, &q, 0, 1)
	var want []string
	for i := range productionBurst + 2 {
		name := fmt.Sprintf("p%d", i)
		write(name, false)
		waitQueued(t, &q, i+1, 1)
		want = append(want, name)
	}
	want = append(want[:productionBurst], append([]string{"b"}, want[productionBurst:]...)...)
	q.release()
	wg.Wait()
	assert.Equal(t, want, log.got)
}

// A writer whose context ends while it waits leaves the queue with the
// context's error; the writers behind it still get the writer in order.
func TestWritersCancelledWaiterLeaves(t *testing.T) {
	t.Parallel()
	var q writerQueue
	require.NoError(t, q.acquire(t.Context(), false))
	cctx, cancel := context.WithCancel(t.Context())
	gone := make(chan error, 1)
	go func() { gone <- q.acquire(cctx, false) }()
	waitQueued(t, &q, 1, 0)
	got := make(chan struct{})
	go func() {
		if assert.NoError(t, q.acquire(t.Context(), true)) {
			close(got)
			q.release()
		}
	}()
	waitQueued(t, &q, 1, 1)
	cancel()
	require.ErrorIs(t, <-gone, context.Canceled)
	waitQueued(t, &q, 0, 1)
	q.release()
	select {
	case <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("the backfill writer never got the writer")
	}
	require.NoError(t, q.acquire(t.Context(), false), "the writer is free again")
	q.release()
}

// Commits never checkpoint (the writer runs with wal_autocheckpoint=0);
// the store's checkpoint goroutine copies them into the database file
// while the store is open, and Close stops it.
func TestCheckpointsRunBesideCommits(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "c.sqlite")
	s, err := Open(ctx, path)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()

	var auto int
	require.NoError(t, s.write.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto))
	assert.Zero(t, auto, "the writer never checkpoints")

	size := func() int64 {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		return fi.Size()
	}
	before := size()
	const payload = 2 << 20
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE blobs (b BLOB)`); err != nil {
			return err
		}
		for range 32 {
			if _, err := tx.Exec(ctx, `INSERT INTO blobs (b) VALUES (randomblob($1))`, payload/32); err != nil {
				return err
			}
		}
		return nil
	}))
	// The pages reach the database file only through a checkpoint.
	require.Eventually(t, func() bool { return s.checkpointed.Load() > 0 }, 15*time.Second, 10*time.Millisecond,
		"no complete checkpoint")
	assert.GreaterOrEqual(t, size(), before+payload, "the database file did not grow: nothing checkpointed the WAL")
}
