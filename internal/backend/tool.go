package backend

import (
	"context"
	"fmt"

	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// OpenToolBroker connects an operator tool (lanes status, doctor, dlq) to
// the broker a running engine uses. For Redis it is OpenBroker. The embedded
// broker lives inside the engine's process, so starting a fresh one here
// would show an empty, unrelated broker: instead the tool connects to the
// address the engine serves it on (brokers.default.listen), and fails with
// the fix when there is none or nothing answers.
func OpenToolBroker(ctx context.Context, br lanewayconfig.Broker) (lanewaybroker.Broker, error) {
	if br.Provider != lanewayconfig.BrokerProviderEmbedded && br.Provider != "" {
		return OpenBroker(ctx, br)
	}
	if br.Listen == "" {
		return nil, fmt.Errorf("the embedded broker lives inside the engine process and no address reaches it: set listen = \"127.0.0.1:6380\" under [brokers.default] and restart the engine, or use provider = \"redis\"")
	}
	b, err := redisbroker.Open(ctx, "redis://"+br.Listen, redisbroker.Options{})
	if err != nil {
		return nil, fmt.Errorf("no engine serves the embedded broker on %s (brokers.default.listen; its streams live in the engine process and are gone when it stops): start `laneway server`: %w", br.Listen, err)
	}
	return b, nil
}
