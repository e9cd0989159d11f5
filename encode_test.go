package laneway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

// producerDomain has one aggregate in category cat, the Opened event, a
// command raising it, and the handlers given.
func producerDomain(t *testing.T, cat string, withCommand bool, handlers ...*laneway.Handler) *laneway.Domain {
	t.Helper()
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{Category: cat})
	laneway.RegisterEvent[Account, Opened](b)
	if withCommand {
		laneway.RegisterCommand[Account, OpenAccount](b, func(ctx context.Context, tx *laneway.Tx, c OpenAccount) error {
			a := laneway.New[Account](c.ID)
			a.Raise(Opened{Owner: c.Owner})
			return tx.Save(ctx, a)
		})
	}
	for _, h := range handlers {
		b.AddHandler(h)
	}
	d, err := b.Build()
	require.NoError(t, err)
	return d
}

// TestEncodeEventMatchesRelay: for the same event, the public encoder
// produces the entry the relay publishes, byte for byte, on the same lane.
func TestEncodeEventMatchesRelay(t *testing.T) {
	for bname, openBroker := range testBrokers() {
		for _, prio := range []laneway.Priority{laneway.Low, laneway.Normal, laneway.High} {
			t.Run(bname+"/"+prio.String(), func(t *testing.T) {
				ctx := context.Background()
				cat := testsvc.Prefix() + "account"
				dom := producerDomain(t, cat, true) // no handler: nothing consumes (or trims) the entry
				cfg := lanewayconfig.Default()
				cfg.Server.PriorityLanes.Enabled = true
				st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "l.db"))
				require.NoError(t, err)
				defer st.Close()
				app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
				require.NoError(t, err)
				br := openBroker(t)
				defer br.Close()
				eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, DisableHTTP: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				require.NoError(t, eng.Start(ctx))
				defer func() { require.NoError(t, eng.Stop(context.Background())) }()

				require.NoError(t, app.Process(ctx, OpenAccount{ID: "42", Owner: "Zoë <z&z>"}, laneway.AtPriority(prio), laneway.CorrelationID("corr-1")))
				wantStream, err := laneway.RouteStream(cfg, "Bank", cat, prio)
				require.NoError(t, err)
				require.Eventually(t, func() bool {
					n, err := br.Len(ctx, wantStream)
					return err == nil && n == 1
				}, 20*time.Second, 5*time.Millisecond, "the relay publishes to %s", wantStream)
				entries, err := br.Range(ctx, wantStream, "-", "+", 0)
				require.NoError(t, err)
				published := entries[0].Data

				// What a producer outside the engine knows of the event.
				var md struct {
					Metadata struct {
						Headers struct{ ID, Time string }
						Domain  struct {
							SequenceID    string `json:"sequence_id"`
							CorrelationID string `json:"correlation_id"`
							CausationID   string `json:"causation_id"`
						}
					}
				}
				require.NoError(t, json.Unmarshal([]byte(published), &md))
				at, err := time.Parse(time.RFC3339Nano, md.Metadata.Headers.Time)
				require.NoError(t, err)
				ev, err := dom.EventEntry("42", Opened{Owner: "Zoë <z&z>"})
				require.NoError(t, err)
				ev.Sequence, ev.Priority, ev.Time = md.Metadata.Domain.SequenceID, prio, at
				ev.CorrelationID, ev.CausationID = md.Metadata.Domain.CorrelationID, md.Metadata.Domain.CausationID
				pub, err := laneway.EncodeEvent(ev, cfg)
				require.NoError(t, err)
				require.Equal(t, wantStream, pub.Stream)
				require.Equal(t, published, pub.Data, "byte-identical to the relay's entry")
				require.Equal(t, cat+"-42-"+md.Metadata.Domain.SequenceID, md.Metadata.Headers.ID, "the default id rule is the relay's")

				// The same event spelled out field by field, with the payload
				// as raw JSON in another key order, encodes the same.
				raw, err := laneway.EncodeEvent(laneway.EventEntry{
					Domain: "Bank", Category: cat, AggregateID: "42", Kind: "Opened", Sequence: ev.Sequence,
					Priority: prio, Time: at, CorrelationID: ev.CorrelationID, CausationID: ev.CausationID,
					Payload: json.RawMessage(` {"owner": "Zoë <z&z>"} `),
				}, cfg)
				require.NoError(t, err)
				require.Equal(t, pub, raw)
			})
		}
	}
}

func TestRouteStream(t *testing.T) {
	cfg := func(enabled bool, threshold int, suffix, naming string) *lanewayconfig.Config {
		c := lanewayconfig.Default()
		c.Server.PriorityLanes.Enabled, c.Server.PriorityLanes.Threshold = enabled, threshold
		if suffix != "" {
			c.Server.PriorityLanes.BackfillSuffix = suffix
		}
		if naming != "" {
			c.Server.StreamNaming = naming
		}
		return c
	}
	on := cfg(true, 0, "bulk", "")
	for _, tc := range []struct {
		cat  string
		p    laneway.Priority
		cfg  *lanewayconfig.Config
		want string
	}{
		{"order", laneway.Low, on, "order:bulk"},
		{"order", -1, on, "order:bulk"},
		{"order", laneway.Normal, on, "order"},
		{"order", laneway.High, on, "order"},
		{"order:command", laneway.Bulk, on, "order:command:bulk"},
		{"order", laneway.Bulk, cfg(false, 0, "", ""), "order"},
		{"order", laneway.Low, nil, "order"}, // the defaults: lanes off
		{"order", laneway.Low, cfg(true, 0, "", ""), "order:backfill"},
		{"order", laneway.Normal, cfg(true, 10, "", ""), "order:backfill"},
		{"order", laneway.Low, cfg(true, 0, "", "protean"), "shop::order:backfill"},
		{"order", laneway.High, cfg(true, 0, "", "protean"), "shop::order"},
	} {
		got, err := laneway.RouteStream(tc.cfg, "Shop", tc.cat, tc.p)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%s at %v", tc.cat, tc.p)
	}
}

