package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/internal/tools/scratch"
	"github.com/laneway/laneway/internal/tools/syncio"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
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
	// maxExtra bounds how long production keeps running after duration
	// while the backfill has not drained yet.
	maxExtra time.Duration
}

func newDemoCmd(g *globals) *cobra.Command {
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

func runDemo(ctx context.Context, g *globals, p demoParams) error {
	// The engine's logger and the live display write to stderr from
	// different goroutines.
	stderr := &syncio.Writer{W: g.stderr}
	gg := *g
	gg.stderr = stderr
	g = &gg
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
	runID := scratch.RandomHex(3)
	live := isTerminal(stderr.W)
	for i, lanes := range []bool{false, true} {
		r, err := demoOneRun(ctx, g, p, log, fmt.Sprintf("%s%d", runID, i), lanes, live)
		if err != nil {
			if ctx.Err() != nil {
				return exitError{code: 130, msg: "demo interrupted"}
			}
			return err
		}
		rep.Runs = append(rep.Runs, r)
	}
	if p.broker != "" {
		// Leave the user's Redis database as we found it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_ = clearDemoStreams(cctx, p.broker)
		cancel()
	}
	if on := rep.Runs[1].Primary.P99; on > 0 {
		rep.P99Ratio = latency.Round3(rep.Runs[0].Primary.P99 / on)
	}
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
}

func (r *demoRecorder) onHandled(group string, m *consumer.Message, err error) {
	if group != customers.NotificationName {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.handlerErrors++
		return
	}
	id := m.Envelope.Metadata.Headers.ID
	if laneway.Priority(m.Envelope.Metadata.Domain.Priority) < laneway.Normal {
		if !r.backfillSeen[id] {
			r.backfillSeen[id] = true
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
	if t, perr := time.Parse(time.RFC3339Nano, m.Envelope.Metadata.Headers.Time); perr == nil {
		r.primary = append(r.primary, now.Sub(t))
	}
}

func (r *demoRecorder) snapshot() (primary []time.Duration, backfill int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.primary...), len(r.backfillSeen)
}

func demoOneRun(ctx context.Context, g *globals, p demoParams, log *slog.Logger, run string, lanes bool, live bool) (res demoRun, err error) {
	label := "off"
	if lanes {
		label = "on"
	}
	res.Lanes = label

	st, closeStore, err := openDemoStore(ctx, p.database)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := closeStore(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	br, err := openDemoBroker(ctx, p.broker)
	if err != nil {
		return res, err
	}
	defer br.Close()

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
		return res, err
	}
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
	if err != nil {
		return res, err
	}
	defer app.Close()
	if err := customers.Migrate(ctx, app); err != nil {
		return res, err
	}

	rec := &demoRecorder{primarySeen: map[string]bool{}, backfillSeen: map[string]bool{}}
	eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, Logger: log, DisableHTTP: true, OnHandled: rec.onHandled})
	if err := eng.Start(ctx); err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 35*time.Second)
			_ = eng.Stop(sctx)
			cancel()
		}
	}()

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancelRun()

	// The backfill floods in first, as a migration would: its events are in
	// the stream before production's arrive.
	start := time.Now()
	var sendMu sync.Mutex
	backfillSent, primarySent, sendErrors := 0, 0, 0
	var firstErr error
	noteErr := func(err error) {
		if runCtx.Err() != nil {
			return
		}
		sendMu.Lock()
		sendErrors++
		if firstErr == nil {
			firstErr = err
		}
		sendMu.Unlock()
	}
	backfillDone := make(chan struct{})
	// The backfill is written the way a migration should be: batches of
	// demoBackfillBatch commands per transaction (App.ProcessBatch). It is
	// all in the outbox within a few seconds, far faster than the handlers
	// drain it, so the backlog production meets does not depend on the
	// machine's speed.
	const backfillWorkers, demoBackfillBatch = 2, 100
	var bfwg sync.WaitGroup
	lowCtx := laneway.WithPriority(runCtx, laneway.Low)
	for w := 0; w < backfillWorkers; w++ {
		bfwg.Add(1)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			defer bfwg.Done()
			cmds := make([]laneway.Command, 0, demoBackfillBatch)
			for lo := w * demoBackfillBatch; lo < p.backfill && lowCtx.Err() == nil; lo += backfillWorkers * demoBackfillBatch {
				cmds = cmds[:0]
				for n := lo; n < min(lo+demoBackfillBatch, p.backfill); n++ {
					id := fmt.Sprintf("bf-%s-%d", run, n)
					cmds = append(cmds, customers.RegisterCustomer{CustomerID: id, Name: "Backfill " + id, Email: id + "@example.com"})
				}
				sent := len(cmds)
				if err := app.ProcessBatch(lowCtx, cmds); err != nil {
					var be *laneway.BatchError
					if errors.As(err, &be) {
						sent -= be.Failed()
					} else {
						sent = 0
					}
					noteErr(fmt.Errorf("backfill batch at %d: %w", lo, err))
				}
				sendMu.Lock()
				backfillSent += sent
				sendMu.Unlock()
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		bfwg.Wait()
		close(backfillDone)
	}()

	// Production: --rate commands per second from one goroutine, starting
	// once the backfill is written (the migration ran; its events are all
	// ahead of production's). A slow Process makes it catch up on the next
	// tick instead of dropping the commands it owed.
	stopProd := make(chan struct{})
	prodDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(prodDone)
		select {
		case <-backfillDone:
		case <-stopProd:
			return
		case <-runCtx.Done():
			return
		}
		interval := time.Duration(float64(time.Second) / p.rate)
		tick := time.NewTicker(min(interval, 10*time.Millisecond))
		defer tick.Stop()
		begin := time.Now()
		n := 0
		for {
			select {
			case <-stopProd:
				return
			case <-runCtx.Done():
				return
			case now := <-tick.C:
				due := int(now.Sub(begin).Seconds()*p.rate) + 1
				for ; n < due; n++ {
					select {
					case <-stopProd:
						return
					default:
					}
					id := fmt.Sprintf("p-%s-%d", run, n)
					err := app.Process(runCtx, customers.RegisterCustomer{CustomerID: id, Name: "Customer " + id, Email: id + "@example.com"})
					if err != nil {
						noteErr(fmt.Errorf("production %s: %w", id, err))
						continue
					}
					sendMu.Lock()
					primarySent++
					sendMu.Unlock()
				}
			}
		}
	}()

	// Live display.
	every := 2 * time.Second
	if live {
		every = 250 * time.Millisecond
	}
	show := func(final bool) {
		lat, handled := rec.snapshot()
		sendMu.Lock()
		sent := backfillSent
		sendMu.Unlock()
		sum := latency.Summarize(lat)
		el := time.Since(start).Seconds()
		line := fmt.Sprintf("lanes %-3s backfill %s %d/%d handled (%d sent)  primary n=%d p50 %s p99 %s  %.0fs",
			label, bar(handled, p.backfill), handled, p.backfill, sent, sum.Count, fmtMS(sum.P50), fmtMS(sum.P99), el)
		if live {
			fmt.Fprint(g.stderr, "\r\033[K"+line)
			if final {
				fmt.Fprintln(g.stderr)
			}
			return
		}
		fmt.Fprintln(g.stderr, line)
	}
	dispDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-dispDone:
				return
			case <-runCtx.Done():
				return
			case <-t.C:
				show(false)
			}
		}
	}()

	drained := func() bool {
		select {
		case <-backfillDone:
		default:
			return false
		}
		_, handled := rec.snapshot()
		sendMu.Lock()
		defer sendMu.Unlock()
		return handled >= backfillSent
	}
	// Production runs for --duration or until the backfill drained,
	// whichever is later, but no longer than maxExtra past --duration.
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	wait := func(cond func() bool, deadline time.Time) error {
		for !cond() {
			if time.Now().After(deadline) {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-poll.C:
			}
		}
		return nil
	}
	if err := wait(func() bool { return time.Since(start) >= p.duration && drained() }, start.Add(p.duration+p.maxExtra)); err != nil {
		return res, err
	}
	close(stopProd)
	<-prodDone
	// Then every event must be handled: generous, since a slow machine may
	// still be draining the backfill.
	sendMu.Lock()
	wantPrimary := primarySent
	sendMu.Unlock()
	allDone := func() bool {
		lat, _ := rec.snapshot()
		return drained() && len(lat) >= wantPrimary
	}
	if err := wait(allDone, time.Now().Add(2*time.Minute+time.Duration(p.backfill)*5*time.Millisecond)); err != nil {
		return res, err
	}
	close(dispDone)
	show(true)

	stopped = true
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 35*time.Second)
	defer cancel()
	if err := eng.Stop(sctx); err != nil {
		return res, fmt.Errorf("stop engine (lanes %s): %w", label, err)
	}

	lat, handled := rec.snapshot()
	rec.mu.Lock()
	lastBF, lastAny, total, herr := rec.lastBackfill, rec.lastHandled, rec.handled, rec.handlerErrors
	rec.mu.Unlock()
	sendMu.Lock()
	defer sendMu.Unlock()
	res.Primary = latency.Summarize(lat)
	res.PrimarySent = primarySent
	res.SendErrors = sendErrors
	res.firstSendError = firstErr
	res.HandlerErrors = herr
	res.HandledTotal = total
	res.Backfill = demoBackfill{Sent: backfillSent, Handled: handled}
	if !lastBF.IsZero() {
		res.Backfill.DrainSeconds = latency.Round3(lastBF.Sub(start).Seconds())
	}
	if !lastAny.IsZero() {
		if el := lastAny.Sub(start).Seconds(); el > 0 {
			res.Throughput = latency.Round3(float64(total) / el)
		}
	}
	res.WallSeconds = latency.Round3(time.Since(start).Seconds())
	if firstErr != nil {
		fmt.Fprintf(g.stderr, "lanes %s: %d commands failed to send, first: %v\n", label, sendErrors, firstErr)
	}
	return res, nil
}

