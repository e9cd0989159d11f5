package customers_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

type storeCase struct {
	name string
	open func(t *testing.T) lanewaystore.Store
}

var stores = []storeCase{
	{"sqlite", func(t *testing.T) lanewaystore.Store {
		st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "customers.db"))
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		return st
	}},
	{"postgres", func(t *testing.T) lanewaystore.Store {
		st, err := pgstore.Open(context.Background(), testsvc.PostgresURL(t))
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		return st
	}},
}

// recorder collects OnHandled calls.
type recorder struct {
	mu    sync.Mutex
	calls []string // "handler:message id"
}

func (r *recorder) hook(handler string, meta laneway.Meta) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, handler+":"+meta.ID)
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

type bundle struct {
	app *laneway.App
	dom *laneway.Domain
	rec *recorder
}

func setup(t *testing.T, sc storeCase, opts customers.Options) bundle {
	t.Helper()
	rec := &recorder{}
	if opts.OnHandled == nil {
		opts.OnHandled = rec.hook
	}
	dom, err := customers.New(opts)
	require.NoError(t, err)
	app, err := laneway.Open(context.Background(), dom, nil, laneway.Options{Store: sc.open(t)})
	require.NoError(t, err)
	require.NoError(t, customers.Migrate(context.Background(), app))
	require.NoError(t, customers.Migrate(context.Background(), app), "Migrate is idempotent")
	return bundle{app: app, dom: dom, rec: rec}
}

func (b bundle) handler(t *testing.T, name string) *laneway.Handler {
	t.Helper()
	return handlerNamed(t, b.dom, name)
}

type outboxRow struct {
	stream   string
	priority int
	env      envelope.Envelope
	raw      []byte // the stream entry's data value
}

// seedQuery runs the seed guide's SQL and returns the rows by message id,
// with the envelope each row will travel in.
func seedQuery(t *testing.T, app *laneway.App) map[string]outboxRow {
	t.Helper()
	out := map[string]outboxRow{}
	err := app.Store().InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		rs, err := tx.Query(ctx, "SELECT message_id, priority, stream_name FROM outbox ORDER BY created_at DESC LIMIT 10;")
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var id string
			var r outboxRow
			if err := rs.Scan(&id, &r.priority, &r.stream); err != nil {
				return err
			}
			out[id] = r
		}
		if err := rs.Err(); err != nil {
			return err
		}
		for id, r := range out {
			var data, meta string
			if err := tx.QueryRow(ctx, "SELECT data, metadata FROM outbox WHERE message_id = $1", id).Scan(&data, &meta); err != nil {
				return err
			}
			r.raw = []byte(`{"data":` + data + `,"metadata":` + meta + `}`)
			r.env, err = envelope.Decode(r.raw)
			if err != nil {
				return err
			}
			out[id] = r
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

type summary struct{ name, email, tier string }

func readSummary(t *testing.T, app *laneway.App, id string) summary {
	t.Helper()
	var s summary
	err := app.Store().InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.QueryRow(ctx, "SELECT name, email, loyalty_tier FROM customer_summary WHERE customer_id = $1", id).
			Scan(&s.name, &s.email, &s.tier)
	})
	require.NoError(t, err)
	return s
}

// oldEnvelope is the stream entry value an older version of the domain put
// on the stream, written with the public encoder.
func oldEnvelope(t *testing.T, id string, payload any, version int) []byte {
	t.Helper()
	e, err := laneway.EncodeEvent(laneway.EventEntry{
		Domain: customers.DomainName, Category: "customer", AggregateID: "c1", Kind: "CustomerUpdated",
		Version: version, Sequence: "2.1", ID: id, Priority: laneway.Low, Payload: payload,
	}, nil)
	require.NoError(t, err)
	return []byte(e.Data)
}

