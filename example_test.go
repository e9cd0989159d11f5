package laneway_test

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// Parcel is the aggregate of the example's shipping domain.
type Parcel struct {
	laneway.AggregateRoot
}

// ParcelImported is the event an importer writes straight into the lanes.
type ParcelImported struct {
	ParcelID string `json:"parcel_id"`
	Weight   int    `json:"weight_g"`
}

func (ParcelImported) Kind() string { return "ParcelImported" }

// Example_producer shows a producer outside the engine writing entries with
// the public encoder straight into the broker, on the lane each priority
// picks, and an engine without a database handling them: Engine.Run blocks
// until its context ends, and the handled hook reports every run. The
// embedded broker keeps the example self-contained; a real Redis works the
// same (redisbroker.Open), and so does any client that runs
// XADD <Stream> * data <Data>.
func Example_producer() {
	ctx := context.Background()

	b := laneway.NewDomain("Shipping")
	laneway.RegisterAggregate[Parcel](b, laneway.AggregateOptions{})
	laneway.RegisterEvent[Parcel, ParcelImported](b)
	labels := laneway.NewHandler("LabelPrinter")
	laneway.On(labels, func(ctx context.Context, tx *laneway.Tx, e ParcelImported, m laneway.Meta) error {
		return nil // print a label for e.ParcelID
	})
	b.AddHandler(labels)
	dom, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	cfg := lanewayconfig.Default()
	cfg.Server.PriorityLanes.Enabled = true
	cfg.Server.StreamSubscription.BlockingTimeoutMS = 100
	broker, err := redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()

	// The producer: an import of old parcels at LOW, one urgent at HIGH.
	var pubs []lanewaybroker.Publication
	for i, p := range []laneway.Priority{laneway.Low, laneway.Low, laneway.High} {
		id := fmt.Sprintf("p%d", i+1)
		entry, err := laneway.EncodeEvent(laneway.EventEntry{
			Domain: "Shipping", Category: "parcel", AggregateID: id, Kind: "ParcelImported",
			ID: "import-" + id, Priority: p, Payload: ParcelImported{ParcelID: id, Weight: 250 * (i + 1)},
		}, cfg)
		if err != nil {
			fmt.Println(err)
			return
		}
		pubs = append(pubs, entry)
	}
	if _, err := broker.Publish(ctx, pubs); err != nil {
		fmt.Println(err)
		return
	}

	// The consumer: no database, so no outbox relay; just the lanes.
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{NoDatabase: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	runCtx, stop := context.WithCancel(ctx)
	var mu sync.Mutex
	var lines []string
	eng := laneway.NewEngine(app, laneway.EngineOptions{
		Broker: broker, DisableHTTP: true, Logger: slog.New(slog.DiscardHandler),
		OnHandled: func(h laneway.Handled) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, fmt.Sprintf("%s handled %s from %s (%s lane, %v), err=%v",
				h.Group, h.Meta.ID, h.Stream, h.Lane, h.Meta.Priority, h.Err))
			if len(lines) == len(pubs) {
				stop() // everything handled: shut down
			}
		},
	})
	if err := eng.Run(runCtx); err != nil { // blocks until stop()
		fmt.Println(err)
		return
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// LabelPrinter handled import-p1 from parcel:backfill (backfill lane, LOW), err=<nil>
	// LabelPrinter handled import-p2 from parcel:backfill (backfill lane, LOW), err=<nil>
	// LabelPrinter handled import-p3 from parcel (primary lane, HIGH), err=<nil>
}
