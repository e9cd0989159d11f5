// Package demo is `laneway demo`: the same customer traffic and migration
// run with lanes off and on, and the production latency of each.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/tools/lanesexp"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/internal/tools/scratch"
	"github.com/laneway/laneway/internal/tools/syncio"
	"github.com/laneway/laneway/internal/tools/term"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// demoParams are the flags of `laneway demo`.
type demoParams struct {
	broker      string
	database    string
	duration    time.Duration
	rate        float64
	backfill    int
	handlerCost time.Duration
	concurrency int
	jsonOut     bool
	report      string // --report: the HTML page to write (report.go)
	// maxExtra bounds how long production keeps running after duration
	// while the backfill has not drained yet.
	maxExtra time.Duration
}

// Command is `laneway demo`: the lanes off/on comparison of the Customers
// example, added to the shipped binary with cli.WithCommands.
func Command(env cli.Env) *cobra.Command {
	return newDemoCmd(&cmdEnv{env: env, stdout: env.Stdout(), stderr: env.Stderr()})
}

// cmdEnv is the command's share of the command line.
type cmdEnv struct {
	env            cli.Env
	stdout, stderr io.Writer
}

func newDemoCmd(g *cmdEnv) *cobra.Command {
	p := demoParams{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Production traffic plus a backfill, lanes off vs on, side by side",
		Long: `Runs the Customers example (always that domain, whatever --domain says) twice:
production traffic (RegisterCustomer at NORMAL priority, --rate per second)
while a backfill of --backfill RegisterCustomer commands at LOW priority floods
in, once with priority lanes off and once with them on. NotificationHandler
(a stand-in for a confirmation email costing --handler-cost) handles every
event with --concurrency handler slots; with lanes on, backfill may hold all
of them but one. The demo reports
the production latency (commit to email sent) and how long the backfill took
to drain, and fails (exit 1) if any command sent was not handled.

By default everything is embedded: a SQLite file in a temporary directory
(removed at the end) and an in-process broker, fresh for each run.

--broker redis://host:port/N uses that Redis database: the demo DELETES the
streams "customer", "product" and "customer:*", "product:*" there before each
run and at the end, so give it a database of its own (e.g. redis://127.0.0.1:6379/9).
--database postgres://... uses that PostgreSQL: each run works in a fresh
schema laneway_demo_<hex>, dropped afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if p.rate <= 0 {
				return errors.New("--rate must be positive")
			}
			if p.backfill <= 0 {
				return errors.New("--backfill must be positive")
			}
			if p.duration <= 0 {
				return errors.New("--duration must be positive")
			}
			if p.concurrency < 1 {
				return errors.New("--concurrency must be at least 1")
			}
			if p.handlerCost < 0 {
				return errors.New("--handler-cost must not be negative")
			}
			return runDemo(cmd.Context(), g, p)
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.broker, "broker", "", "Redis URL (redis://host:port/N; the demo clears its streams there); default: an embedded broker")
	f.StringVar(&p.database, "database", "", "PostgreSQL URL (a fresh schema per run); default: a temporary SQLite file")
	f.DurationVar(&p.duration, "duration", 15*time.Second, "least time production traffic runs in each run (it also runs until the backfill drained)")
	f.Float64Var(&p.rate, "rate", 200, "production commands per second")
	f.IntVar(&p.backfill, "backfill", 20000, "backfill commands (LOW priority) per run")
	f.DurationVar(&p.handlerCost, "handler-cost", time.Millisecond, "simulated cost of one confirmation email in NotificationHandler")
	f.IntVar(&p.concurrency, "concurrency", 4, "handlers in flight per subscription; with lanes on, backfill may hold all but one of them")
	f.BoolVar(&p.jsonOut, "json", false, "print one JSON object instead of the table")
	f.StringVar(&p.report, "report", "", "also write the results as one self-contained HTML page (charts and table) to this file")
	f.DurationVar(&p.maxExtra, "max-extra", 30*time.Second, "how long production may keep running after --duration while the backfill drains")
	_ = f.MarkHidden("max-extra")
	return cmd
}

type demoBackfill struct {
	Sent         int     `json:"sent"`
	Handled      int     `json:"handled"`
	DrainSeconds float64 `json:"drain_seconds"`
}

type demoRun struct {
	Lanes          string          `json:"lanes"`
	Primary        latency.Summary `json:"primary"`
	Backfill       demoBackfill    `json:"backfill"`
	Throughput     float64         `json:"throughput_per_s"`
	PrimarySent    int             `json:"primary_sent"`
	SendErrors     int             `json:"send_errors"`
	HandlerErrors  int             `json:"handler_errors"`
	WallSeconds    float64         `json:"wall_seconds"`
	HandledTotal   int             `json:"handled_total"`
	firstSendError error
	series         *demoSeries
}

type demoReport struct {
	Broker      string    `json:"broker"`
	Database    string    `json:"database"`
	Rate        float64   `json:"rate_per_s"`
	HandlerCost float64   `json:"handler_cost_ms"`
	Concurrency int       `json:"concurrency"`
	Runs        []demoRun `json:"runs"`
	P99Ratio    float64   `json:"p99_ratio_off_on"`
}

func runDemo(ctx context.Context, g *cmdEnv, p demoParams) error {
	// The engine's logger and the live display write to stderr from
	// different goroutines.
	stderr := &syncio.Writer{W: g.stderr}
	g = &cmdEnv{env: g.env, stdout: g.stdout, stderr: stderr}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep := demoReport{Broker: "embedded", Database: "sqlite", Rate: p.rate, HandlerCost: latency.MS(p.handlerCost), Concurrency: p.concurrency}
	if p.broker != "" {
		rep.Broker = "redis"
		if !strings.HasPrefix(p.broker, "redis://") && !strings.HasPrefix(p.broker, "rediss://") {
			return fmt.Errorf("--broker %q: use a redis:// or rediss:// URL", p.broker)
		}
	}
	if p.database != "" {
		rep.Database = "postgres"
		if !strings.HasPrefix(p.database, "postgres://") && !strings.HasPrefix(p.database, "postgresql://") {
			return fmt.Errorf("--database %q: use a postgres:// URL", p.database)
		}
	}
	if err := checkReportPath(p.report); err != nil {
		return err
	}
	runID := scratch.RandomHex(3)
	live := term.IsTerminal(stderr.W)
	off, on, err := lanesexp.OffOn(ctx, func(ctx context.Context, lanes bool) (demoRun, error) {
		return demoOneRun(ctx, g, p, log, runID+lanesexp.Label(lanes), lanes, live)
	})
	if err != nil {
		if ctx.Err() != nil {
			return cli.Exit(130, "demo interrupted")
		}
		return err
	}
	rep.Runs = []demoRun{off, on}
	if p.broker != "" {
		// Leave the user's Redis database as we found it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_ = clearDemoStreams(cctx, p.broker)
		cancel()
	}
	rep.P99Ratio = lanesexp.Ratio(off.Primary.P99, on.Primary.P99)
	// The demo's own checks: every command sent was handled, in both runs.
	// The latency ratio is a measurement, reported (and warned about below
	// 10x), not a pass/fail: it depends on the machine and its load.
	var lost []string
	for _, r := range rep.Runs {
		if r.Backfill.Handled < r.Backfill.Sent || r.Backfill.Sent < p.backfill {
			lost = append(lost, fmt.Sprintf("lanes %s: %d of %d backfill commands sent, %d handled",
				r.Lanes, r.Backfill.Sent, p.backfill, r.Backfill.Handled))
		}
		if r.Primary.Count < r.PrimarySent {
			lost = append(lost, fmt.Sprintf("lanes %s: %d production commands sent, %d handled",
				r.Lanes, r.PrimarySent, r.Primary.Count))
		}
	}
	if p.jsonOut {
		enc := json.NewEncoder(g.stdout)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printDemoTable(g.stdout, rep)
	}
	if p.report != "" {
		if err := writeDemoReport(p.report, rep); err != nil {
			return err
		}
		fmt.Fprintf(g.stderr, "report written to %s\n", p.report)
	}
	if len(lost) > 0 {
		return fmt.Errorf("events were lost: %s", strings.Join(lost, "; "))
	}
	if rep.P99Ratio < 10 {
		fmt.Fprintf(g.stderr, "warning: primary p99 lanes off / lanes on is %.1fx, below the 10x this demo usually shows; a busy machine or a small --backfill narrows it\n", rep.P99Ratio)
	}
	return nil
}

// demoRecorder collects what the engine's OnHandled reports.
type demoRecorder struct {
	mu            sync.Mutex
	primary       []time.Duration
	primarySeen   map[string]bool
	backfillSeen  map[string]bool
	lastBackfill  time.Time
	lastHandled   time.Time
	handled       int
	handlerErrors int
	series        *demoSeries
}

func (r *demoRecorder) onHandled(h laneway.Handled) {
	if h.Group != customers.NotificationName {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if h.Err != nil {
		r.handlerErrors++
		return
	}
	id := h.Meta.ID
	if h.Meta.Priority < laneway.Normal {
		if !r.backfillSeen[id] {
			r.backfillSeen[id] = true
			r.series.addBackfill(now)
			r.handled++
		}
		r.lastBackfill, r.lastHandled = now, now
		return
	}
	if r.primarySeen[id] {
		return // a redelivery: count the first handling only
	}
	r.primarySeen[id] = true
	r.handled++
	r.lastHandled = now
	// Latency from the command's commit (the event's time) to the email
	// sent, i.e. the end of the handler.
	if !h.Time.IsZero() {
		r.primary = append(r.primary, now.Sub(h.Time))
		r.series.addPrimary(now, now.Sub(h.Time))
	}
}

func (r *demoRecorder) snapshot() (primary []time.Duration, backfill int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.primary...), len(r.backfillSeen)
}

// demoOneRun is one run of the experiment: a fresh database and broker, the
// engine, the backfill written first, then production traffic until the
// backfill drained, every event handled, and the figures of the run.
func demoOneRun(ctx context.Context, g *cmdEnv, p demoParams, log *slog.Logger, run string, lanes bool, live bool) (res demoRun, err error) {
	label := lanesexp.Label(lanes)
	res.Lanes = label
	app, br, closeRun, err := openDemoApp(ctx, p, lanes)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := closeRun(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	rec := &demoRecorder{primarySeen: map[string]bool{}, backfillSeen: map[string]bool{}, series: newDemoSeries(time.Now())}
	eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, Logger: log, DisableHTTP: true, OnHandled: rec.onHandled})
	if err := eng.Start(ctx); err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = lanesexp.StopEngine(ctx, eng)
		}
	}()

	runCtx, cancelRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancelRun()
	t := &demoTraffic{run: run, start: time.Now()}
	t.startBackfill(runCtx, &wg, app, p.backfill)
	stopProd, prodDone := t.startProduction(runCtx, &wg, app, p.rate)
	dispDone := startDisplay(runCtx, &wg, func(final bool) { t.show(g.stderr, rec, label, p.backfill, live, final) }, live)

	// Production runs for --duration or until the backfill drained,
	// whichever is later, but no longer than maxExtra past --duration.
	// Its time counts from its first command (once the backfill is
	// written), so a slow backfill write does not eat into it.
	drained := func() bool { return t.drained(rec) }
	if _, err := lanesexp.WaitFor(ctx, time.Now().Add(2*time.Minute+p.duration+p.maxExtra+time.Duration(p.backfill)*5*time.Millisecond), func() bool {
		ran := t.productionTime()
		return ran >= p.duration+p.maxExtra || (ran >= p.duration && drained())
	}); err != nil {
		return res, err
	}
	close(stopProd)
	wantPrimary := <-prodDone
	// Then every event must be handled: generous, since a slow machine may
	// still be draining the backfill.
	if _, err := lanesexp.WaitFor(ctx, time.Now().Add(2*time.Minute+time.Duration(p.backfill)*5*time.Millisecond), func() bool {
		lat, _ := rec.snapshot()
		return drained() && len(lat) >= wantPrimary
	}); err != nil {
		return res, err
	}
	close(dispDone)
	t.show(g.stderr, rec, label, p.backfill, live, true)

	stopped = true
	if err := lanesexp.StopEngine(ctx, eng); err != nil {
		return res, fmt.Errorf("stop engine (lanes %s): %w", label, err)
	}
	res = t.result(rec, label, wantPrimary)
	if t.firstErr != nil {
		fmt.Fprintf(g.stderr, "lanes %s: %d commands failed to send, first: %v\n", label, t.sendErrors, t.firstErr)
	}
	return res, nil
}

// openDemoApp opens the run's store and broker and the Customers app on
// them, configured for the run; closeRun closes all three.
func openDemoApp(ctx context.Context, p demoParams, lanes bool) (app *laneway.App, br lanewaybroker.Broker, closeRun func() error, err error) {
	st, closeStore, err := openDemoStore(ctx, p.database)
	if err != nil {
		return nil, nil, nil, err
	}
	fail := func(err error) (*laneway.App, lanewaybroker.Broker, func() error, error) {
		if br != nil {
			_ = br.Close()
		}
		_ = closeStore()
		return nil, nil, nil, err
	}
	if br, err = openDemoBroker(ctx, p.broker); err != nil {
		return fail(err)
	}
	cfg := lanewayconfig.Default()
	cfg.Name = customers.DomainName
	cfg.Server.PriorityLanes.Enabled = lanes
	cfg.Server.StreamSubscription.BlockingTimeoutMS = 1000
	// The email is I/O-bound, so it runs concurrently, as one would in
	// production. With lanes on, backfill may take every slot but one
	// (capacity isolation): primary always finds a free slot, and the
	// backfill drains almost as fast as it does with lanes off.
	cfg.Server.StreamSubscription.Concurrency = p.concurrency
	cfg.Server.PriorityLanes.BackfillConcurrency = max(1, p.concurrency-1)
	cfg.Server.HTTP.Listen = ""
	dom, err := customers.New(customers.Options{EmailCost: p.handlerCost})
	if err != nil {
		return fail(err)
	}
	if app, err = laneway.Open(ctx, dom, cfg, laneway.Options{Store: st}); err != nil {
		return fail(err)
	}
	if err := customers.Migrate(ctx, app); err != nil {
		app.Close()
		return fail(err)
	}
	return app, br, func() error {
		app.Close()
		_ = br.Close()
		return closeStore()
	}, nil
}
