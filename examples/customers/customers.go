// Package customers is the domain of the seed guide ("Using Priority
// Lanes"): customers whose loyalty tier a batch migration updates, products a
// bulk job re-indexes, a projector that keeps a customer_summary read model
// and a notification handler that stands in for a confirmation email.
//
// It is the example compiled into the laneway binary and the domain of the
// walkthrough in README.md.
package customers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/lanewaystore"
)

// DomainName is the name in every type string ("Customers.CustomerUpdated.v2").
const DomainName = "Customers"

// Handler names: each is the consumer group on every stream the handler reads.
const (
	ProjectorName    = "CustomerProjector"
	NotificationName = "NotificationHandler"
)

// DefaultTier is the loyalty tier of a new customer, and of a v1
// CustomerUpdated that carried no tier.
const DefaultTier = "standard"

// Options configure the domain. The zero value is ready to use.
type Options struct {
	// EmailCost is the simulated cost of sending one confirmation email in
	// NotificationHandler (the demo raises it to make a backlog visible).
	// Defaults to 0.
	EmailCost time.Duration

	// OnHandled, when set, is called after a handler has done its work for
	// one event, inside the handler's unit of work (before it commits). The
	// demo uses it to measure end-to-end latency per lane. It must be safe
	// for concurrent use. Defaults to nil.
	OnHandled func(handler string, meta laneway.Meta)
}

// Customer is the customer aggregate (stream category "customer").
type Customer struct {
	laneway.AggregateRoot
	Name        string `json:"name"`
	Email       string `json:"email"`
	LoyaltyTier string `json:"loyalty_tier"`
}

// Product is the product aggregate (stream category "product"); the bulk
// re-index job of the seed guide touches it.
type Product struct {
	laneway.AggregateRoot
	SKU          string    `json:"sku"`
	IndexedAt    time.Time `json:"indexed_at"`
	ReindexCount int       `json:"reindex_count"`
}

// RegisterCustomer creates a customer.
type RegisterCustomer struct {
	CustomerID string `json:"customer_id"`
	Name       string `json:"name"`
	Email      string `json:"email"`
}

func (RegisterCustomer) Kind() string       { return "RegisterCustomer" }
func (c RegisterCustomer) TargetID() string { return c.CustomerID }

// UpdateCustomer sets a customer's loyalty tier (the seed's migration).
type UpdateCustomer struct {
	CustomerID  string `json:"customer_id"`
	LoyaltyTier string `json:"loyalty_tier"`
}

func (UpdateCustomer) Kind() string       { return "UpdateCustomer" }
func (c UpdateCustomer) TargetID() string { return c.CustomerID }

// ReindexProduct re-indexes a product, creating it on first use (the seed's
// BULK example).
type ReindexProduct struct {
	ProductID string `json:"product_id"`
}

func (ReindexProduct) Kind() string       { return "ReindexProduct" }
func (c ReindexProduct) TargetID() string { return c.ProductID }

// CustomerRegistered is raised when a customer is created (v1).
type CustomerRegistered struct {
	CustomerID string `json:"customer_id"`
	Name       string `json:"name"`
	Email      string `json:"email"`
}

func (CustomerRegistered) Kind() string { return "CustomerRegistered" }

// CustomerUpdated is raised when a customer's tier changes. Version 2: the
// tier field was called "tier" in version 1 (see CustomerUpdatedV1 and
// UpcastCustomerUpdatedV1).
type CustomerUpdated struct {
	CustomerID  string `json:"customer_id"`
	LoyaltyTier string `json:"loyalty_tier"`
}

func (CustomerUpdated) Kind() string { return "CustomerUpdated" }

// Version is 2; payloads of version 1 are upcast on decode.
func (CustomerUpdated) Version() int { return 2 }

// CustomerUpdatedV1 is the payload shape an older version of this domain
// wrote as "Customers.CustomerUpdated.v1". It is not registered; it documents
// the old wire shape and lets tests and tools produce old events.
type CustomerUpdatedV1 struct {
	CustomerID string `json:"customer_id"`
	Tier       string `json:"tier"`
}

// ProductReindexed is raised by every ReindexProduct (v1).
type ProductReindexed struct {
	ProductID string `json:"product_id"`
}

