package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli/internal/dashboard"
	"github.com/laneway/laneway/internal/backend"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

// TokenEnv names the environment variable holding the dashboard's write
// token (an environment variable rather than a flag, so it does not show
// in the process list).
const TokenEnv = "LANEWAY_UI_TOKEN"

// dashboardListenDefault is loopback: the dashboard has no login, so it is
// only reachable from elsewhere when the operator says so.
const dashboardListenDefault = "127.0.0.1:8089"

// uiWrite reads the write token when writes are wanted.
func uiWrite(write bool, flag string) (string, error) {
	if !write {
		return "", nil
	}
	tok := os.Getenv(TokenEnv)
	if len(tok) < dashboard.TokenMinLength {
		return "", fmt.Errorf("%s needs %s set to a secret of at least %d characters (e.g. export %s=$(openssl rand -hex 16)); the page asks for it before each write",
			flag, TokenEnv, dashboard.TokenMinLength, TokenEnv)
	}
	return tok, nil
}

func newDashboardCmd(g *globals) *cobra.Command {
	var listen string
	var write bool
	c := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the web dashboard (lanes, dead letters, outbox, doctor) without running an engine",
		Long: "Serves the pages `laneway server` serves under /ui/, from this process: it reads the\n" +
			"broker and database of domain.toml as `lanes status`, `dlq` and `outbox` do, so it works\n" +
			"whether or not an engine runs. Read-only unless --write is given with " + TokenEnv + " set.\n" +
			"See docs/dashboard.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			token, err := uiWrite(write, "--write")
			if err != nil {
				return err
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			dom, err := g.domain()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			brokers := dashboard.NewConnector(func(ctx context.Context) (lanewaybroker.Broker, error) {
				return backend.OpenToolBroker(ctx, cfg.Brokers["default"])
			})
			defer brokers.Close()
			stores := dashboard.NewConnector(func(ctx context.Context) (lanewaystore.Store, error) {
				return backend.OpenStore(ctx, cfg.Databases["default"])
			})
			defer stores.Close()
			d, err := dashboard.New(dashboard.Params{
				Config: cfg, Domain: dom, DomainDir: g.domainDir, Broker: brokers.Get, Store: stores.Get,
				Logger: log, Write: write, Token: token,
			})
			if err != nil {
				return err
			}
			ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen %q: %w (choose another address)", listen, err)
			}
			srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second}
			d.Start(ctx)
			defer d.Stop()
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			logDashboard(log, ln.Addr().String(), write)
			select {
			case err := <-served:
				return fmt.Errorf("dashboard: %w", err)
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				return fmt.Errorf("dashboard shutdown: %w", err)
			}
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	c.Flags().StringVar(&listen, "listen", dashboardListenDefault, "address to serve the dashboard on (it has no login: keep it on loopback or behind a proxy)")
	c.Flags().BoolVar(&write, "write", false, "allow replay, purge and retry from the pages (needs "+TokenEnv+")")
	return c
}

func logDashboard(log *slog.Logger, addr string, write bool) {
	mode := "read-only"
	if write {
		mode = "writes enabled (token required)"
	}
	log.Info("laneway dashboard", "url", "http://"+addr+"/ui/", "mode", mode)
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			log.Warn("the dashboard listens beyond loopback and has no login: anyone who reaches it can read the lanes, DLQ payloads and outbox", "addr", addr)
		}
	}
}

// serverDashboard builds the dashboard `laneway server` serves under /ui/
// on the engine's HTTP listener, reading through the engine's own broker
// and database connections.
func serverDashboard(g *globals, app *laneway.App, eng func() lanewaybroker.Broker, log *slog.Logger, write bool, token string) (*dashboard.Dashboard, error) {
	return dashboard.New(dashboard.Params{
		Config: app.Config(), Domain: app.Domain(), DomainDir: g.domainDir, Logger: log, Write: write, Token: token,
		Broker: func(context.Context) (lanewaybroker.Broker, error) {
			if b := eng(); b != nil {
				return b, nil
			}
			return nil, errors.New("the engine is starting")
		},
		Store: func(context.Context) (lanewaystore.Store, error) { return app.Store(), nil },
	})
}
