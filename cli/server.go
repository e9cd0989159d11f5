package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/lanewaybroker"
)

func newServerCmd(g *globals) *cobra.Command {
	var ui, uiWriteFlag bool
	c := &cobra.Command{
		Use:   "server",
		Short: "Run the engine: outbox relay, lane subscriptions, /metrics, /healthz, /readyz and the /ui/ dashboard",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			token, err := uiWrite(uiWriteFlag, "--ui-write")
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			tp, err := tracerFromEnv(ctx, os.Getenv)
			if err != nil {
				return err
			}
			opts := laneway.EngineOptions{Logger: log}
			if tp != nil {
				opts.TracerProvider = tp
				log.Info("tracing on: exporting spans over OTLP (OTEL_* environment)")
				defer func() {
					// Flush what the batcher holds; bounded, so a collector
					// that is gone cannot hold up the exit.
					fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
					defer cancel()
					if err := tp.Shutdown(fctx); err != nil {
						log.Warn("tracing: flushing spans at exit failed", "error", err)
					}
				}()
			}
			app, err := g.openApp(ctx)
			if err != nil {
				return err
			}
			defer app.Close()
			if err := waitForBroker(ctx, app.Config(), log); err != nil {
				if errors.Is(err, errStopped) {
					log.Info("stopped before redis answered")
					return nil
				}
				return err
			}
			var eng *laneway.Engine
			dash, err := serverDashboard(g, app, func() lanewaybroker.Broker { return eng.Broker() }, log, uiWriteFlag, token)
			if err != nil {
				return err
			}
			if ui {
				opts.HTTPHandlers = map[string]http.Handler{"/ui/": dash.Handler()}
			}
			eng = laneway.NewEngine(app, opts)
			if err := eng.Start(ctx); err != nil {
				return err
			}
			if ui && eng.HTTPAddr() != "" {
				dash.Start(ctx)
				logDashboard(log, eng.HTTPAddr(), uiWriteFlag)
			}
			<-ctx.Done() // SIGINT or SIGTERM (cli.Main installs the handler)
			dash.Stop()
			log.Info("shutting down: finishing in-flight handlers")
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), app.Config().Server.StreamSubscription.ShutdownTimeout()+5e9)
			defer cancel()
			if err := eng.Stop(stopCtx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			log.Info("engine stopped")
			return nil
		},
	}
	c.Flags().BoolVar(&ui, "ui", true, "serve the dashboard under /ui/ on the HTTP listener (server.http.listen)")
	c.Flags().BoolVar(&uiWriteFlag, "ui-write", false, "allow replay, purge and retry from the dashboard (needs "+TokenEnv+")")
	return c
}