func (ProductReindexed) Kind() string { return "ProductReindexed" }

// UpcastCustomerUpdatedV1 takes a CustomerUpdated payload from v1 to v2:
// "tier" becomes "loyalty_tier", and a missing or empty tier becomes
// DefaultTier. A tier that is not a string is an error (the message then
// goes to the DLQ instead of writing garbage into the read model).
func UpcastCustomerUpdatedV1(p map[string]any) (map[string]any, error) {
	tier := DefaultTier
	if v, ok := p["tier"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("CustomerUpdated v1: tier is %T, want a string", v)
		}
		if s != "" {
			tier = s
		}
	}
	delete(p, "tier")
	p["loyalty_tier"] = tier
	return p, nil
}

// New builds the Customers domain.
func New(opts Options) (*laneway.Domain, error) {
	b := laneway.NewDomain(DomainName)
	laneway.RegisterAggregate[Customer](b, laneway.AggregateOptions{Category: "customer"})
	laneway.RegisterAggregate[Product](b, laneway.AggregateOptions{Category: "product"})
	laneway.RegisterEvent[Customer, CustomerRegistered](b)
	laneway.RegisterEvent[Customer, CustomerUpdated](b)
	laneway.RegisterEvent[Product, ProductReindexed](b)
	laneway.RegisterCommand[Customer](b, registerCustomer)
	laneway.RegisterCommand[Customer](b, updateCustomer)
	laneway.RegisterCommand[Product](b, reindexProduct)
	b.AddUpcaster(laneway.Upcaster{Event: "CustomerUpdated", From: 1, To: 2, Fn: UpcastCustomerUpdatedV1})
	b.AddHandler(projector(opts))
	b.AddHandler(notifications(opts))
	return b.Build()
}

func registerCustomer(ctx context.Context, tx *laneway.Tx, cmd RegisterCustomer) error {
	c := laneway.New[Customer](cmd.CustomerID)
	c.Name, c.Email, c.LoyaltyTier = cmd.Name, cmd.Email, DefaultTier
	c.Raise(CustomerRegistered{CustomerID: cmd.CustomerID, Name: cmd.Name, Email: cmd.Email})
	return tx.Save(ctx, c)
}

func updateCustomer(ctx context.Context, tx *laneway.Tx, cmd UpdateCustomer) error {
	c, err := laneway.Load[Customer](ctx, tx, cmd.CustomerID)
	if err != nil {
		return err
	}
	c.LoyaltyTier = cmd.LoyaltyTier
	c.Raise(CustomerUpdated{CustomerID: cmd.CustomerID, LoyaltyTier: cmd.LoyaltyTier})
	return tx.Save(ctx, c)
}

func reindexProduct(ctx context.Context, tx *laneway.Tx, cmd ReindexProduct) error {
	p, err := laneway.Load[Product](ctx, tx, cmd.ProductID)
	if errors.Is(err, laneway.ErrNotFound) {
		p = laneway.New[Product](cmd.ProductID)
		p.SKU = cmd.ProductID
	} else if err != nil {
		return err
	}
	p.IndexedAt = time.Now().UTC()
	p.ReindexCount++
	p.Raise(ProductReindexed{ProductID: cmd.ProductID})
	return tx.Save(ctx, p)
}

// LoyaltyTiers are the tiers the example migration (`laneway example
// migrate-tiers`) assigns, in turn, by position: TierFor(i).
var LoyaltyTiers = []string{"bronze", "silver", "gold", "platinum"}

// TierFor is the tier the example migration gives the i-th customer.
func TierFor(i int) string { return LoyaltyTiers[i%len(LoyaltyTiers)] }

// CustomerIDs returns the ids of up to limit registered customers, in id
// order. It reads the aggregates themselves (Laneway's laneway_aggregates
// table, written in the command's transaction), not customer_summary, which
// the engine fills in later and may lag behind.
func CustomerIDs(ctx context.Context, st lanewaystore.Store, limit int) ([]string, error) {
	var ids []string
	err := st.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		rs, err := tx.Query(ctx, `SELECT id FROM laneway_aggregates WHERE category = $1 ORDER BY id LIMIT $2`, "customer", limit)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var id string
			if err := rs.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rs.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("customers: list customers: %w", err)
	}
	return ids, nil
}

