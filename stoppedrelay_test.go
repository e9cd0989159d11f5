package laneway_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/internal/tools/syncio"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

// unmarkedStore fails the relay's marks: an engine that lost the database
// between its claim and its mark, and stops before it is back, leaves its
// outbox rows leased to its relay.
type unmarkedStore struct{ lanewaystore.Store }

var errMarkLost = errors.New("database gone")

func (unmarkedStore) MarkPublished(context.Context, lanewaystore.MarkPublishedParams) error {
	return errMarkLost
}

func (unmarkedStore) MarkFailed(context.Context, lanewaystore.MarkFailedParams) error {
	return errMarkLost
}

// Its inserts are the store's own, so a production row is leased to the
// relay at insert and handed over in memory, as without the fault.
func (unmarkedStore) LeasesOnInsert() bool { return true }

// stopKit is what both tests of a stopping engine's leases start from: a
// store, an embedded broker, and a broker wrapper whose appends fail, so a
// production row stays leased to the stopping engine's relay.
type stopKit struct {
	cfg    *lanewayconfig.Config
	st     lanewaystore.Store
	br     *redisbroker.Broker
	faulty *brokertest.Faulty
	rec    runLog
	dom    *laneway.Domain
}

// eachStopKit runs f in parallel subtests, one per store.
func eachStopKit(t *testing.T, f func(t *testing.T, sk *stopKit)) {
	t.Parallel()
	for _, sc := range stores() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			f(t, newStopKit(t, sc))
		})
	}
}

func newStopKit(t *testing.T, sc storeCase) *stopKit {
	sk := &stopKit{cfg: lanewayconfig.Default(), st: sc.open(t)}
	sk.cfg.Outbox.LeaseSeconds = 3600
	sk.cfg.Server.PriorityLanes.Enabled = true // the production row is leased at insert and handed over
	br, err := redisbroker.OpenEmbedded(context.Background(), redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { br.Close() })
	sk.br = br
	sk.dom = laneDomain(t, testsvc.Prefix()+"account", &sk.rec, nil)
	sk.faulty = brokertest.NewFaulty(br)
	sk.faulty.FailPublish(errors.New("ERR the append failed"))
	return sk
}

// A production row left leased to the relay of an engine that stopped is
// published by another engine once it sees that engine's heartbeat gone,
// not when the hour-long lease runs out; the row's event is handled once.
func TestStoppedEnginesOutboxRowsNotLeftToTheirLease(t *testing.T) {
	eachStopKit(t, func(t *testing.T, sk *stopKit) {
		ctx := context.Background()
		cfg, st, br, dom, faulty := sk.cfg, sk.st, sk.br, sk.dom, sk.faulty
		rec := &sk.rec

		// The engine that stops: its publishes fail, and so do its marks.
		gone, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: unmarkedStore{st}})
		require.NoError(t, err)
		goneEng := laneway.NewEngine(gone, laneway.EngineOptions{Broker: faulty, DisableHTTP: true})
		require.NoError(t, goneEng.Start(ctx))
		require.NoError(t, gone.Process(ctx, OpenAccount{ID: "1", Owner: "a"}))
		require.Eventually(t, func() bool { return faulty.Injected() >= 1 }, opsWait, 10*time.Millisecond,
			"the stopping engine's relay tried to publish")
		require.NoError(t, goneEng.Stop(ctx))
		leased, err := st.ListOutbox(ctx, lanewaystore.ListOutboxParams{})
		require.NoError(t, err)
		require.Len(t, leased, 1)
		require.Equal(t, lanewaystore.StatusProcessing, leased[0].Status, "the row is left leased")
		require.NotEmpty(t, leased[0].LockedBy)

		app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
		require.NoError(t, err)
		var logs syncio.Buffer
		eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, DisableHTTP: true,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		require.NoError(t, eng.Start(ctx))
		defer func() { require.NoError(t, eng.Stop(context.Background())) }()
		t.Cleanup(func() {
			if t.Failed() {
				t.Log(logs.String())
			}
		})

		require.Eventually(t, func() bool {
			rows, err := st.ListOutbox(ctx, lanewaystore.ListOutboxParams{})
			return err == nil && len(rows) == 1 && rows[0].Status == lanewaystore.StatusPublished
		}, opsWait, 10*time.Millisecond, "the row is published long before its lease ends")
		require.Eventually(t, func() bool {
			_, _, events := rec.snapshot()
			return len(events) >= 1
		}, opsWait, 10*time.Millisecond, "its event is handled")
		assert.EqualValues(t, 1, eng.RelayStats().LeasesEnded)
		assert.Contains(t, logs.String(), "outbox rows leased to a stopped relay are claimable again")
		_, _, events := rec.snapshot()
		assert.Len(t, events, 1, "handled once")
	})
}

// marksLostStore fails the relay's marks like unmarkedStore, but can end
// leases: the database was back by the time the engine stopped.
type marksLostStore struct {
	unmarkedStore
	ender lanewaystore.LeaseEnder
}

func (s marksLostStore) EndLeases(ctx context.Context, p lanewaystore.EndLeasesParams) (int64, error) {
	return s.ender.EndLeases(ctx, p)
}

// An engine that stops gracefully ends the leases its relay still holds
// and deletes its relay's leases key with its heartbeat: the row is
// claimable at once, and no other engine has a stopped relay to look for.
func TestGracefulStopEndsItsRelaysLeases(t *testing.T) {
	eachStopKit(t, func(t *testing.T, sk *stopKit) {
		ctx := context.Background()
		cfg, st, br, dom, faulty := sk.cfg, sk.st, sk.br, sk.dom, sk.faulty
		ender, ok := st.(lanewaystore.LeaseEnder)
		require.True(t, ok)
		app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: marksLostStore{unmarkedStore{st}, ender}})
		require.NoError(t, err)
		eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: faulty, DisableHTTP: true})
		require.NoError(t, eng.Start(ctx))
		keys, err := br.GetKeys(ctx, "laneway:relay-leases:*")
		require.NoError(t, err)
		require.Len(t, keys, 1, "the running engine names its relay")
		require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "a"}))
		require.Eventually(t, func() bool { return faulty.Injected() >= 1 }, opsWait, 10*time.Millisecond,
			"the relay tried to publish")
		require.NoError(t, eng.Stop(ctx))

		rows, err := st.ListOutbox(ctx, lanewaystore.ListOutboxParams{})
		require.NoError(t, err)
		require.Len(t, rows, 1)
		require.NotNil(t, rows[0].LockedUntil)
		assert.False(t, rows[0].LockedUntil.After(time.Now()), "the lease was ended at the stop, not left for an hour")
		claimed, err := st.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: "next", Limit: 10, Lease: time.Minute, Now: time.Now()})
		require.NoError(t, err)
		assert.Len(t, claimed, 1, "another relay claims the row at once")
		keys, err = br.GetKeys(ctx, "laneway:*")
		require.NoError(t, err)
		for k := range keys {
			assert.NotContains(t, k, "relay-leases", "the relay's leases key is deleted")
			assert.NotContains(t, k, "laneway:engine:", "the heartbeat is deleted")
		}
	})
}