func TestEncodeEventRejects(t *testing.T) {
	good := laneway.EventEntry{Domain: "Bank", Category: "account", AggregateID: "1", Kind: "Opened", Payload: Opened{Owner: "a"}}
	_, err := laneway.EncodeEvent(good, nil)
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		edit func(*laneway.EventEntry)
		want string
	}{
		"no domain":      {func(e *laneway.EventEntry) { e.Domain = "" }, "Domain"},
		"dotted kind":    {func(e *laneway.EventEntry) { e.Kind = "a.b" }, "Kind"},
		"bad category":   {func(e *laneway.EventEntry) { e.Category = "a:b" }, "Category"},
		"no aggregate":   {func(e *laneway.EventEntry) { e.AggregateID = "" }, "AggregateID"},
		"no payload":     {func(e *laneway.EventEntry) { e.Payload = nil }, "Payload"},
		"array payload":  {func(e *laneway.EventEntry) { e.Payload = []int{1} }, "not a JSON object"},
		"raw not object": {func(e *laneway.EventEntry) { e.Payload = json.RawMessage(`"x"`) }, "not a JSON object"},
		"no priority":    {func(e *laneway.EventEntry) { e.Priority = laneway.NoPriority }, "NoPriority"},
	} {
		e := good
		tc.edit(&e)
		_, err := laneway.EncodeEvent(e, nil)
		require.ErrorContains(t, err, tc.want, name)
		require.True(t, strings.HasPrefix(err.Error(), "laneway.EncodeEvent: "), name)
	}
}

// TestConsumeWithoutDatabase: an app opened with NoDatabase consumes
// entries written by the public encoder on real Redis, on both lanes, runs
// no relay, and says so clearly where a database would be needed.
func TestConsumeWithoutDatabase(t *testing.T) {
	ctx := context.Background()
	cat := testsvc.Prefix() + "account"
	type seen struct {
		meta  laneway.Meta
		txErr error
	}
	var mu sync.Mutex
	var got []seen
	h := laneway.NewHandler("Mailer")
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, e Opened, m laneway.Meta) error {
		_, err := tx.Exec(ctx, "SELECT 1")
		mu.Lock()
		got = append(got, seen{m, err})
		mu.Unlock()
		return nil
	})
	dom := producerDomain(t, cat, false, h)
	cfg := lanewayconfig.Default()
	cfg.Server.PriorityLanes.Enabled = true
	cfg.Server.StreamSubscription.BlockingTimeoutMS = 100
	cfg.Databases = nil // nothing to connect to: the app must not try
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{NoDatabase: true})
	require.NoError(t, err)
	require.Nil(t, app.Store())
	require.ErrorIs(t, app.Process(ctx, OpenAccount{ID: "1"}), laneway.ErrNoDatabase)

	br, err := redisbroker.Open(ctx, testsvc.RedisURL(t), redisbroker.Options{})
	require.NoError(t, err)
	defer br.Close()
	var handled sync.WaitGroup
	handled.Add(2)
	eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, DisableHTTP: true,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnHandled: func(laneway.Handled) { handled.Done() }})
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(runCtx) }()

	for id, p := range map[string]laneway.Priority{"n": laneway.Normal, "l": laneway.Low} {
		ev, err := dom.EventEntry(id, Opened{Owner: id})
		require.NoError(t, err)
		ev.Priority = p
		pub, err := laneway.EncodeEvent(ev, cfg)
		require.NoError(t, err)
		// Published before or after the groups exist: the engine creates
		// them from the start of the stream either way.
		require.Eventually(t, func() bool { return len(eng.ConsumerStats()) == 1 }, 20*time.Second, 5*time.Millisecond)
		_, err = br.Publish(ctx, []lanewaybroker.Publication{pub})
		require.NoError(t, err)
	}
	waitGroup(t, &handled, 20*time.Second)
	stop()
	require.NoError(t, <-runErr, "a cancelled context is a clean shutdown")
	<-eng.Stopped()

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 2)
	lanes := map[string]laneway.Priority{}
	for _, s := range got {
		require.ErrorIs(t, s.txErr, laneway.ErrNoDatabase)
		lanes[s.meta.Stream] = s.meta.Priority
	}
	require.Equal(t, map[string]laneway.Priority{cat + "-n": laneway.Normal, cat + "-l": laneway.Low}, lanes)
	require.Equal(t, laneway.RelayStats{}, eng.RelayStats(), "no relay runs without a database")
	st := eng.ConsumerStats()["Mailer@"+cat]
	require.Equal(t, int64(1), st.Handled[laneway.LanePrimary])
	require.Equal(t, int64(1), st.Handled[laneway.LaneBackfill])

	_, err = laneway.Open(ctx, producerDomain(t, cat, true, h), cfg, laneway.Options{NoDatabase: true})
	require.ErrorContains(t, err, "registers commands ([OpenAccount])")
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal(errors.New("handlers did not run in time"))
	}
}
