package sqlitestore

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
)

func migratedFile(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Migrate(t.Context()))
	return s
}

func insertRow(t *testing.T, s *Store, id string) {
	t.Helper()
	require.NoError(t, s.InTx(t.Context(), func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{{
			MessageID: id, StreamName: "customer-42", StreamCategory: "customer", Type: "Shop.CustomerRegistered.v1",
			Data: []byte(`{"id":"42"}`), Metadata: []byte(`{"headers":{"id":"` + id + `"}}`), CreatedAt: time.Now(),
		}})
	}))
}

// listening opens two stores on one new file and listens on the first,
// counting the calls; the listener stops at the test's end.
func listening(t *testing.T) (s, other *Store, calls *atomic.Int64, stop func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "laneway.db")
	s, other = migratedFile(t, path), migratedFile(t, path)
	calls = new(atomic.Int64)
	stop, err := s.ListenOutbox(t.Context(), func() { calls.Add(1) })
	require.NoError(t, err)
	t.Cleanup(stop)
	return s, other, calls, stop
}

// The store hears another store's commits on the same file (another
// process, for SQLite) and never its own: each of the other store's
// commits, waited for one at a time, is one call, however many of its own
// commits come between.
func TestListenOutboxHearsOtherStoresOnly(t *testing.T) {
	t.Parallel()
	s, other, calls, stop := listening(t)

	for round := int64(1); round <= 3; round++ {
		for i := range 5 {
			insertRow(t, s, "mine-"+string(rune('a'+round))+string(rune('a'+i)))
		}
		insertRow(t, other, "theirs-"+string(rune('a'+round)))
		require.Eventually(t, func() bool { return calls.Load() >= round }, time.Minute, time.Millisecond)
	}
	insertRow(t, s, "mine-last")
	stop()
	assert.Equal(t, int64(3), calls.Load(), "one call per commit of the other store, none for this store's")
}

// An idle database is not polled: the store reads its commit mark once
// when listening starts, and again only when the write-ahead log is
// written. (Where the log cannot be watched the mark is read every 25 ms,
// a dozen reads in the wait below.)
func TestListenOutboxReadsNothingWhileIdle(t *testing.T) {
	t.Parallel()
	s, other, calls, _ := listening(t)
	before := s.markReads.Load()

	select {
	case <-time.After(300 * time.Millisecond):
	case <-t.Context().Done():
	}
	assert.Equal(t, before, s.markReads.Load(), "reads of the mark while nothing was written")

	insertRow(t, other, "theirs")
	require.Eventually(t, func() bool { return calls.Load() == 1 }, time.Minute, time.Millisecond)
	assert.Greater(t, s.markReads.Load(), before)
}

// ListenOutbox ends with its context as well as with stop, and an
// in-memory database (no other process) starts nothing.
func TestListenOutboxEnds(t *testing.T) {
	t.Parallel()
	s := migratedFile(t, filepath.Join(t.TempDir(), "laneway.db"))
	ctx, cancel := context.WithCancel(t.Context())
	stop, err := s.ListenOutbox(ctx, func() {})
	require.NoError(t, err)
	cancel()
	stop() // waits for the goroutine; goleak (TestMain) checks the rest
	stop()

	mem, err := Open(t.Context(), ":memory:")
	require.NoError(t, err)
	defer mem.Close()
	stop, err = mem.ListenOutbox(t.Context(), func() {})
	require.NoError(t, err)
	stop()
}

// Once the watch fails (its Changes closed), the listener reads the mark on
// a ticker: another store's commit is still heard.
func TestListenerPollsOnceTheWatchFails(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "laneway.db")
	s, other := migratedFile(t, path), migratedFile(t, path)
	var calls atomic.Int64
	l := &commitListener{s: s, notify: func() { calls.Add(1) }}
	var err error
	l.last, err = s.CommitMark(t.Context())
	require.NoError(t, err)
	l.known = true
	changes := make(chan struct{})
	close(changes)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, changes)
	}()
	defer func() { cancel(); <-done }()

	reads := s.markReads.Load()
	require.Eventually(t, func() bool { return s.markReads.Load() >= reads+3 }, time.Minute, time.Millisecond,
		"the mark read again and again with no signal")
	assert.Zero(t, calls.Load(), "nothing committed")
	insertRow(t, other, "theirs")
	require.Eventually(t, func() bool { return calls.Load() == 1 }, time.Minute, time.Millisecond)
}