func TestCustomers(t *testing.T) {
	for _, sc := range stores {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()

			t.Run("seed guide priorities and stream names", func(t *testing.T) {
				b := setup(t, sc, customers.Options{})
				low := laneway.WithPriority(ctx, laneway.Low)
				require.NoError(t, b.app.Process(low, customers.RegisterCustomer{CustomerID: "c1", Name: "Ann", Email: "ann@example.com"}))
				require.NoError(t, b.app.Process(low, customers.UpdateCustomer{CustomerID: "c1", LoyaltyTier: "gold"}))
				require.NoError(t, b.app.Process(low, customers.ReindexProduct{ProductID: "SKU-001"}, laneway.AtPriority(laneway.Bulk)))
				require.NoError(t, b.app.Process(ctx, customers.ReindexProduct{ProductID: "SKU-001"}))

				rows := seedQuery(t, b.app)
				want := map[string]struct {
					priority int
					stream   string
					typ      string
				}{
					"customer-c1-1.1":     {-50, "customer-c1", "Customers.CustomerRegistered.v1"},
					"customer-c1-2.1":     {-50, "customer-c1", "Customers.CustomerUpdated.v2"},
					"product-SKU-001-1.1": {-100, "product-SKU-001", "Customers.ProductReindexed.v1"},
					"product-SKU-001-2.1": {0, "product-SKU-001", "Customers.ProductReindexed.v1"},
				}
				require.Len(t, rows, len(want))
				for id, w := range want {
					r, ok := rows[id]
					require.True(t, ok, "outbox row %s", id)
					require.Equal(t, w.priority, r.priority, id)
					require.Equal(t, w.stream, r.stream, id)
					require.Equal(t, w.typ, r.env.Metadata.Headers.Type, id)
					require.Equal(t, w.priority, r.env.Metadata.Domain.Priority, id)
				}
				require.JSONEq(t, `{"customer_id":"c1","loyalty_tier":"gold"}`, string(rows["customer-c1-2.1"].env.Data))

				require.NoError(t, b.app.Store().InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
					rec, err := tx.LoadAggregate(ctx, "product", "SKU-001")
					require.NoError(t, err)
					var p struct {
						SKU          string `json:"sku"`
						ReindexCount int    `json:"reindex_count"`
					}
					require.NoError(t, json.Unmarshal(rec.Data, &p))
					require.Equal(t, "SKU-001", p.SKU)
					require.Equal(t, 2, p.ReindexCount, "second ReindexProduct loaded the product")
					return nil
				}))

				// The projector turns the outbox events into the read model,
				// once: a redelivered event is skipped.
				proj := b.handler(t, customers.ProjectorName)
				for _, id := range []string{"customer-c1-1.1", "customer-c1-2.1", "customer-c1-2.1", "product-SKU-001-1.1"} {
					_, err := b.app.HandleEntry(ctx, proj, rows[id].raw)
					require.NoError(t, err, id)
				}
				require.Equal(t, summary{"Ann", "ann@example.com", "gold"}, readSummary(t, b.app, "c1"))
				require.Equal(t, []string{
					"CustomerProjector:customer-c1-1.1", "CustomerProjector:customer-c1-2.1", "CustomerProjector:customer-c1-2.1",
				}, b.rec.got())
			})

			t.Run("projector works before Migrate ran", func(t *testing.T) {
				dom, err := customers.New(customers.Options{})
				require.NoError(t, err)
				app, err := laneway.Open(ctx, dom, nil, laneway.Options{Store: sc.open(t)})
				require.NoError(t, err)
				env := oldEnvelope(t, "e1", customers.CustomerUpdated{CustomerID: "c1", LoyaltyTier: "gold"}, 2)
				_, err = app.HandleEntry(ctx, handlerNamed(t, dom, customers.ProjectorName), env)
				require.NoError(t, err)
				require.Equal(t, "gold", readSummary(t, app, "c1").tier)
			})

			t.Run("update of an unknown customer fails and writes nothing", func(t *testing.T) {
				b := setup(t, sc, customers.Options{})
				err := b.app.Process(ctx, customers.UpdateCustomer{CustomerID: "nobody", LoyaltyTier: "gold"})
				require.ErrorIs(t, err, laneway.ErrNotFound)
				require.Empty(t, seedQuery(t, b.app))
			})

			t.Run("upcaster: v1 CustomerUpdated reaches the projector as v2", func(t *testing.T) {
				b := setup(t, sc, customers.Options{})
				proj := b.handler(t, customers.ProjectorName)
				v1 := oldEnvelope(t, "old-1", map[string]any{"customer_id": "c1", "tier": "gold"}, 1)
				require.Contains(t, string(v1), `"data":{"customer_id":"c1","tier":"gold"}`)
				ok, err := b.app.HandleEntry(ctx, proj, v1)
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, "gold", readSummary(t, b.app, "c1").tier)
			})

			t.Run("mixed versions are handled in order", func(t *testing.T) {
				b := setup(t, sc, customers.Options{})
				proj := b.handler(t, customers.ProjectorName)
				steps := []struct {
					id   string
					env  []byte
					want string
				}{
					{"m1", oldEnvelope(t, "m1", customers.CustomerUpdatedV1{CustomerID: "c1", Tier: "silver"}, 1), "silver"},
					{"m2", oldEnvelope(t, "m2", customers.CustomerUpdated{CustomerID: "c1", LoyaltyTier: "platinum"}, 2), "platinum"},
					{"m3", oldEnvelope(t, "m3", map[string]any{"customer_id": "c1"}, 1), customers.DefaultTier},
					{"m4", oldEnvelope(t, "m4", customers.CustomerUpdatedV1{CustomerID: "c1", Tier: "gold"}, 1), "gold"},
				}
				for _, s := range steps {
					_, err := b.app.HandleEntry(ctx, proj, s.env)
					require.NoError(t, err, s.id)
					require.Equal(t, s.want, readSummary(t, b.app, "c1").tier, s.id)
				}
			})

			t.Run("notification handler", func(t *testing.T) {
				b := setup(t, sc, customers.Options{EmailCost: time.Millisecond})
				notify := b.handler(t, customers.NotificationName)
				env := oldEnvelope(t, "n1", customers.CustomerUpdated{CustomerID: "c1", LoyaltyTier: "gold"}, 2)
				ok, err := b.app.HandleEntry(ctx, notify, env)
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, []string{"NotificationHandler:n1"}, b.rec.got())

				// A cancelled context stops the simulated email instead of
				// sleeping it out (EmailCost is far longer than any test).
				slow := setup(t, sc, customers.Options{EmailCost: time.Hour})
				cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				_, err = slow.app.HandleEntry(cctx, slow.handler(t, customers.NotificationName), env)
				require.ErrorIs(t, err, context.DeadlineExceeded)
				require.Empty(t, slow.rec.got())
			})
		})
	}
}

