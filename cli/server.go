package cli

import (
	"context"
	"errors"
	"fmt"

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
			eng := laneway.NewEngine(app, laneway.EngineOptions{Logger: log})
			if err := eng.Start(ctx); err != nil {
				return err
			}
			<-ctx.Done() // SIGINT or SIGTERM (cli.Main installs the handler)
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
}
