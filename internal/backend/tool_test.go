package backend_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/backend"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// TestOpenToolBrokerEmbedded: a tool reaches the embedded broker of a
// running engine through its listen address, and says what to do when it
// cannot.
func TestOpenToolBrokerEmbedded(t *testing.T) {
	ctx := context.Background()
	_, err := backend.OpenToolBroker(ctx, lanewayconfig.Broker{Provider: lanewayconfig.BrokerProviderEmbedded})
	require.ErrorContains(t, err, `set listen = "127.0.0.1:6380" under [brokers.default] and restart the engine`)

	engine, err := redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	_, err = engine.Publish(ctx, []lanewaybroker.Publication{{Stream: "customer", Data: "{}"}})
	require.NoError(t, err)

	tool, err := backend.OpenToolBroker(ctx, lanewayconfig.Broker{Provider: lanewayconfig.BrokerProviderEmbedded, Listen: engine.Addr()})
	require.NoError(t, err)
	n, err := tool.Len(ctx, "customer")
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "the tool sees the engine's streams, not a fresh broker")
	require.NoError(t, tool.Close())

	require.NoError(t, engine.Close())
	// Not the closed engine's address: packages' tests run in parallel and
	// another one's broker took a port freed this way (CI, once).
	addr := testsvc.RefusedAddr(t)
	_, err = backend.OpenToolBroker(ctx, lanewayconfig.Broker{Provider: lanewayconfig.BrokerProviderEmbedded, Listen: addr})
	require.ErrorContains(t, err, "no engine serves the embedded broker on "+addr)
}
