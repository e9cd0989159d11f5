package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/laneway/laneway/lanewayconfig"
)

func newConfigCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Inspect the resolved configuration"}
	var asJSON bool
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the resolved configuration (overlay and ${VAR} applied, secrets redacted)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			red := cfg.Redacted()
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(red)
			}
			b, err := red.TOML()
			if err != nil {
				return err
			}
			env := cfg.EnvName()
			if env == "" {
				env = "(none)"
			}
			fmt.Fprintf(g.stdout, "# source: %s\n# environment overlay: %s\n# lanes fingerprint: %s\n", cfg.Source(), env, cfg.LanesFingerprint())
			_, err = g.stdout.Write(b)
			return err
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.AddCommand(show)
	return c
}

func newDBCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "db", Short: "Database schema"}
	c.AddCommand(&cobra.Command{
		Use:   "setup",
		Short: "Create or upgrade Laneway's tables (outbox, aggregates, markers); idempotent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			app, err := g.openApp(cmd.Context()) // Open migrates
			if err != nil {
				return err
			}
			defer app.Close()
			db := app.Config().Databases["default"]
			fmt.Fprintf(g.stdout, "database %s ready (%s)\n", db.Provider, lanewayconfig.RedactURL(db.URL))
			return nil
		},
	})
	return c
}
