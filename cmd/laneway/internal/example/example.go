// Package example is `laneway example`: the seed guide's migration of
// customers' tiers, written as backfill commands.
package example

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/backend"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/internal/tools/term"
	"github.com/laneway/laneway/lanewayconfig"
)

// Command is `laneway example`: jobs of the Customers example domain,
// added to the shipped binary with cli.WithCommands.
func Command(env cli.Env) *cobra.Command {
	return newExampleCmd(&cmdEnv{env: env, stdout: env.Stdout(), stderr: env.Stderr()})
}

// cmdEnv is the command's share of the command line.
type cmdEnv struct {
	env            cli.Env
	stdout, stderr io.Writer
}

func newExampleCmd(g *cmdEnv) *cobra.Command {
	c := &cobra.Command{
		Use:   "example",
		Short: "Jobs of the Customers example domain (examples/customers)",
	}
	c.AddCommand(newMigrateTiersCmd(g))
	return c
}

// migrateParams are the flags of `laneway example migrate-tiers`.
type migrateParams struct {
	priority laneway.Priority
	count    int
	batch    int
	dryRun   bool
	jsonOut  bool
}

// migrateReport is the summary, and the --json output.
type migrateReport struct {
	DryRun          bool    `json:"dry_run"`
	Count           int     `json:"count"`
	Existing        int     `json:"existing"`
	Registered      int     `json:"registered"`
	Updated         int     `json:"updated"`
	Errors          int     `json:"errors"`
	Priority        int     `json:"priority"`
	PriorityName    string  `json:"priority_name"`
	Batch           int     `json:"batch"`
	RegisterSeconds float64 `json:"register_seconds"`
	ElapsedSeconds  float64 `json:"elapsed_seconds"`
	RatePerS        float64 `json:"rate_per_s"`
	FirstError      string  `json:"first_error,omitempty"`
}

