package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laneway/laneway"
	lanecfg "github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// WorkerEnv is set in a worker process's environment, so a binary that is
// not lanebench (a test binary) can tell it must run Worker.
const WorkerEnv = "LANEBENCH_AS_WORKER"

// proc is one engine process this run started and owns: stop (or kill on
// failure) always waits for it and for its output reader.
type proc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	ready   chan struct{}
	handled atomic.Int64
	last    atomic.Int64 // UnixNano of its last handler end
	final   atomic.Int64
	readerW sync.WaitGroup
	waited  bool
	// onPrimary takes the "p" lines of a contention worker.
	onPrimary func(raised, done int64)
}

// workerSpec is what a worker process runs.
type workerSpec struct {
	brokerURL, database string
	lanes               bool
	conc, bconc, parts  int
	// contention runs the contention domain (its handlers write the
	// shared table) instead of the bench one; then "handled" counts
	// backfill messages only and every production message is one line
	// "p <raised> <done>" (UnixNano), passed to onPrimary in the parent.
	contention bool
	// backfillRate is backfill_rate_per_second, targetMS the governor's
	// primary_latency_target_ms (0: off).
	backfillRate float64
	targetMS     int
	onPrimary    func(raised, done int64)
}

// startProc starts one engine process. It is stopped through its stdin
// (gracefully) and waited for by stop, not killed when a context ends, so
// exec.CommandContext does not fit.
//
//nolint:unparam // ctx is kept for the callers' symmetry with the other stages
func (r *Runner) startProc(ctx context.Context, ws workerSpec) (*proc, error) {
	if len(r.worker) == 0 {
		return nil, errors.New("no worker command: cannot start engine processes")
	}
	args := append(append([]string(nil), r.worker[1:]...),
		"--broker", ws.brokerURL, "--database", ws.database,
		"--lanes="+strconv.FormatBool(ws.lanes), "--concurrency", strconv.Itoa(ws.conc),
		"--backfill-concurrency", strconv.Itoa(ws.bconc), "--partitions", strconv.Itoa(max(ws.parts, 1)),
		"--contention="+strconv.FormatBool(ws.contention),
		"--backfill-rate", strconv.FormatFloat(ws.backfillRate, 'f', -1, 64),
		"--target-ms", strconv.Itoa(ws.targetMS))
	cmd := exec.Command(r.worker[0], args...) //nolint:noctx // stopped gracefully by stop, see startProc
	cmd.Env = append(os.Environ(), WorkerEnv+"=1")
	cmd.Stderr = r.status
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start engine process: %w", err)
	}
	p := &proc{cmd: cmd, stdin: stdin, ready: make(chan struct{}), onPrimary: ws.onPrimary}
	p.readerW.Add(1)
	go p.read(stdout)
	return p, nil
}

// read parses the worker's protocol lines until its stdout closes (it
// exits): "ready", "handled <n> <last unix nano>", "final <n> <last>",
// and from a contention worker "p <raised> <done>".
func (p *proc) read(stdout io.Reader) {
	defer p.readerW.Done()
	sc := bufio.NewScanner(stdout)
	readyClosed := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && f[0] == "ready" && !readyClosed:
			close(p.ready)
			readyClosed = true
		case len(f) == 3 && f[0] == "p" && p.onPrimary != nil:
			raised, _ := strconv.ParseInt(f[1], 10, 64)
			done, _ := strconv.ParseInt(f[2], 10, 64)
			p.onPrimary(raised, done)
		case len(f) == 3 && (f[0] == "handled" || f[0] == "final"):
			n, _ := strconv.ParseInt(f[1], 10, 64)
			last, _ := strconv.ParseInt(f[2], 10, 64)
			p.last.Store(last)
			p.handled.Store(n)
			if f[0] == "final" {
				p.final.Store(n)
			}
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) start() error {
	_, err := io.WriteString(p.stdin, "go\n")
	return err
}

// stop closes the worker's stdin (its signal to stop gracefully) and waits;
// a worker that does not exit in time is killed.
func (p *proc) stop() error {
	if p.waited {
		return nil
	}
	p.waited = true
	_ = p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(45 * time.Second):
		_ = p.cmd.Process.Kill()
		err = fmt.Errorf("engine process %d did not stop in 45s; killed", p.pid())
		<-done //nolint:errcheck // the kill's exit status adds nothing to err
	}
	p.readerW.Wait()
	return err
}

