// Package chaosdomain is the small domain the fault suite (internal/chaos)
// runs: one aggregate, one command, one event, and a handler that counts
// every delivery it commits, so lost effects and duplicates can be counted
// in the database afterwards.
package chaosdomain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/laneway/laneway"
)

// Name is the domain name.
const Name = "Chaos"

// CounterName is the counting handler's name (its consumer group).
const CounterName = "Counter"

// EffectsTable is created by the suite: one row per committed handler run.
const EffectsTable = `CREATE TABLE IF NOT EXISTS chaos_effects (
	event_id text NOT NULL, item_id text NOT NULL, lane text NOT NULL,
	created_ns bigint NOT NULL, handled_ns bigint NOT NULL, handled_by text NOT NULL DEFAULT '')`

// Item is the aggregate.
type Item struct {
	laneway.AggregateRoot
	Touches int `json:"touches"`
}

// Touch is the command: touch an item. Lane says which traffic it belongs
// to ("prod" or "bulk"); CreatedNS is when the suite issued it.
type Touch struct {
	ItemID    string `json:"item_id"`
	Lane      string `json:"lane"`
	CreatedNS int64  `json:"created_ns"`
}

// Kind names the command.
func (Touch) Kind() string { return "Touch" }

// TargetID is the item.
func (c Touch) TargetID() string { return c.ItemID }

// Touched is the event.
type Touched struct {
	ItemID    string `json:"item_id"`
	Lane      string `json:"lane"`
	CreatedNS int64  `json:"created_ns"`
}

// Kind names the event.
func (Touched) Kind() string { return "Touched" }

// New builds the domain. now returns the handler's clock in nanoseconds;
// bulkCost is slept by the handler for each bulk event, so a backlog takes
// long enough to drain for faults to hit it mid-way; engine names the
// process in each effect row, so a slow drain shows which engine stalled.
func New(now func() int64, bulkCost time.Duration, engine string) (*laneway.Domain, error) {
	b := laneway.NewDomain(Name)
	laneway.RegisterAggregate[Item](b, laneway.AggregateOptions{Category: "item"})
	laneway.RegisterEvent[Item, Touched](b)
	laneway.RegisterCommand[Item](b, func(ctx context.Context, tx *laneway.Tx, cmd Touch) error {
		it, err := laneway.Load[Item](ctx, tx, cmd.ItemID)
		if errors.Is(err, laneway.ErrNotFound) {
			it = laneway.New[Item](cmd.ItemID)
		} else if err != nil {
			return err
		}
		it.Touches++
		it.Raise(Touched(cmd))
		return tx.Save(ctx, it)
	})
	h := laneway.NewHandler(CounterName)
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, ev Touched, meta laneway.Meta) error {
		switch {
		case strings.HasPrefix(ev.ItemID, "poison-"):
			panic(fmt.Sprintf("poison item %s", ev.ItemID))
		case strings.HasPrefix(ev.ItemID, "hang-"):
			<-ctx.Done() // a call that never answers; only the handler timeout ends it
			return ctx.Err()
		}
		if ev.Lane == "bulk" && bulkCost > 0 {
			time.Sleep(bulkCost)
		}
		// Not idempotent on purpose: every committed run adds a row, so a
		// duplicate delivery shows as a second row.
		_, err := tx.Exec(ctx, `INSERT INTO chaos_effects (event_id, item_id, lane, created_ns, handled_ns, handled_by) VALUES ($1, $2, $3, $4, $5, $6)`,
			meta.ID, ev.ItemID, ev.Lane, ev.CreatedNS, now(), engine)
		return err
	})
	b.AddHandler(h)
	return b.Build()
}
