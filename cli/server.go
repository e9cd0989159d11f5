package cli

import (
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/laneway/laneway"
)

func newServerCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "server",
		Short: "Run the engine: outbox relay, lane subscriptions, /metrics, /healthz, /readyz",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
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
			// Run blocks until SIGINT or SIGTERM (cli.Main installs the
			// handler), then stops gracefully.
			return laneway.NewEngine(app, opts).Run(ctx)
		},
	}
}