func TestUpcastCustomerUpdatedV1(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{`{"customer_id":"c1","tier":"gold"}`, `{"customer_id":"c1","loyalty_tier":"gold"}`},
		{`{"customer_id":"c1"}`, `{"customer_id":"c1","loyalty_tier":"standard"}`},
		{`{"customer_id":"c1","tier":""}`, `{"customer_id":"c1","loyalty_tier":"standard"}`},
		{`{"customer_id":"c1","tier":null}`, `{"customer_id":"c1","loyalty_tier":"standard"}`},
	} {
		var p map[string]any
		require.NoError(t, json.Unmarshal([]byte(tc.in), &p))
		out, err := customers.UpcastCustomerUpdatedV1(p)
		require.NoError(t, err, tc.in)
		got, err := json.Marshal(out)
		require.NoError(t, err)
		require.JSONEq(t, tc.want, string(got), tc.in)
	}
	_, err := customers.UpcastCustomerUpdatedV1(map[string]any{"customer_id": "c1", "tier": json.Number("3")})
	require.ErrorContains(t, err, "tier is json.Number")
}

func TestDomainTOML(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }

	dev, err := lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: ".", LookupEnv: noEnv})
	require.NoError(t, err)
	require.Equal(t, "Customers", dev.Name)
	require.Equal(t, "stream", dev.Server.DefaultSubscriptionType)
	require.False(t, dev.Server.PriorityLanes.Enabled, "lanes are off in development")
	require.Equal(t, lanewayconfig.Database{Provider: "sqlite", URL: "sqlite://customers.db"}, dev.Databases["default"])
	require.Equal(t, "embedded", dev.Brokers["default"].Provider)

	prod, err := lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: ".", Env: "production", LookupEnv: noEnv})
	require.NoError(t, err)
	require.True(t, prod.OverlayApplied())
	require.True(t, prod.Server.PriorityLanes.Enabled, "lanes are on in production")
	require.Equal(t, 0, prod.Server.PriorityLanes.Threshold)
	require.Equal(t, "backfill", prod.Server.PriorityLanes.BackfillSuffix)

	viaEnv, err := lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: ".", LookupEnv: func(k string) (string, bool) {
		if k == lanewayconfig.EnvVar {
			return "production", true
		}
		return "", false
	}})
	require.NoError(t, err)
	require.True(t, viaEnv.Server.PriorityLanes.Enabled, "LANEWAY_ENV=production selects the overlay")

	// The domain name in the file matches the Go domain.
	dom, err := customers.New(customers.Options{})
	require.NoError(t, err)
	require.Equal(t, dev.Name, dom.Name())
	require.Equal(t, []string{"customer"}, dom.Categories(handlerNamed(t, dom, customers.ProjectorName)))
}

func handlerNamed(t *testing.T, dom *laneway.Domain, name string) *laneway.Handler {
	t.Helper()
	for _, h := range dom.Handlers() {
		if h.Name() == name {
			return h
		}
	}
	t.Fatalf("no handler %s", name)
	return nil
}