func openDemoStore(ctx context.Context, dbURL string) (lanewaystore.Store, func() error, error) {
	db, err := scratch.Open(ctx, dbURL, "laneway_demo")
	if err != nil {
		return nil, nil, err
	}
	return db.Store, db.Close, nil
}

func openDemoBroker(ctx context.Context, brokerURL string) (lanewaybroker.Broker, error) {
	if brokerURL == "" {
		return redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	}
	// Each run starts from empty streams, so the lanes-on run does not see
	// the lanes-off run's entries (the domain's categories are fixed).
	if err := clearDemoStreams(ctx, brokerURL); err != nil {
		return nil, err
	}
	return redisbroker.Open(ctx, brokerURL, redisbroker.Options{})
}

// clearDemoStreams deletes the Customers domain's streams (and their
// consumer groups) from the Redis database of brokerURL.
func clearDemoStreams(ctx context.Context, brokerURL string) error {
	if err := scratch.ClearStreams(ctx, brokerURL, []string{"customer", "product"}, "customer:*", "product:*"); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

func printDemoTable(w io.Writer, rep demoReport) {
	off, on := rep.Runs[0], rep.Runs[1]
	fmt.Fprintf(w, "\nlaneway demo: broker %s, database %s, production %.0f/s, email cost %gms, %d handler slots\n\n",
		rep.Broker, rep.Database, rep.Rate, rep.HandlerCost, rep.Concurrency)
	rows := []struct {
		name    string
		off, on string
	}{
		{"primary latency p50 (ms)", f1(off.Primary.P50), f1(on.Primary.P50)},
		{"primary latency p90 (ms)", f1(off.Primary.P90), f1(on.Primary.P90)},
		{"primary latency p99 (ms)", f1(off.Primary.P99), f1(on.Primary.P99)},
		{"primary latency max (ms)", f1(off.Primary.Max), f1(on.Primary.Max)},
		{"primary events handled", fmt.Sprint(off.Primary.Count), fmt.Sprint(on.Primary.Count)},
		{"backfill sent", fmt.Sprint(off.Backfill.Sent), fmt.Sprint(on.Backfill.Sent)},
		{"backfill handled", fmt.Sprint(off.Backfill.Handled), fmt.Sprint(on.Backfill.Handled)},
		{"backfill drain (s)", f1(off.Backfill.DrainSeconds), f1(on.Backfill.DrainSeconds)},
		{"throughput (events/s)", f1(off.Throughput), f1(on.Throughput)},
	}
	fmt.Fprintf(w, "%-26s %12s %12s\n", "", "lanes off", "lanes on")
	for _, r := range rows {
		fmt.Fprintf(w, "%-26s %12s %12s\n", r.name, r.off, r.on)
	}
	if rep.P99Ratio > 0 {
		fmt.Fprintf(w, "\nprimary p99, lanes off / lanes on: %.1fx\n", rep.P99Ratio)
	}
	for _, r := range rep.Runs {
		if r.SendErrors > 0 {
			fmt.Fprintf(w, "lanes %s: %d commands failed to send (first: %v)\n", r.Lanes, r.SendErrors, r.firstSendError)
		}
	}
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }

func fmtMS(v float64) string {
	if v == 0 {
		return "-"
	}
	if v >= 1000 {
		return fmt.Sprintf("%.2fs", v/1000)
	}
	return fmt.Sprintf("%.1fms", v)
}

// isTerminal reports whether w is a character device (a terminal), where the
// live display redraws one line instead of printing a line every 2 s.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
