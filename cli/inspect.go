package cli

import (
	"context"
	"strings"

	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/cli/internal/ops"
	"github.com/laneway/laneway/internal/backend"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// inspection is what the read-only operator commands work on.
type inspection struct {
	cfg    *lanewayconfig.Config
	topo   inspect.Topology
	broker lanewaybroker.Broker // nil when brokerErr is set
	in     *inspect.Inspector
	// brokerErr is why an embedded broker could not be reached (only with
	// tolerateEmbedded).
	brokerErr error
}

func (i *inspection) close() {
	if i.broker != nil {
		_ = i.broker.Close()
	}
}

// openInspection loads the config and the domain and connects to the
// broker the engine uses. With tolerateEmbedded, an embedded broker that no
// engine serves is not an error: i.brokerErr says why instead (doctor still
// has configuration checks to run).
func (g *globals) openInspection(ctx context.Context, tolerateEmbedded bool) (*inspection, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	dom, err := g.domain()
	if err != nil {
		return nil, err
	}
	topo, err := inspect.NewTopology(dom, cfg)
	if err != nil {
		return nil, err
	}
	i := &inspection{cfg: cfg, topo: topo}
	br := cfg.Brokers["default"]
	b, err := backend.OpenToolBroker(ctx, br)
	if err != nil {
		embedded := br.Provider == lanewayconfig.BrokerProviderEmbedded || br.Provider == ""
		// doctor explains a user refused at connection (NOPERM) with the
		// ACL fix.
		if tolerateEmbedded && (embedded || strings.Contains(err.Error(), "NOPERM")) {
			i.brokerErr = err
			return i, nil
		}
		return nil, err
	}
	i.broker = b
	i.in = inspect.New(b, i.topo, inspect.Options{ActiveIdle: ops.ActiveIdle(cfg)})
	return i, nil
}
