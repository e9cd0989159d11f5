package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newDemoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Production traffic plus a backfill, lanes off vs on, side by side",
		RunE:  func(cmd *cobra.Command, _ []string) error { return errors.New("demo: not built yet") },
	}
}
