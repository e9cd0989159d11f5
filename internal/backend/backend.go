// Package backend opens the store and broker a configuration names, so the
// library, the engine and every CLI command connect the same way.
package backend

import (
	"context"
	"fmt"
	"strings"

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
		tlsCfg, err := br.TLSConfig()
		if err != nil {
			return nil, fmt.Errorf("broker %q: %w (fix [brokers.%s] in domain.toml)", lanewayconfig.DefaultEntry, err, lanewayconfig.DefaultEntry)
		}
		b, err := redisbroker.Open(ctx, br.URL, redisbroker.Options{TLS: tlsCfg})
		if err != nil {
			// Open's error names the address (password redacted); the
			// user also needs to know where that address comes from.
			return nil, fmt.Errorf("broker %q: %w (%s)", lanewayconfig.DefaultEntry, err, connectHint(br, err))
		}
		return b, nil
	default:
		return nil, fmt.Errorf("unknown broker provider %q (use embedded or redis)", br.Provider)
	}
}

// connectHint tells where to look when Open failed: the TLS keys for a
// handshake failure, the url otherwise.
func connectHint(br lanewayconfig.Broker, err error) string {
	const where = "[brokers." + lanewayconfig.DefaultEntry + "]"
	msg := err.Error()
	switch {
	case strings.Contains(msg, "WRONGPASS") || strings.Contains(msg, "NOAUTH") || strings.Contains(msg, "NOPERM"):
		return "check the user and password in brokers." + lanewayconfig.DefaultEntry + ".url, and the user's ACL rules (see docs/operations.md; laneway doctor prints them)"
	case !br.TLSEnabled():
		return "start Redis there, or fix brokers." + lanewayconfig.DefaultEntry + ".url in domain.toml"
	case strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate") ||
		(br.TLSCertFile == "" && (strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset"))):
		return "the server may require a client certificate (mutual TLS): set tls_cert_file and tls_key_file under " + where + " in domain.toml"
	case strings.Contains(msg, "certificate") || strings.Contains(msg, "x509"):
		return "the server's certificate was not accepted: set tls_ca_file under " + where + " to the CA that signed it, and tls_server_name when the URL's host is not a name in the certificate"
	default:
		return "start Redis there, or fix brokers." + lanewayconfig.DefaultEntry + ".url and the tls_* keys in domain.toml"
	}
}
