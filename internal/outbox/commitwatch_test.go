package outbox_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

// claimCountingStore counts the relay's claims and commit mark reads on a
// SQLite store.
type claimCountingStore struct {
	*sqlitestore.Store
	claims, marks atomic.Int64
}

func (s *claimCountingStore) CommitMark(ctx context.Context) (uint64, error) {
	s.marks.Add(1)
	return s.Store.CommitMark(ctx)
}

func (s *claimCountingStore) ClaimOutbox(ctx context.Context, p lanewaystore.ClaimParams) ([]lanewaystore.OutboxRow, error) {
	s.claims.Add(1)
	return s.Store.ClaimOutbox(ctx, p)
}

// blindStore hides CommitMark: the relay cannot tell that nothing changed.
type blindStore struct{ *claimCountingStore }

func (blindStore) CommitMark() {} // not lanewaystore.CommitWatcher's signature

// An idle relay on SQLite reads the store's commit mark every 25 ms, to
// find rows other processes commit, and claims (a write transaction) only
// when it moves and on its backed-off polls: not every 25 ms, as a relay
// that cannot read the mark does. A row another process commits, with no
// notification, is still published.
func TestIdlePollsClaimOnlyAfterCommits(t *testing.T) {
	for _, lanesOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "lanes off", true: "lanes on"}[lanesOn], func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "laneway.db")
			watched := &claimCountingStore{Store: openSQLiteFile(t, path)}
			blind := blindStore{&claimCountingStore{Store: openSQLiteFile(t, filepath.Join(t.TempDir(), "blind.db"))}}
			b := openEmbedded(t)
			cfg := outbox.Config{Logger: slog.New(slog.DiscardHandler), Lanes: lanes.Config{Enabled: lanesOn},
				MaxTickInterval: time.Hour} // no claim for time's sake within the test
			r := outbox.New(watched, b, cfg)
			control := outbox.New(blind, b, cfg)
			require.NoError(t, r.Start(ctx))
			defer stop(t, r)
			require.NoError(t, control.Start(ctx))
			defer stop(t, control)

			const reads = 80
			require.Eventually(t, func() bool {
				return watched.marks.Load() >= reads && control.Stats().Wakeups.Poll >= reads
			}, time.Minute, time.Millisecond)
			workers := int64(1)
			if lanesOn {
				workers = 2
			}
			// Each loop claims at its start and on polls that double from
			// 10 ms: fewer than 15 in the 100 s a slow machine might take.
			assert.Less(t, watched.claims.Load(), 15*workers, "claims of the relay that watches commits")
			assert.GreaterOrEqual(t, blind.claims.Load(), int64(reads), "claims of the relay that cannot")
			assert.Zero(t, r.Stats().Wakeups.Listen, "the mark never moved")

			// Another process commits a row and notifies nobody.
			other := openSQLiteFile(t, path)
			cat := testsvc.Prefix() + "customer"
			dropStream(t, b, cat)
			row, _ := newRow(t, cat, 0, "other process")
			insert(t, other, row)
			require.Eventually(t, func() bool { return r.Stats().Published == 1 }, time.Minute, time.Millisecond)
			require.Equal(t, cat, publishedStream(t, watched, row.MessageID))
		})
	}
}

// Rows also become claimable with no commit: a failed row when its retry
// time comes. The relay that watches commits still polls with a claim at
// max_tick_interval, so the retry is published though nothing is written.
func TestIdlePollsClaimRetriesWithoutCommits(t *testing.T) {
	ctx := context.Background()
	s := &claimCountingStore{Store: openSQLiteFile(t, filepath.Join(t.TempDir(), "laneway.db"))}
	b := brokertest.NewFaulty(openEmbedded(t))
	b.FailPublish(errors.New("WRONGTYPE Operation against a key holding the wrong kind of value"))
	cat := testsvc.Prefix() + "customer"
	dropStream(t, b, cat)
	row, _ := newRow(t, cat, 0, "retried")
	insert(t, s, row)

	r := outbox.New(s, b, outbox.Config{Logger: slog.New(slog.DiscardHandler),
		Retry:           outbox.Retry{MaxAttempts: 5, BaseDelay: 300 * time.Millisecond, MaxBackoff: time.Second},
		MaxTickInterval: 500 * time.Millisecond})
	require.NoError(t, r.Start(ctx))
	defer stop(t, r)
	require.Eventually(t, func() bool { return r.Stats().Failed == 1 }, time.Minute, time.Millisecond)
	b.Heal()
	// Nothing is written after the failure, and the relay's own writes do
	// not move the commit mark.
	require.Eventually(t, func() bool { return r.Stats().Published == 1 }, time.Minute, time.Millisecond)
	assert.Equal(t, cat, publishedStream(t, s, row.MessageID))
	assert.Positive(t, r.Stats().Wakeups.Poll, "found by a poll")
}
