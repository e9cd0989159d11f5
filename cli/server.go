package cli

import (
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
			// Run blocks until SIGINT or SIGTERM (cli.Main installs the
			// handler), then stops gracefully.
			return laneway.NewEngine(app, laneway.EngineOptions{Logger: log}).Run(ctx)
		},
	}
}
