package bench

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/lanewaybroker"
)

// The benchmark's own domain: one aggregate, one command raising one event,
// one handler. Its streams are "lanebench" and "lanebench:*", the only keys
// a --broker run deletes.
const (
	DomainName  = "LaneBench"
	Category    = "lanebench"
	HandlerName = "BenchHandler"
	// rawStream holds the raw XADD / XREADGROUP ceilings' entries.
	rawStream = Category + ":raw"
)

// Item is the aggregate every Submit creates.
type Item struct {
	laneway.AggregateRoot
	Pad string `json:"pad"`
}

// Submit creates an Item and raises Submitted.
type Submit struct {
	ID string `json:"id"`
}

func (Submit) Kind() string       { return "Submit" }
func (c Submit) TargetID() string { return c.ID }

// Submitted carries At, the time it was raised inside the unit of work (the
// same instant the envelope's headers.time records, just before the
// commit): latency is measured from it to the handler's start.
type Submitted struct {
	ID  string `json:"id"`
	At  string `json:"at"`
	Pad string `json:"pad"`
}

func (Submitted) Kind() string { return "Submitted" }

// pad makes an event about as large as a typical one (~400 bytes as an
// entry), so per-byte costs are not flattered.
var pad = strings.Repeat("x", 160)

// probe is what the handler reports to the scenario that runs it. One probe
// per engine; all fields are safe for concurrent use.
type probe struct {
	// cost is simulated handler work: CPU (a busy loop, exact at any
	// size) or, with sleep, waiting on I/O (a timer; on a VM whose timers
	// fire at ~1 ms granularity a sleep never lasts less than that, which
	// is why CPU work is the default).
	cost     time.Duration
	sleep    bool
	primary  latency.Recorder
	nPrimary atomic.Int64
	nBack    atomic.Int64
	// lastBack and lastAny are UnixNano of the last handler end.
	lastBack atomic.Int64
	lastAny  atomic.Int64
}

func (p *probe) handled() int64 { return p.nPrimary.Load() + p.nBack.Load() }

func newDomain(p *probe) (*laneway.Domain, error) {
	b := laneway.NewDomain(DomainName)
	laneway.RegisterAggregate[Item](b, laneway.AggregateOptions{Category: Category})
	laneway.RegisterEvent[Item, Submitted](b)
	laneway.RegisterCommand[Item](b, func(ctx context.Context, tx *laneway.Tx, cmd Submit) error {
		it := laneway.New[Item](cmd.ID)
		it.Pad = "p"
		it.Raise(Submitted{ID: cmd.ID, At: time.Now().UTC().Format(time.RFC3339Nano), Pad: pad})
		return tx.Save(ctx, it)
	})
	h := laneway.NewHandler(HandlerName)
	laneway.On(h, func(ctx context.Context, _ *laneway.Tx, ev Submitted, meta laneway.Meta) error {
		start := time.Now()
		primary := meta.Priority >= laneway.Normal
		if primary {
			if at, err := time.Parse(time.RFC3339Nano, ev.At); err == nil {
				p.primary.Add(start.Sub(at))
			}
		}
		if p.cost > 0 && !p.sleep {
			for deadline := start.Add(p.cost); time.Now().Before(deadline); {
			}
		}
		if p.cost > 0 && p.sleep {
			t := time.NewTimer(p.cost)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		now := time.Now().UnixNano()
		if primary {
			p.nPrimary.Add(1)
		} else {
			p.nBack.Add(1)
			p.lastBack.Store(now)
		}
		p.lastAny.Store(now)
		return nil
	})
	b.AddHandler(h)
	return b.Build()
}

// envelopes builds n Submitted entries at priority prio for stream with the
// public encoder: the bytes the relay would publish, so a backlog loads in
// seconds instead of going through n units of work. stream is given, not
// routed, because the raw-ceiling stage writes to a stream of its own.
func envelopes(stream string, prio laneway.Priority, n int, tag string) ([]lanewaybroker.Publication, error) {
	pubs := make([]lanewaybroker.Publication, n)
	now := time.Now().UTC()
	at := now.Format(time.RFC3339Nano)
	for i := range pubs {
		id := fmt.Sprintf("%s-%d", tag, i)
		pub, err := laneway.EncodeEvent(laneway.EventEntry{
			Domain: DomainName, Category: Category, AggregateID: id, Kind: "Submitted", Sequence: "1.1",
			ID: "m-" + id, Priority: prio, Time: now, Payload: Submitted{ID: id, At: at, Pad: pad},
		}, nil)
		if err != nil {
			return nil, err
		}
		pub.Stream = stream
		pubs[i] = pub
	}
	return pubs, nil
}

// loadBacklog appends n entries to stream in pipelined batches of 1000,
// built a batch at a time so a million-entry backlog does not sit in this
// process's memory as well as in the broker's.
func loadBacklog(ctx context.Context, br lanewaybroker.Broker, stream string, prio laneway.Priority, n int, tag string) error {
	for i := 0; i < n; i += 1000 {
		pubs, err := envelopes(stream, prio, min(1000, n-i), fmt.Sprintf("%s-%d", tag, i))
		if err != nil {
			return err
		}
		if _, err := br.Publish(ctx, pubs); err != nil {
			return fmt.Errorf("load backlog into %s: %w", stream, err)
		}
	}
	return nil
}

// loadRouted is loadBacklog over several streams: each entry goes to
// route(its aggregate id), the partition an engine's relay would pick.
func loadRouted(ctx context.Context, br lanewaybroker.Broker, route func(aggregateID string) string, prio laneway.Priority, n int, tag string) error {
	for i := 0; i < n; i += 1000 {
		batch := fmt.Sprintf("%s-%d", tag, i)
		pubs, err := envelopes("", prio, min(1000, n-i), batch)
		if err != nil {
			return err
		}
		for j := range pubs {
			pubs[j].Stream = route(fmt.Sprintf("%s-%d", batch, j)) // the id envelopes gave it
		}
		if _, err := br.Publish(ctx, pubs); err != nil {
			return fmt.Errorf("load backlog: %w", err)
		}
	}
	return nil
}