// kill ends a worker at once (failure paths).
func (p *proc) kill() {
	if p.waited {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.stop()
}

// workerDatabase is where worker i keeps its (empty) outbox: its own
// SQLite file, or the run's PostgreSQL schema (migrated by the parent
// already, so workers never race on CREATE TABLE).
func workerDatabase(e *env, i int) string {
	if e.db.SQLitePath != "" {
		return filepath.Join(e.db.Dir, fmt.Sprintf("worker%d.db", i))
	}
	return e.db.PostgresURL
}

// procRun starts k workers on e, starts them together, waits until they
// handled n events between them, and returns the events/s from the start
// signal to the last handler's end. sample, when set, runs every 20 ms with
// the workers' pids while they work.
func (r *Runner) procRun(ctx context.Context, e *env, k, n, parts int, lanes bool, sample func(pids []int)) (rate float64, handled []int64, err error) {
	if e.db.PostgresURL != "" {
		app, err := laneway.Open(ctx, mustDomain(), engineConfig(lanes, 1, 1), laneway.Options{Store: e.db.Store})
		if err != nil {
			return 0, nil, err
		}
		_ = app.Close()
	}
	procs := make([]*proc, 0, k)
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()
	for i := range k {
		p, err := r.startProc(ctx, workerSpec{brokerURL: e.brokerURL, database: workerDatabase(e, i), lanes: lanes, conc: 1, bconc: 1, parts: parts})
		if err != nil {
			return 0, nil, err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		select {
		case <-p.ready:
		case <-time.After(time.Minute):
			return 0, nil, fmt.Errorf("engine process %d not ready after a minute", p.pid())
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
	pids := make([]int, len(procs))
	for i, p := range procs {
		pids[i] = p.pid()
	}
	if sample != nil {
		sample(pids)
	}
	start := time.Now()
	for _, p := range procs {
		if err := p.start(); err != nil {
			return 0, nil, err
		}
	}
	total := func() int64 {
		var s int64
		for _, p := range procs {
			s += p.handled.Load()
		}
		return s
	}
	stopSampling := make(chan struct{})
	var sw sync.WaitGroup
	if sample != nil {
		sw.Add(1)
		go func() {
			defer sw.Done()
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stopSampling:
					return
				case <-t.C:
					sample(pids)
				}
			}
		}()
	}
	werr := waitFor(ctx, 2*time.Minute+time.Duration(n)*time.Millisecond, fmt.Sprintf("%d engine processes to handle %d events", k, n),
		func() bool { return total() >= int64(n) })
	if sample != nil {
		sample(pids) // the engine is still up: the last reading of VmHWM
	}
	close(stopSampling)
	sw.Wait()
	if werr != nil {
		return 0, nil, fmt.Errorf("%w (%d handled)", werr, total())
	}
	var last int64
	for _, p := range procs {
		if err := p.stop(); err != nil {
			return 0, nil, err
		}
		last = max(last, p.last.Load())
		handled = append(handled, p.final.Load())
	}
	return float64(n) / time.Unix(0, last).Sub(start).Seconds(), handled, nil
}

func mustDomain() *laneway.Domain {
	d, err := newDomain(&probe{})
	if err != nil {
		panic(err) // the bench domain is fixed: an error is a bug here
	}
	return d
}

// scale: one backlog, consumed by 1, 2 and 4 engine processes sharing the
// consumer group on one broker.
func (r *Runner) scale(ctx context.Context) error {
	var one float64
	for _, k := range []int{1, 2, 4} {
		res, err := r.scaleRun(ctx, k)
		if err != nil {
			return err
		}
		if k == 1 {
			one = deref(res.RatePerS)
		}
		res.Compare = map[string]float64{"rate_vs_1_process": latency.Ratio(deref(res.RatePerS), one)}
		if err := r.emit(res); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) scaleRun(ctx context.Context, k int) (res Result, err error) {
	n := r.p.Events
	r.progress("scale: %d events, %d engine processes", n, k)
	e, err := r.openEnv(ctx)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := e.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	parts := max(r.p.Partitions, 1)
	naming, err := benchNaming(e.brokerURL, parts)
	if err != nil {
		return res, err
	}
	route := func(id string) string { return naming.PrimaryFor(Category, Category+"-"+id) }
	if err := loadRouted(ctx, e.br, route, laneway.Normal, n, "s"); err != nil {
		return res, err
	}
	shares, err := masterShares(ctx, e.br, naming.EventPartitions(Category))
	if err != nil {
		return res, err
	}
	rate, handled, err := r.procRun(ctx, e, k, n, parts, false, nil)
	if err != nil {
		return res, fmt.Errorf("%d processes: %w", k, err)
	}
	sum := 0
	for _, h := range handled {
		sum += int(h)
	}
	return Result{Scenario: "scale", Lanes: "off", Processes: k, Count: n, Handled: sum, Concurrency: 1,
		RatePerS: f64(latency.Round3(rate)), WorkerHandled: handled, Partitions: parts, MasterShare: shares}, nil
}

// memory: one engine process drains a backfill backlog of each size; its
// resident set is sampled every 20 ms (VmRSS) and its high-water mark
// (VmHWM) read before it stops. The backlog lives in the broker (Redis, or
// the embedded broker in this process), so the engine's memory is all the
// process holds.
func (r *Runner) memory(ctx context.Context) error {
	var first float64
	for i, n := range r.p.MemoryBacklogs {
		res, err := r.memoryRun(ctx, n)
		if err != nil {
			return err
		}
		if i == 0 {
			first = res.PeakRSSMB
		} else {
			res.Compare = map[string]float64{"peak_rss_vs_smallest": latency.Ratio(res.PeakRSSMB, first)}
		}
		if err := r.emit(res); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) memoryRun(ctx context.Context, n int) (res Result, err error) {
	r.progress("memory: backlog of %d backfill events, one engine process", n)
	e, err := r.openEnv(ctx)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := e.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := loadBacklog(ctx, e.br, backfillStream(true), laneway.Low, n, "m"); err != nil {
		return res, err
	}
	var mu sync.Mutex
	var peak, hwm, startRSS float64
	samples := 0
	sample := func(pids []int) {
		st, err := readProcStatus(pids[0])
		if err != nil {
			return // the process may just be exiting
		}
		mu.Lock()
		defer mu.Unlock()
		if samples == 0 {
			startRSS = st.rssMB
		}
		samples++
		peak = max(peak, st.rssMB)
		hwm = max(hwm, st.hwmMB)
	}
	rate, handled, err := r.procRun(ctx, e, 1, n, 1, true, sample)
	if err != nil {
		return res, err
	}
	mu.Lock()
	defer mu.Unlock()
	drain := float64(n) / rate
	return Result{Scenario: "memory", Lanes: "on", Backlog: n,
		Backfill:      &Backfill{Sent: n, Handled: int(handled[0]), DrainSeconds: latency.Round3(drain)},
		DrainRatePerS: latency.Round3(rate), Concurrency: 1, BackfillConcurrency: 1,
		PeakRSSMB: latency.Round3(peak), VmHWMMB: latency.Round3(hwm), StartRSSMB: latency.Round3(startRSS), RSSSamples: samples}, nil
}

type procStatus struct{ rssMB, hwmMB float64 }

// readProcStatus reads VmRSS and VmHWM (kB) from /proc/<pid>/status.
func readProcStatus(pid int) (procStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStatus{}, err
	}
	return parseProcStatus(string(b))
}

func parseProcStatus(s string) (procStatus, error) {
	var st procStatus
	found := 0
	for _, line := range strings.Split(s, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return st, fmt.Errorf("/proc status: unexpected %s line %q", key, line)
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return st, fmt.Errorf("/proc status: %s: %w", key, err)
		}
		if key == "VmRSS" {
			st.rssMB = kb / 1024
		} else {
			st.hwmMB = kb / 1024
		}
		found++
	}
	if found != 2 {
		return st, errors.New("/proc status: VmRSS or VmHWM missing")
	}
	return st, nil
}

// benchNaming is the stream naming of the bench category on brokerURL
// with parts partitions: hash-tagged on a cluster, as the engines name it.
func benchNaming(brokerURL string, parts int) (lanecfg.Naming, error) {
	cfg := engineConfigFor(workerSpec{brokerURL: brokerURL, parts: parts})
	lc, err := lanecfg.FromConfig(cfg, DomainName)
	if err != nil {
		return lanecfg.Naming{}, err
	}
	return lc.Naming, nil
}

// engineConfigFor is engineConfig of a worker: its broker (which decides
// the cluster naming) and the category's partitions.
func engineConfigFor(ws workerSpec) *lanewayconfig.Config {
	cfg := engineConfig(ws.lanes, max(ws.conc, 1), max(ws.bconc, 1))
	if ws.brokerURL != "" {
		cfg.Brokers[lanewayconfig.DefaultEntry] = lanewayconfig.Broker{Provider: lanewayconfig.BrokerProviderRedis, URL: ws.brokerURL}
	}
	if ws.parts > 1 {
		cfg.Server.CategoryPartitions = map[string]int{Category: ws.parts}
	}
	return cfg
}

// masterOf is implemented by the Redis broker: the master serving a key.
type masterOf interface {
	MasterOf(ctx context.Context, key string) (string, error)
}

// masterShares is the share of the entries of streams held by each
// master, rounded to 3 places.
func masterShares(ctx context.Context, br lanewaybroker.Broker, streams []string) (map[string]float64, error) {
	mo, ok := br.(masterOf)
	if !ok {
		return nil, nil
	}
	per := map[string]int64{}
	var total int64
	for _, s := range streams {
		m, err := mo.MasterOf(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("master of %s: %w", s, err)
		}
		n, err := br.Len(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("length of %s: %w", s, err)
		}
		per[m] += n
		total += n
	}
	out := map[string]float64{}
	for m, n := range per {
		out[m] = latency.Round3(float64(n) / float64(max(total, 1)))
	}
	return out, nil
}

// formatShares prints shares by master, sorted by address.
func formatShares(s map[string]float64) string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%.0f%%", k, 100*s[k])
	}
	return strings.Join(parts, " ")
}
