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
		b, err := redisbroker.Open(ctx, br.URL, redisbroker.Options{})
		if err != nil {
			// Open's error names the address (password redacted); the
			// user also needs to know where that address comes from.
			return nil, fmt.Errorf("%w (start Redis there, or fix brokers.default.url in domain.toml)", err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("unknown broker provider %q (use embedded or redis)", br.Provider)
	}
}
