// Package backend opens the store and broker a configuration names, so the
// library, the engine and every CLI command connect the same way.
package backend

import (
	"context"
	"fmt"

	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

// OpenStore opens (but does not migrate) the database described by db.
func OpenStore(ctx context.Context, db lanewayconfig.Database) (lanewaystore.Store, error) {
	switch db.Provider {
	case lanewayconfig.DatabaseProviderSQLite, "":
		return sqlitestore.Open(ctx, db.URL)
	case lanewayconfig.DatabaseProviderPostgres:
		return pgstore.Open(ctx, db.URL)
	default:
		return nil, fmt.Errorf("unknown database provider %q (use sqlite or postgres)", db.Provider)
	}
}

// OpenBroker connects to the broker described by br; "embedded" starts an
// in-process server.
func OpenBroker(ctx context.Context, br lanewayconfig.Broker) (lanewaybroker.Broker, error) {
	switch br.Provider {
	case lanewayconfig.BrokerProviderEmbedded, "":
		return redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{Listen: br.Listen})
	case lanewayconfig.BrokerProviderRedis:
		return redisbroker.Open(ctx, br.URL, redisbroker.Options{})
	default:
		return nil, fmt.Errorf("unknown broker provider %q (use embedded or redis)", br.Provider)
	}
}

// ConnectBroker connects an operator tool (laneway dlq, lanes, doctor) to
// the broker an engine uses, never starting one: a fresh embedded server
// would be empty. The embedded broker lives inside `laneway server` and is
// reachable only through its listen address.
func ConnectBroker(ctx context.Context, br lanewayconfig.Broker) (lanewaybroker.Broker, error) {
	switch br.Provider {
	case lanewayconfig.BrokerProviderEmbedded, "":
		if br.Listen == "" {
			return nil, fmt.Errorf("the embedded broker lives inside `laneway server` and no other process can reach it: set listen = \"127.0.0.1:6380\" under [brokers.default] and restart the engine, or use provider = \"redis\"")
		}
		b, err := redisbroker.Open(ctx, "redis://"+br.Listen, redisbroker.Options{})
		if err != nil {
			return nil, fmt.Errorf("%w (is `laneway server` running? it serves the embedded broker on %s)", err, br.Listen)
		}
		return b, nil
	case lanewayconfig.BrokerProviderRedis:
		return redisbroker.Open(ctx, br.URL, redisbroker.Options{})
	default:
		return nil, fmt.Errorf("unknown broker provider %q (use embedded or redis)", br.Provider)
	}
}
