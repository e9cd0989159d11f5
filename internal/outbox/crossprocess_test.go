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

// claimCountingStore counts the relay's claims on a SQLite store.
type claimCountingStore struct {
	*sqlitestore.Store
	claims atomic.Int64
}

func (s *claimCountingStore) ClaimOutbox(ctx context.Context, p lanewaystore.ClaimParams) ([]lanewaystore.OutboxRow, error) {
	s.claims.Add(1)
	return s.Store.ClaimOutbox(ctx, p)
}

// deafStore hides ListenOutbox: the relay cannot hear other processes'
// commits and finds their rows by claiming.
type deafStore struct{ *claimCountingStore }

func (deafStore) ListenOutbox() {} // not lanewaystore.Notifier's signature

// An idle relay on SQLite is woken by the store when another process
// commits (the store watches its write-ahead log) and claims (a write
// transaction) only then and on its backed-off polls: not every 25 ms, as
// a relay that cannot hear other processes does. A row another process
// commits is published without a poll.
func TestIdleRelayOnSQLiteClaimsOnlyAfterCommits(t *testing.T) {
	for _, lanesOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "lanes off", true: "lanes on"}[lanesOn], func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "laneway.db")
			heard := &claimCountingStore{Store: openSQLiteFile(t, path)}
			deaf := deafStore{&claimCountingStore{Store: openSQLiteFile(t, filepath.Join(t.TempDir(), "deaf.db"))}}
			b := openEmbedded(t)
			cfg := outbox.Config{Logger: slog.New(slog.DiscardHandler), Lanes: lanes.Config{Enabled: lanesOn},
				MaxTickInterval: time.Hour} // no claim for time's sake within the test
			r := outbox.New(heard, b, cfg)
			control := outbox.New(deaf, b, cfg)
			require.NoError(t, r.Start(ctx))
			defer stop(t, r)
			require.NoError(t, control.Start(ctx))
			defer stop(t, control)

			const polls = 80
			require.Eventually(t, func() bool { return control.Stats().Wakeups.Poll >= polls }, time.Minute, time.Millisecond)
			workers := int64(1)
			if lanesOn {
				workers = 2
			}
			// Each loop claims at its start, and then on polls that double
			// from 10 ms up to the hour: fewer than 15 in the 100 s a slow
			// machine might take.
			assert.Less(t, heard.claims.Load(), 15*workers, "claims of the relay that hears other processes")
			assert.GreaterOrEqual(t, deaf.claims.Load(), int64(polls), "claims of the relay that cannot")
			assert.Zero(t, r.Stats().Wakeups.Listen, "no other process committed")

			// Another process commits a row and notifies nobody.
			other := openSQLiteFile(t, path)
			cat := testsvc.Prefix() + "customer"
			dropStream(t, b, cat)
			row, _ := newRow(t, cat, 0, "other process")
			insert(t, other, row)
			require.Eventually(t, func() bool { return r.Stats().Published == 1 }, time.Minute, time.Millisecond)
			require.Equal(t, cat, publishedStream(t, heard, row.MessageID))
			assert.Positive(t, r.Stats().Wakeups.Listen, "woken by the store")
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
	// not wake it.
	require.Eventually(t, func() bool { return r.Stats().Published == 1 }, time.Minute, time.Millisecond)
	assert.Equal(t, cat, publishedStream(t, s, row.MessageID))
	assert.Positive(t, r.Stats().Wakeups.Poll, "found by a poll")
}