func newMigrateTiersCmd(g *cmdEnv) *cobra.Command {
	p := migrateParams{priority: laneway.Low}
	cmd := &cobra.Command{
		Use:   "migrate-tiers",
		Short: "The guide's migration: UpdateCustomer for N customers inside WithPriority(ctx, LOW)",
		Long: `Runs the migration of the guide "Using Priority Lanes" against the database of
--domain: every one of the first --count customers (in id order) gets a new
loyalty_tier through UpdateCustomer, inside laneway.WithPriority(ctx, P), so
every event is stamped P and, with lanes enabled, the engine's relay publishes
it to the backfill lane "customer:backfill" instead of "customer".

When the database holds fewer than --count customers, the missing ones are
registered first, at NORMAL priority (they are ordinary production writes and
go to the primary lane), so the command also works on an empty database.

The command only writes to the database; a running "laneway server" relays
and handles the events. --batch B commits B commands per transaction (a
failed command is then retried alone, so one bad record does not sink its
batch). Progress goes to stderr, the summary to stdout.`,
		Example: `  laneway example migrate-tiers --domain examples/customers --count 5000
  laneway example migrate-tiers --priority bulk --count 100000 --batch 100
  laneway example migrate-tiers --count 5000 --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if p.count <= 0 {
				return fmt.Errorf("--count %d: must be at least 1", p.count)
			}
			if p.batch <= 0 {
				return fmt.Errorf("--batch %d: must be at least 1", p.batch)
			}
			return runMigrateTiers(cmd.Context(), g, p)
		},
	}
	f := cmd.Flags()
	f.Var(&p.priority, "priority", "priority of the updates: bulk, low, normal, high, critical or an integer")
	f.IntVar(&p.count, "count", 1000, "number of customers to migrate")
	f.IntVar(&p.batch, "batch", 1, "commands per transaction")
	f.BoolVar(&p.dryRun, "dry-run", false, "report what would be done and write nothing")
	f.BoolVar(&p.jsonOut, "json", false, "print the summary as one JSON object")
	return cmd
}

func runMigrateTiers(ctx context.Context, g *cmdEnv, p migrateParams) error {
	cfg, err := g.env.Config()
	if err != nil {
		return err
	}
	dom, err := g.env.Domain()
	if err != nil {
		return err
	}
	if dom.Name() != customers.DomainName {
		return fmt.Errorf("example migrate-tiers needs the %s example domain (examples/customers); this program's domain is %q", customers.DomainName, dom.Name())
	}
	rep := migrateReport{DryRun: p.dryRun, Count: p.count, Priority: int(p.priority), PriorityName: p.priority.String(), Batch: p.batch}
	if p.dryRun {
		return dryRunMigrate(ctx, g, cfg, p, rep)
	}

	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{})
	if err != nil {
		return err
	}
	defer app.Close()
	existing, err := customers.CustomerIDs(ctx, app.Store(), p.count)
	if err != nil {
		return err
	}
	rep.Existing = len(existing)
	ids, missing := plannedCustomers(existing, p.count)

	var failures []string
	fail := func(id string, err error) {
		rep.Errors++
		if rep.FirstError == "" {
			rep.FirstError = fmt.Sprintf("%s: %v", id, err)
		}
		if len(failures) < 5 {
			failures = append(failures, fmt.Sprintf("%s: %v", id, err))
		}
	}

	// Phase 1: the customers the migration needs, as production writes.
	if len(missing) > 0 {
		prog := term.NewProgress(g.stderr, "register", len(missing))
		start := time.Now()
		done := runBatches(ctx, app, missing, p.batch, func(id string, _ int) laneway.Command {
			return customers.RegisterCustomer{CustomerID: id, Name: "Customer " + id, Email: id + "@example.com"}
		}, fail, func(n int) { rep.Registered = n; prog.Update(n, rep.Errors, false) })
		rep.Registered = done
		prog.Update(done, rep.Errors, true)
		rep.RegisterSeconds = latency.Round3(time.Since(start).Seconds())
	}

	// Phase 2: the seed's loop, every call inside WithPriority.
	if ctx.Err() == nil {
		low := laneway.WithPriority(ctx, p.priority)
		prog := term.NewProgress(g.stderr, "migrate", len(ids))
		start := time.Now()
		rep.Updated = runBatches(low, app, ids, p.batch, func(id string, i int) laneway.Command {
			return customers.UpdateCustomer{CustomerID: id, LoyaltyTier: customers.TierFor(i)}
		}, fail, func(n int) { prog.Update(n, rep.Errors, false) })
		prog.Update(rep.Updated, rep.Errors, true)
		el := time.Since(start)
		rep.ElapsedSeconds = latency.Round3(el.Seconds())
		if el > 0 {
			rep.RatePerS = latency.Round3(float64(rep.Updated) / el.Seconds())
		}
	}
	for _, f := range failures {
		fmt.Fprintln(g.stderr, "error: "+f)
	}
	if err := printMigrateReport(g, p, rep); err != nil {
		return err
	}
	switch {
	case ctx.Err() != nil:
		return cli.Exit(130, fmt.Sprintf("migrate-tiers interrupted: %d of %d customers updated", rep.Updated, p.count))
	case rep.Errors > 0:
		return fmt.Errorf("migrate-tiers: %d commands failed (first: %s)", rep.Errors, firstLine(rep.FirstError))
	}
	return nil
}

// plannedCustomers returns the count customer ids to migrate (existing ones
// first, in id order) and those among them that must be registered first.
// New ids are c000001, c000002, ... skipping ids already taken.
func plannedCustomers(existing []string, count int) (ids, missing []string) {
	taken := make(map[string]bool, len(existing))
	for _, id := range existing {
		taken[id] = true
	}
	ids = append(ids, existing...)
	for i := 1; len(ids) < count; i++ {
		id := fmt.Sprintf("c%06d", i)
		if taken[id] {
			continue
		}
		ids = append(ids, id)
		missing = append(missing, id)
	}
	return ids, missing
}

// runBatches processes one command per id, batch at a time, under ctx
// (which carries the priority), and stops early when ctx is done. It
// returns how many commands committed; fail gets every failed one.
func runBatches(ctx context.Context, app *laneway.App, ids []string, batch int,
	build func(id string, i int) laneway.Command, fail func(id string, err error), progressed func(done int)) int {
	done := 0
	cmds := make([]laneway.Command, 0, batch)
	for lo := 0; lo < len(ids) && ctx.Err() == nil; lo += batch {
		hi := min(lo+batch, len(ids))
		cmds = cmds[:0]
		for i := lo; i < hi; i++ {
			cmds = append(cmds, build(ids[i], i))
		}
		var err error
		if len(cmds) == 1 {
			err = app.Process(ctx, cmds[0])
		} else {
			err = app.ProcessBatch(ctx, cmds)
		}
		var be *laneway.BatchError
		switch {
		case err == nil:
			done += len(cmds)
		case errors.As(err, &be):
			for i, e := range be.Errs {
				if e != nil {
					fail(ids[lo+i], e)
				} else {
					done++
				}
			}
		case ctx.Err() != nil:
			// Interrupted: the batch rolled back, nothing of it is counted.
		default:
			for i := lo; i < hi; i++ {
				fail(ids[i], err)
			}
		}
		progressed(done)
	}
	return done
}

func dryRunMigrate(ctx context.Context, g *cmdEnv, cfg *lanewayconfig.Config, p migrateParams, rep migrateReport) error {
	db := cfg.Databases["default"]
	existing := 0
	if !sqliteFileMissing(db) {
		// Open without migrating: a dry run creates no tables.
		st, err := backend.OpenStore(ctx, db)
		if err != nil {
			return err
		}
		defer st.Close()
		ids, err := customers.CustomerIDs(ctx, st, p.count)
		switch {
		case err == nil:
			existing = len(ids)
		case !isMissingTable(err):
			return err
		}
	}
	rep.Existing = existing
	rep.Registered = max(0, p.count-existing)
	rep.Updated = p.count
	if p.jsonOut {
		return json.NewEncoder(g.stdout).Encode(rep)
	}
	// The engine's relay routes the rows, under the engine's configuration;
	// this one (same --domain and environment) is the best guess at it.
	pl := cfg.Server.PriorityLanes
	lc, err := lanes.FromConfig(cfg, customers.DomainName)
	if err != nil {
		return err
	}
	primary := lc.Naming.Events("customer")
	env := cfg.EnvName()
	if env == "" {
		env = "no overlay"
	}
	var route string
	switch {
	case !pl.Enabled:
		route = fmt.Sprintf("lanes are off in this configuration (%s), so an engine with it relays them to %q", env, primary)
	case int(p.priority) < pl.Threshold:
		route = fmt.Sprintf("below the threshold %d, so an engine with this configuration (%s) relays them to %q", pl.Threshold, env, lc.Route(primary, p.priority))
	default:
		route = fmt.Sprintf("not below the threshold %d, so they stay on %q", pl.Threshold, primary)
	}
	fmt.Fprintf(g.stdout, "dry run: nothing written (database %s, %s)\n", db.Provider, lanewayconfig.RedactURL(db.URL))
	fmt.Fprintf(g.stdout, "  customers found:        %d\n", existing)
	fmt.Fprintf(g.stdout, "  would register:         %d at priority NORMAL (0): production writes, primary lane %q\n", rep.Registered, primary)
	fmt.Fprintf(g.stdout, "  would update tiers of:  %d at priority %s (%d): %s\n", p.count, p.priority, int(p.priority), route)
	fmt.Fprintf(g.stdout, "  transactions:           %d (batch %d)\n", (rep.Registered+p.batch-1)/p.batch+(p.count+p.batch-1)/p.batch, p.batch)
	return nil
}

// sqliteFileMissing reports whether db is a SQLite file that does not exist
// yet (opening it would create it).
func sqliteFileMissing(db lanewayconfig.Database) bool {
	if db.Provider != lanewayconfig.DatabaseProviderSQLite && db.Provider != "" {
		return false
	}
	path, _, _ := strings.Cut(strings.TrimPrefix(db.URL, "sqlite://"), "?")
	if path == "" || strings.HasPrefix(path, "file:") || strings.Contains(path, ":memory:") {
		return false
	}
	_, err := os.Stat(path)
	return errors.Is(err, os.ErrNotExist)
}

// isMissingTable recognises "no such table" (SQLite) and "does not exist"
// (PostgreSQL): a database Laneway has never set up holds no customers.
func isMissingTable(err error) bool {
	s := err.Error()
	return strings.Contains(s, "no such table") || strings.Contains(s, "does not exist")
}

func printMigrateReport(g *cmdEnv, p migrateParams, rep migrateReport) error {
	if p.jsonOut {
		return json.NewEncoder(g.stdout).Encode(rep)
	}
	w := g.stdout
	fmt.Fprintf(w, "migrate-tiers: %d customers, loyalty_tier set at priority %s (%d), batch %d\n",
		rep.Count, rep.PriorityName, rep.Priority, rep.Batch)
	if rep.Registered > 0 || rep.Existing < rep.Count {
		fmt.Fprintf(w, "  registered first: %d at priority NORMAL (0) in %s (%d already existed)\n",
			rep.Registered, term.FmtDuration(secs(rep.RegisterSeconds)), rep.Existing)
	}
	fmt.Fprintf(w, "  count %d  updated %d  errors %d  elapsed %s  rate %.0f/s\n",
		rep.Count, rep.Updated, rep.Errors, term.FmtDuration(secs(rep.ElapsedSeconds)), rep.RatePerS)
	return nil
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
