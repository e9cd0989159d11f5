package customers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaytest"
)

// seenUpdate is what the recording handler got: the typed v2 event and the
// type string of the message it came in.
type seenUpdate struct {
	ev  customers.CustomerUpdated
	typ string
}

// recordingDomain is the Customers model (aggregate, CustomerUpdated v2 and
// its real upcaster) with one handler that records every CustomerUpdated.
func recordingDomain(t *testing.T, mu *sync.Mutex, seen *[]seenUpdate) *laneway.Domain {
	t.Helper()
	b := laneway.NewDomain(customers.DomainName)
	laneway.RegisterAggregate[customers.Customer](b, laneway.AggregateOptions{Category: "customer"})
	laneway.RegisterEvent[customers.Customer, customers.CustomerUpdated](b)
	b.AddUpcaster(laneway.Upcaster{Event: "CustomerUpdated", From: 1, To: 2, Fn: customers.UpcastCustomerUpdatedV1})
	h := laneway.NewHandler("Recorder")
	laneway.On(h, func(_ context.Context, _ *laneway.Tx, ev customers.CustomerUpdated, m laneway.Meta) error {
		mu.Lock()
		defer mu.Unlock()
		*seen = append(*seen, seenUpdate{ev: ev, typ: m.Type})
		return nil
	})
	b.AddHandler(h)
	dom, err := b.Build()
	require.NoError(t, err)
	return dom
}

// wireEntry is the stream entry an older (v1) or current (v2) producer
// wrote for customer c1.
func wireEntry(t *testing.T, n int, payload any, version int, priority laneway.Priority) string {
	t.Helper()
	data, err := json.Marshal(payload)
	require.NoError(t, err)
	sum, err := envelope.Checksum(data)
	require.NoError(t, err)
	raw, err := envelope.Encode(envelope.Envelope{
		Data: data,
		Metadata: envelope.Metadata{
			Headers: envelope.Headers{ID: fmt.Sprintf("customer-c1-%d.1", n), Time: time.Now().UTC().Format(time.RFC3339Nano),
				Type: envelope.TypeString(customers.DomainName, "CustomerUpdated", version), Stream: "customer-c1"},
			Envelope: envelope.Integrity{SpecVersion: envelope.SpecVersion, Checksum: sum},
			Domain: envelope.Domain{Class: envelope.ClassEvent, StreamCategory: "customer", Priority: int(priority),
				Version: version, SequenceID: fmt.Sprintf("%d.1", n)},
		},
	})
	require.NoError(t, err)
	return string(raw)
}

// mixedTiers are the tiers of the interleaved v1/v2 entries, in stream
// order; odd positions are v1 ("tier"), even ones v2 ("loyalty_tier"), and
// one v1 entry has no tier at all.
var mixedTiers = []string{"bronze", "silver", "", "gold", "platinum", "silver", "gold", "bronze"}

func publishMixed(t *testing.T, h *lanewaytest.Harness, lane string, priority laneway.Priority) {
	t.Helper()
	var pubs []lanewaybroker.Publication
	for i, tier := range mixedTiers {
		var data string
		if i%2 == 0 {
			p := map[string]any{"customer_id": "c1"}
			if tier != "" {
				p["tier"] = tier
			}
			data = wireEntry(t, i+1, p, 1, priority)
		} else {
			data = wireEntry(t, i+1, customers.CustomerUpdated{CustomerID: "c1", LoyaltyTier: tier}, 2, priority)
		}
		pubs = append(pubs, lanewaybroker.Publication{Stream: lane, Data: data})
	}
	_, err := h.Broker.Publish(context.Background(), pubs)
	require.NoError(t, err)
}

// TestMixedVersionsThroughTheEngine: v1 and v2 entries interleaved in one
// lane are handled by the running engine in stream order, and the handler
// only ever sees v2 (the v1 "tier" arrives as loyalty_tier).
func TestMixedVersionsThroughTheEngine(t *testing.T) {
	for _, lane := range []struct {
		stream   string
		priority laneway.Priority
	}{{"customer", laneway.Normal}, {"customer:backfill", laneway.Low}} {
		t.Run(lane.stream, func(t *testing.T) {
			var mu sync.Mutex
			var seen []seenUpdate
			h := lanewaytest.New(t, recordingDomain(t, &mu, &seen), lanewaytest.Options{})
			publishMixed(t, h, lane.stream, lane.priority)
			h.Drain(t)

			mu.Lock()
			defer mu.Unlock()
			require.Len(t, seen, len(mixedTiers))
			for i, s := range seen {
				want := mixedTiers[i]
				if want == "" {
					want = customers.DefaultTier
				}
				require.Equal(t, customers.CustomerUpdated{CustomerID: "c1", LoyaltyTier: want}, s.ev, "entry %d", i)
				// Meta.Type is the type on the wire: the handler is told
				// which version was written, but decodes v2.
				require.Equal(t, fmt.Sprintf("Customers.CustomerUpdated.v%d", 2-(i+1)%2), s.typ, "entry %d", i)
			}
			require.Zero(t, h.Len(t, lane.stream+":dlq"), "nothing dead-lettered")
		})
	}
}

// TestMixedVersionsCustomersProjector: the shipped domain's projector,
// through the engine, ends with the tier of the last entry of a mixed lane.
func TestMixedVersionsCustomersProjector(t *testing.T) {
	dom, err := customers.New(customers.Options{})
	require.NoError(t, err)
	h := lanewaytest.New(t, dom, lanewaytest.Options{})
	publishMixed(t, h, "customer:backfill", laneway.Low)
	h.Drain(t)
	require.Equal(t, mixedTiers[len(mixedTiers)-1], readSummary(t, h.App, "c1").tier)
	require.Zero(t, h.Len(t, "customer:backfill:dlq"))
}

// TestUpcasterChainErrorsAtBuild: a broken chain stops the domain at build
// time, with an error naming the event.
func TestUpcasterChainErrorsAtBuild(t *testing.T) {
	noop := func(p map[string]any) (map[string]any, error) { return p, nil }
	up := func(from, to int) laneway.Upcaster {
		return laneway.Upcaster{Event: "CustomerUpdated", From: from, To: to, Fn: noop}
	}
	for name, tc := range map[string]struct {
		ups  []laneway.Upcaster
		want string
	}{
		"duplicate source":      {[]laneway.Upcaster{up(1, 2), up(1, 2)}, "two upcasters for CustomerUpdated start at v1"},
		"cycle":                 {[]laneway.Upcaster{up(1, 2), up(2, 1)}, "upcasters for CustomerUpdated form a cycle"},
		"two terminals":         {[]laneway.Upcaster{up(1, 2), up(3, 4)}, "upcasters for CustomerUpdated end at more than one version"},
		"unregistered terminal": {[]laneway.Upcaster{up(1, 3)}, "upcasters for CustomerUpdated end at v3 but the registered version is v2"},
		"unregistered event": {[]laneway.Upcaster{{Event: "CustomerDeleted", From: 1, To: 2, Fn: noop}},
			"upcaster CustomerDeleted v1 -> v2 is for an event that is not registered"},
	} {
		t.Run(name, func(t *testing.T) {
			b := laneway.NewDomain(customers.DomainName)
			laneway.RegisterAggregate[customers.Customer](b, laneway.AggregateOptions{Category: "customer"})
			laneway.RegisterEvent[customers.Customer, customers.CustomerUpdated](b)
			for _, u := range tc.ups {
				b.AddUpcaster(u)
			}
			dom, err := b.Build()
			require.Nil(t, dom)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "domain Customers")
		})
	}
}
