package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/cli/internal/ops"
)

func newDoctorCmd(g *globals) *cobra.Command {
	var asJSON bool
	var sample time.Duration
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Run the priority-lanes troubleshooting checks: PASS/WARN/FAIL with the fix; exit 1 on FAIL",
		Long: "Checks: lanes enabled for this environment; a running engine with the file's lanes\n" +
			"configuration; the backfill consumer groups; backfill draining (two snapshots --sample\n" +
			"apart); DLQ entries by failure reason; upcasters for dead-lettered versions; backfill\n" +
			"leftovers while lanes are off; the embedded broker in production. Read-only.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sample <= 0 {
				return fmt.Errorf("--sample %s: use a positive duration such as 2s", sample)
			}
			ctx := cmd.Context()
			i, err := g.openInspection(ctx, true)
			if err != nil {
				return err
			}
			defer i.close()
			rep, err := ops.RunDoctor(ctx, i.in, i.topo.Domain, inspect.DoctorParams{Config: i.cfg, DomainDir: g.domainDir, Sample: sample, BrokerErr: i.brokerErr, Topology: i.topo})
			if err != nil {
				return err
			}
			checks := rep.Checks
			if asJSON {
				if err := g.writeJSON(rep); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
				for _, c := range checks {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.Title, c.Detail)
					if c.Fix != "" {
						fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
					}
				}
				_ = tw.Flush()
				fmt.Fprintf(g.stdout, "\n%d checks: %d pass, %d warn, %d fail\n", len(checks), rep.Pass, rep.Warn, rep.Fail)
			}
			if rep.Fail > 0 {
				return exitError{code: 1, msg: fmt.Sprintf("doctor: %d check(s) failed", rep.Fail)}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().DurationVar(&sample, "sample", 2*time.Second, "time between the two snapshots of the backfill-draining check")
	return c
}