// summaryDDL works on SQLite and PostgreSQL alike.
const summaryDDL = `CREATE TABLE IF NOT EXISTS customer_summary (
	customer_id  TEXT PRIMARY KEY,
	name         TEXT NOT NULL DEFAULT '',
	email        TEXT NOT NULL DEFAULT '',
	loyalty_tier TEXT NOT NULL DEFAULT '',
	updated_at   TEXT NOT NULL DEFAULT ''
)`

// Migrate creates the customer_summary read model. Idempotent; run it after
// laneway.Open so queries work before the first event is projected (the
// projector also creates the table when it is missing).
func Migrate(ctx context.Context, app *laneway.App) error {
	err := app.Store().InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
		_, err := tx.Exec(ctx, summaryDDL)
		return err
	})
	if err != nil {
		return fmt.Errorf("customers: create customer_summary: %w", err)
	}
	return nil
}

// projector keeps customer_summary. Its writes commit in the handler's unit
// of work together with the processed marker, so a redelivered event is
// skipped instead of applied twice.
func projector(opts Options) *laneway.Handler {
	h := laneway.NewHandler(ProjectorName)
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, ev CustomerRegistered, meta laneway.Meta) error {
		return project(ctx, tx, opts, meta,
			// A registration never resets a tier an earlier event already set.
			`INSERT INTO customer_summary (customer_id, name, email, loyalty_tier, updated_at)
			 VALUES ($1, $2, $3, $4, $5)
			 ON CONFLICT (customer_id) DO UPDATE SET
			   name = excluded.name, email = excluded.email, updated_at = excluded.updated_at`,
			ev.CustomerID, ev.Name, ev.Email, DefaultTier, now())
	})
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, ev CustomerUpdated, meta laneway.Meta) error {
		return project(ctx, tx, opts, meta,
			`INSERT INTO customer_summary (customer_id, loyalty_tier, updated_at)
			 VALUES ($1, $2, $3)
			 ON CONFLICT (customer_id) DO UPDATE SET
			   loyalty_tier = excluded.loyalty_tier, updated_at = excluded.updated_at`,
			ev.CustomerID, ev.LoyaltyTier, now())
	})
	return h
}

func project(ctx context.Context, tx *laneway.Tx, opts Options, meta laneway.Meta, sql string, args ...any) error {
	first, err := tx.MarkProcessed(ctx, ProjectorName, meta.ID)
	if err != nil {
		return fmt.Errorf("%s: mark %s processed: %w", ProjectorName, meta.ID, err)
	}
	if first {
		// The table is also created here, not only by Migrate, because
		// `laneway server` has no hook to run Migrate: an engine started on
		// a fresh database must not dead-letter every event. CREATE TABLE IF
		// NOT EXISTS on an existing table is a catalog lookup on both stores.
		if _, err := tx.Exec(ctx, summaryDDL); err != nil {
			return fmt.Errorf("%s: create customer_summary: %w", ProjectorName, err)
		}
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("%s: project %s: %w", ProjectorName, meta.ID, err)
		}
	}
	handled(opts, ProjectorName, meta)
	return nil
}

// notifications stands in for a service that emails a confirmation on every
// change: slow work that production traffic must not wait behind.
func notifications(opts Options) *laneway.Handler {
	h := laneway.NewHandler(NotificationName)
	laneway.On(h, func(ctx context.Context, _ *laneway.Tx, _ CustomerRegistered, meta laneway.Meta) error {
		return sendEmail(ctx, opts, meta)
	})
	laneway.On(h, func(ctx context.Context, _ *laneway.Tx, _ CustomerUpdated, meta laneway.Meta) error {
		return sendEmail(ctx, opts, meta)
	})
	return h
}

func sendEmail(ctx context.Context, opts Options, meta laneway.Meta) error {
	if opts.EmailCost > 0 {
		t := time.NewTimer(opts.EmailCost)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: email for %s: %w", NotificationName, meta.ID, ctx.Err())
		case <-t.C:
		}
	}
	handled(opts, NotificationName, meta)
	return nil
}

func handled(opts Options, handler string, meta laneway.Meta) {
	if opts.OnHandled != nil {
		opts.OnHandled(handler, meta)
	}
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }
