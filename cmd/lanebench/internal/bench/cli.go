package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// Main runs lanebench with args (without the program name) and returns the
// exit status. User errors are one line on stderr and status 1.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "lanebench: interrupted")
			return 130
		}
		fmt.Fprintln(stderr, "lanebench: "+strings.TrimSpace(strings.ReplaceAll(err.Error(), "\n", " ")))
		return 1
	}
	return 0
}

const longHelp = `lanebench measures Laneway against its promises and against the raw
ceilings of this machine, measured in the same run:

  idle        production events at 50/s, nothing else: latency lanes off vs on
  isolation   a pre-loaded backfill backlog, then production at --rate for
              --duration: production latency (event committed -> handler
              start) lanes off vs on, and the backfill drain time; also the
              drain with production idle (drain_idle) and an I/O-bound
              handler at --concurrency/--backfill-concurrency vs 1/1
  throughput  Process, relay, consume and end to end, each beside its raw
              ceiling (single-row INSERT, pipelined XADD, XREADGROUP+XACK)
  scale       consume rate with 1, 2 and 4 engine processes on one broker
  memory      peak RSS of an engine process draining each --memory-backlogs
  contention  (only when named; needs --database) production and a database-
              heavy backfill on one PostgreSQL table: production p99 and
              drain rate with the backfill unlimited, at a sweep of fixed
              rates, and under the governor (--target-ms); then production
              only, unlimited and governor with --contention-procs engine
              processes
  throttle    (only when named) --throttle-procs engine processes drain a
              backfill under backfill_rate_per_second = --throttle-rate:
              the drain rate against the limit
  busycores   (only when named) one spinning process per core; a backfill of
              --backfill/5 entries whose handler waits on a Redis round
              trip drains while production arrives at --rate throughout,
              with backfill_short_slice off and on (off, on, on, off): the
              drain and production latency of each
  quietpair   (only when named) quiet with the raw consumer and the engine
              waiting side by side, the production entries alternated
              between them (--idle-samples each, 50/s each): the engine's
              own cost over the raw consumer, without the change of the
              machine between quiet's two phases (a diagnostic, no target)

By default everything is embedded: an in-process broker and a SQLite file in
a temporary directory, fresh for each configuration and removed afterwards.

--broker redis://host:port/N uses Redis database N, which must be one you
own: lanebench DELETES the streams "lanebench" and "lanebench:*" there
before each configuration and at the end (nothing else; the engines' heartbeat
keys laneway:engine:* expire by themselves within 15 s).
--database postgres://... works in a fresh schema lanebench_<hex> per
configuration, dropped afterwards.

Output: tables, or with --json one JSON object per line per scenario and
configuration (field names in docs/BENCHMARKS.md).`

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	p := DefaultParams()
	var scenarios, backlogs string
	var short bool
	var cpuProfile, memProfile string
	cmd := &cobra.Command{
		Use:           "lanebench",
		Short:         "Benchmarks of Laneway: lane isolation, throughput per stage, scale, memory",
		Long:          longHelp,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if short {
				applyShort(&p, func(name string) bool { return cmd.Flags().Changed(name) })
			}
			var err error
			p.Scenarios = splitList(scenarios)
			if cmd.Flags().Changed("memory-backlogs") || !short {
				if p.MemoryBacklogs, err = parseSizes(backlogs); err != nil {
					return err
				}
			}
			if err := p.Validate(); err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the lanebench binary to start engine processes: %w", err)
			}
			stop, err := startProfiles(cpuProfile, memProfile)
			if err != nil {
				return err
			}
			err = NewRunner(p, stdout, stderr, []string{exe, "worker"}).Run(cmd.Context())
			return errors.Join(err, stop())
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w (see lanebench --help)", err) })
	f := cmd.Flags()
	f.StringVar(&p.Broker, "broker", "", "Redis URL with a database number you own (lanebench deletes its streams lanebench, lanebench:* there); default: an embedded broker")
	f.StringVar(&p.Database, "database", "", "PostgreSQL URL (a fresh schema per configuration); default: SQLite in a temporary directory")
	f.StringVar(&scenarios, "scenario", strings.Join(Scenarios, ","), "comma-separated scenarios to run: "+strings.Join(Scenarios, ", ")+
		"; only when named: "+strings.Join(ExtraScenarios, ", ")+", and "+headlineGroup+" = "+strings.Join(HeadlineScenarios, "+"))
	f.IntVar(&p.Backfill, "backfill", p.Backfill, "backfill events pre-loaded for each isolation run")
	f.Float64Var(&p.Rate, "rate", p.Rate, "production events per second during isolation")
	f.DurationVar(&p.Duration, "duration", p.Duration, "how long production traffic runs in idle and isolation")
	f.DurationVar(&p.HandlerCost, "handler-cost", p.HandlerCost, "simulated handler work in idle and isolation (CPU: a busy loop, exact even below the timer granularity)")
	f.DurationVar(&p.IOCost, "io-handler-cost", p.IOCost, "the handler of the I/O-bound isolation runs (a sleep: waiting on I/O)")
	f.IntVar(&p.Concurrency, "concurrency", p.Concurrency, "handler slots of the I/O-bound run (compared with 1) and of the second consume run")
	f.IntVar(&p.BackfillConcurrency, "backfill-concurrency", p.BackfillConcurrency, "backfill's cap on those slots in the I/O-bound run")
	f.IntVar(&p.Events, "events", p.Events, "events per throughput stage and per scale configuration")
	f.IntVar(&p.Partitions, "partitions", 0, "scale: partitions of the bench category (spread over the masters of a redis+cluster:// broker)")
	f.IntVar(&p.Callers, "callers", p.Callers, "goroutines calling Process (and the raw insert ceiling)")
	f.StringVar(&backlogs, "memory-backlogs", joinSizes(p.MemoryBacklogs), "comma-separated backlog sizes of the memory scenario")
	f.BoolVar(&short, "short", false, "the make-bench sizes (about 90 s on two cores); explicit size flags still win")
	f.IntVar(&p.TargetMS, "target-ms", p.TargetMS, "contention: the governor's primary p99 target in milliseconds (0: 2.5x the production-only p99 measured first)")
	f.IntVar(&p.ContentionProcs, "contention-procs", p.ContentionProcs, "contention: also run production only, unlimited and governor with this many engine processes (0 skips)")
	f.Float64Var(&p.ThrottleRate, "throttle-rate", p.ThrottleRate, "throttle: the backfill_rate_per_second shared by the engine processes")
	f.IntVar(&p.ThrottleProcs, "throttle-procs", p.ThrottleProcs, "throttle: engine processes draining the backfill")
	f.DurationVar(&p.ContentionDuration, "contention-duration", p.ContentionDuration, "contention: how long production runs in each configuration")
	f.IntVar(&p.BackfillNice, "backfill-nice", 0, "consume, flood, quiet and e2e: the engine's [server.priority_lanes] backfill_nice (0-19; 0 off, the default)")
	f.IntVar(&p.Samples, "samples", p.Samples, "flood and e2e (backfill phase): production entries written at --rate")
	f.IntVar(&p.IdleSamples, "idle-samples", p.IdleSamples, "quiet and e2e (idle phase): production entries written at 50/s")
	f.IntVar(&p.Repeat, "repeat", p.Repeat, "run the chosen scenarios this many rounds and end with each target's median and in how many rounds it was met")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof -top lanebench FILE)")
	f.StringVar(&memProfile, "memprofile", "", "write a heap profile (allocations of the whole run) to this file at the end")
	f.BoolVar(&p.JSON, "json", false, "one JSON object per line per scenario and configuration instead of tables")
	cmd.AddCommand(newWorkerCmd(stdout, stderr), &cobra.Command{
		Use:    "spin",
		Short:  "Keep one core busy until stdin closes (started by the busycores scenario)",
		Hidden: true,
		Args:   cobra.NoArgs,
		Run:    func(*cobra.Command, []string) { spin(os.Stdin) },
	})
	return cmd
}

// applyShort replaces every size flag the user did not set by its short
// value.
func applyShort(p *Params, changed func(string) bool) {
	s := ShortParams()
	for name, apply := range map[string]func(){
		"backfill":        func() { p.Backfill = s.Backfill },
		"rate":            func() { p.Rate = s.Rate },
		"duration":        func() { p.Duration = s.Duration },
		"events":          func() { p.Events = s.Events },
		"memory-backlogs": func() { p.MemoryBacklogs = s.MemoryBacklogs },
		"samples":         func() { p.Samples = s.Samples },
		"idle-samples":    func() { p.IdleSamples = s.IdleSamples },
	} {
		if !changed(name) {
			apply()
		}
	}
}

func newWorkerCmd(stdout, stderr io.Writer) *cobra.Command {
	var ws workerSpec
	cmd := &cobra.Command{
		Use:    "worker",
		Short:  "One engine process of the scale and memory scenarios (started by lanebench)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ws.brokerURL == "" || ws.database == "" {
				return errors.New("worker: --broker and --database are required")
			}
			return runWorker(cmd.Context(), ws, os.Stdin, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&ws.brokerURL, "broker", "", "Redis URL")
	f.StringVar(&ws.database, "database", "", "SQLite path or PostgreSQL URL")
	f.BoolVar(&ws.lanes, "lanes", false, "priority lanes on")
	f.IntVar(&ws.conc, "concurrency", 1, "handler slots")
	f.IntVar(&ws.bconc, "backfill-concurrency", 1, "backfill's cap on the slots")
	f.BoolVar(&ws.contention, "contention", false, "run the contention domain (its table must exist)")
	f.Float64Var(&ws.backfillRate, "backfill-rate", 0, "backfill_rate_per_second (0 unlimited)")
	f.IntVar(&ws.targetMS, "target-ms", 0, "the governor's primary_latency_target_ms (0 off)")
	f.IntVar(&ws.parts, "partitions", 1, "partitions of the bench category")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, v := range splitList(s) {
		n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--memory-backlogs: %q is not a positive size", v)
		}
		out = append(out, n)
	}
	return out, nil
}

func joinSizes(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// startProfiles starts a CPU profile to cpuFile and arranges a heap profile
// to memFile (either may be ""); stop ends the one and writes the other.
func startProfiles(cpuFile, memFile string) (stop func() error, err error) {
	var cpu *os.File
	if cpuFile != "" {
		if cpu, err = os.Create(cpuFile); err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			_ = cpu.Close()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		if memFile != "" {
			f, err := os.Create(memFile)
			if err != nil {
				return errors.Join(append(errs, fmt.Errorf("--memprofile: %w", err))...)
			}
			runtime.GC()
			errs = append(errs, pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
		}
		return errors.Join(errs...)
	}, nil
}
