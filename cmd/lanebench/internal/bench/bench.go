// Package bench is `lanebench`: the programs that measure Laneway against
// its promises (production events never wait behind a backfill) and every
// pipeline stage against the raw ceiling of the same machine, measured in
// the same run. docs/BENCHMARKS.md describes the method of each scenario.
package bench

import (
	"context"
	"errors"
	"fmt"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/tools/lanesexp"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/tools/scratch"
	"github.com/laneway/laneway/internal/tools/syncio"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// Scenarios in the order they run: idle first, because isolation compares
// its production p99 with the idle one.
var Scenarios = []string{"idle", "isolation", "throughput", "scale", "memory"}

// Params are lanebench's flags.
type Params struct {
	Broker string // Redis URL naming a database, or a redis+cluster:// URL; "" = embedded
	// Partitions is the partition count of the bench category in the
	// scale scenario (0 or 1: not partitioned).
	Partitions int
	Database   string // PostgreSQL URL; "" = SQLite in a temporary directory
	// BackfillNice is the engine's backfill_nice in the headline
	// scenarios (0: the default, off).
	BackfillNice int
	// Scenarios to run, a subset of Scenarios (any order; they run in the
	// canonical order).
	Scenarios []string
	// Backfill is the pre-loaded backlog of the isolation runs.
	Backfill int
	// Rate is production events per second during isolation.
	Rate float64
	// Duration is how long production traffic runs (idle and isolation).
	Duration    time.Duration
	HandlerCost time.Duration
	// IOCost is the sleeping handler of the I/O-bound isolation runs, which
	// compare Concurrency/BackfillConcurrency with 1/1.
	IOCost              time.Duration
	Concurrency         int
	BackfillConcurrency int
	// Events is the number of events of each throughput stage and of each
	// scale configuration.
	Events int
	// Callers is the number of goroutines calling Process (and running the
	// raw insert ceiling).
	Callers int
	// MemoryBacklogs are the backlog sizes of the memory scenario.
	MemoryBacklogs []int
	JSON           bool
	// TargetMS is the governor's target in the contention scenario, and
	// ContentionDuration how long production runs in each of its
	// configurations.
	TargetMS           int
	ContentionDuration time.Duration
	// ContentionProcs > 1 repeats the contention runs (production only,
	// unlimited, governor) with that many engine processes; 0 or 1 skips.
	ContentionProcs int
	// ThrottleRate is the backfill_rate_per_second of the throttle
	// scenario, ThrottleProcs its engine processes.
	ThrottleRate  float64
	ThrottleProcs int
	// Samples is the production entries of the flood and of the e2e
	// backfill phase; IdleSamples those of quiet and of the e2e idle phase.
	Samples, IdleSamples int
	// Repeat runs the chosen scenarios this many rounds, one round after
	// the other, and ends with each target's median and how many rounds
	// met it.
	Repeat int
}

// DefaultParams are the full-size defaults; ShortParams the `make bench` ones.
func DefaultParams() Params {
	return Params{
		Scenarios: append([]string(nil), Scenarios...),
		Backfill:  100000, Rate: 200, Duration: 10 * time.Second,
		HandlerCost: 200 * time.Microsecond, IOCost: time.Millisecond,
		Concurrency: 10, BackfillConcurrency: 8,
		Events: 200000, Callers: 4, MemoryBacklogs: []int{100000, 1000000},
		ContentionDuration: 20 * time.Second, ContentionProcs: 2,
		ThrottleRate: 500, ThrottleProcs: 2,
		Samples: 1000, IdleSamples: 500, Repeat: 1,
	}
}

// ShortParams shrink every size so the whole suite runs in about a minute
// and a half on two cores.
func ShortParams() Params {
	p := DefaultParams()
	p.Backfill, p.Duration, p.Events = 5000, 3*time.Second, 20000
	p.MemoryBacklogs = []int{10000, 50000}
	p.Samples, p.IdleSamples = 200, 100
	return p
}

// Validate checks the parameters; errors are one line naming the flag.
func (p *Params) Validate() error {
	switch {
	case p.Backfill <= 0:
		return errors.New("--backfill must be positive")
	case p.Rate <= 0:
		return errors.New("--rate must be positive")
	case p.Duration <= 0:
		return errors.New("--duration must be positive")
	case p.HandlerCost < 0:
		return errors.New("--handler-cost must not be negative")
	case p.IOCost < 0:
		return errors.New("--io-handler-cost must not be negative")
	case p.Concurrency < 2:
		return errors.New("--concurrency must be at least 2 (the I/O-bound run compares it with 1)")
	case p.BackfillConcurrency < 1 || p.BackfillConcurrency >= p.Concurrency:
		return fmt.Errorf("--backfill-concurrency must be between 1 and --concurrency-1 (%d) so production keeps a slot", p.Concurrency-1)
	case p.Events <= 0:
		return errors.New("--events must be positive")
	case p.Callers <= 0:
		return errors.New("--callers must be positive")
	case p.TargetMS < 0:
		return errors.New("--target-ms must not be negative (0: chosen from the production-only p99)")
	case p.ContentionProcs < 0:
		return errors.New("--contention-procs must not be negative")
	case p.ThrottleRate <= 0:
		return errors.New("--throttle-rate must be positive")
	case p.ThrottleProcs < 1:
		return errors.New("--throttle-procs must be at least 1")
	case p.ContentionDuration <= 0:
		return errors.New("--contention-duration must be positive")
	case p.Samples <= 0:
		return errors.New("--samples must be positive")
	case p.IdleSamples <= 0:
		return errors.New("--idle-samples must be positive")
	case p.Repeat < 1:
		return errors.New("--repeat must be at least 1")
	case len(p.MemoryBacklogs) == 0:
		return errors.New("--memory-backlogs needs at least one size")
	}
	for _, n := range p.MemoryBacklogs {
		if n <= 0 {
			return fmt.Errorf("--memory-backlogs: %d is not a positive size", n)
		}
	}
	p.Scenarios = expandScenarios(p.Scenarios)
	for _, s := range p.Scenarios {
		if !contains(allScenarios(), s) {
			return fmt.Errorf("--scenario: unknown scenario %q (choose from %s, or %s for %s)", s, strings.Join(allScenarios(), ", "),
				headlineGroup, strings.Join(HeadlineScenarios, "+"))
		}
	}
	if len(p.Scenarios) == 0 {
		return errors.New("--scenario: name at least one scenario")
	}
	if p.Broker != "" {
		if err := checkBrokerURL(p.Broker); err != nil {
			return err
		}
	}
	if redisbroker.IsClusterURL(p.Broker) {
		for _, sc := range p.Scenarios {
			if sc != "scale" {
				return fmt.Errorf("--broker %q is a Redis Cluster: only the scale scenario runs on one (--scenario scale)", p.Broker)
			}
		}
	}
	if p.Partitions < 0 {
		return fmt.Errorf("--partitions %d: want 0 or more", p.Partitions)
	}
	if p.Database != "" && !strings.HasPrefix(p.Database, "postgres://") && !strings.HasPrefix(p.Database, "postgresql://") {
		return fmt.Errorf("--database %q: use a postgres:// URL (the default is SQLite in a temporary directory)", p.Database)
	}
	return nil
}

// checkBrokerURL insists on an explicit database number: lanebench deletes
// its streams there, so the user must have chosen the database on purpose.
// A Redis Cluster has database 0 only: lanebench deletes its streams on
// every master.
func checkBrokerURL(raw string) error {
	if redisbroker.IsClusterURL(raw) {
		if _, err := redisbroker.ParseClusterURL(raw); err != nil {
			return fmt.Errorf("--broker %q: %w", raw, err)
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return fmt.Errorf("--broker %q: use a redis:// or rediss:// URL such as redis://127.0.0.1:6379/9", raw)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if _, err := strconv.Atoi(db); err != nil {
		return fmt.Errorf("--broker %q: name the Redis database lanebench may clear, e.g. redis://%s/9 (it deletes the streams lanebench and lanebench:* there)", raw, u.Host)
	}
	return nil
}

// expandScenarios replaces the group name "headline" by its scenarios.
func expandScenarios(list []string) []string {
	var out []string
	for _, s := range list {
		if s == headlineGroup {
			out = append(out, HeadlineScenarios...)
		} else {
			out = append(out, s)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Runner runs the scenarios and writes results as they complete.
type Runner struct {
	p      Params
	out    io.Writer
	status io.Writer // progress lines
	log    *slog.Logger
	// worker is the command line that starts a worker process (the
	// lanebench binary itself, "worker" subcommand).
	worker  []string
	results []Result
}

// NewRunner prepares a run; worker is the argv prefix of a worker process.
func NewRunner(p Params, stdout, stderr io.Writer, worker []string) *Runner {
	lw := &syncio.Writer{W: stderr}
	return &Runner{
		p: p, out: stdout, status: lw, worker: worker,
		log: slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// Run runs every selected scenario. Results are printed as JSON lines as
// they complete, or as tables at the end.
func (r *Runner) Run(ctx context.Context) error {
	steps := map[string]func(context.Context) error{
		"idle": r.idle, "isolation": r.isolation, "throughput": r.throughput,
		"scale": r.scale, "memory": r.memory, "contention": r.contention, "throttle": r.throttle,
		"busycores": r.busyCoresScenario,
		"consume":   r.consumeScenario, "flood": r.floodScenario, "quiet": r.quietScenario, "e2e": r.e2eScenario,
		"quietpair": r.quietPairScenario,
	}
	scenarios := expandScenarios(r.p.Scenarios)
	var err error
rounds:
	for round := 1; round <= r.p.Repeat; round++ {
		if r.p.Repeat > 1 {
			r.progress("round %d of %d", round, r.p.Repeat)
		}
		for _, s := range allScenarios() {
			if !contains(scenarios, s) {
				continue
			}
			r.progress("scenario %s", s)
			if err = steps[s](ctx); err != nil {
				err = fmt.Errorf("%s: %w", s, err)
				break rounds
			}
		}
	}
	if r.p.Broker != "" {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if cerr := clearStreams(cctx, r.p.Broker); cerr != nil && err == nil {
			err = cerr
		}
		cancel()
	}
	if !r.p.JSON {
		printTables(r.out, r.p, r.results)
	}
	if r.p.Repeat > 1 {
		ts := summarizeTargets(r.results)
		if r.p.JSON {
			if jerr := writeJSONLine(r.out, repeatSummary{Rounds: r.p.Repeat, Targets: ts}); jerr != nil && err == nil {
				err = jerr
			}
		} else {
			printRepeatSummary(r.out, r.p.Repeat, ts)
		}
	}
	return err
}

// Results returns what has been measured so far.
func (r *Runner) Results() []Result { return r.results }

func (r *Runner) emit(res Result) error {
	res.Broker, res.Database = r.brokerName(), r.databaseName()
	r.results = append(r.results, res)
	if r.p.JSON {
		return writeJSONLine(r.out, res)
	}
	return nil
}

func (r *Runner) progress(format string, args ...any) {
	fmt.Fprintf(r.status, "lanebench: "+format+"\n", args...)
}

func (r *Runner) brokerName() string {
	if r.p.Broker == "" {
		return "embedded"
	}
	if redisbroker.IsClusterURL(r.p.Broker) {
		return "redis-cluster"
	}
	return "redis"
}

func (r *Runner) databaseName() string {
	if r.p.Database == "" {
		return "sqlite"
	}
	return "postgres"
}

// env is one configuration's database and broker, fresh for each.
type env struct {
	db *scratch.DB
	br *redisbroker.Broker
	// brokerURL is what worker processes connect to (the embedded
	// broker's own address when embedded).
	brokerURL string
}

func (r *Runner) openEnv(ctx context.Context) (*env, error) {
	db, err := scratch.Open(ctx, r.p.Database, "lanebench")
	if err != nil {
		return nil, err
	}
	e := &env{db: db}
	if r.p.Broker == "" {
		e.br, err = redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
		if err == nil {
			e.brokerURL = "redis://" + e.br.Addr() + "/0"
		}
	} else {
		// Streams are fixed names: each configuration starts empty so it
		// never sees the previous one's entries or groups.
		if err = clearStreams(ctx, r.p.Broker); err == nil {
			e.br, err = redisbroker.Open(ctx, r.p.Broker, redisbroker.Options{})
			e.brokerURL = r.p.Broker
		}
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return e, nil
}

func (e *env) close() error {
	err := e.br.Close()
	if cerr := e.db.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

func clearStreams(ctx context.Context, brokerURL string) error {
	// Partitions ("lanebench.3") and, on a cluster, hash-tagged names
	// ("{lanebench.3}:backfill") too.
	return scratch.ClearStreams(ctx, brokerURL, []string{Category}, Category+":*", Category+".*", "{"+Category+"}*", "{"+Category+".*")
}

// engineConfig is the configuration of every engine lanebench runs.
func engineConfig(lanes bool, conc, bconc int) *lanewayconfig.Config {
	cfg := lanewayconfig.Default()
	cfg.Name = DomainName
	cfg.Server.PriorityLanes.Enabled = lanes
	cfg.Server.PriorityLanes.BackfillConcurrency = bconc
	cfg.Server.StreamSubscription.Concurrency = conc
	cfg.Server.StreamSubscription.BlockingTimeoutMS = 1000
	cfg.Server.HTTP.Listen = ""
	return cfg
}

func backfillStream(enabled bool) string {
	return lanes.Config{Enabled: enabled}.Route(Category, lanes.Bulk)
}

func lanesName(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// waitFor waits until cond holds, an error naming what when it did not
// within timeout.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	ok, err := lanesexp.WaitFor(ctx, time.Now().Add(timeout), cond)
	if err == nil && !ok {
		err = fmt.Errorf("timed out after %s waiting for %s", timeout, what)
	}
	return err
}

func stopEngine(ctx context.Context, eng *laneway.Engine) error { return lanesexp.StopEngine(ctx, eng) }
