package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/internal/tools/syncio"
	"github.com/laneway/laneway/lanewayconfig"
)

// redisDB is the Redis database this package owns: the customers domain's
// stream names are fixed, so isolation is by database number, not prefix.
// LANEWAY_E2E_REDIS_DB moves it, so two checkouts can run this package at
// once on one Redis.
var redisDB = e2eRedisDB()

func e2eRedisDB() int {
	if v := os.Getenv("LANEWAY_E2E_REDIS_DB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 15 {
			fmt.Fprintf(os.Stderr, "e2e: LANEWAY_E2E_REDIS_DB=%q: want a database number from 1 to 15\n", v)
			os.Exit(2)
		}
		return n
	}
	return 11
}

// binPath is the laneway binary TestMain builds.
var binPath string

func TestMain(m *testing.M) {
	// The test process loads the base config only, whatever the shell
	// running the tests sets (set here, not per test, so that tests with
	// an env can run in parallel).
	if err := os.Setenv("LANEWAY_ENV", ""); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "laneway-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(2)
	}
	binPath = filepath.Join(dir, "laneway")
	goBin := "go" // from PATH, as a developer or CI runs the tests
	build := exec.Command(goBin, "build", "-o", binPath, "github.com/laneway/laneway/cmd/laneway")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot build the laneway binary with %s: %v\n%s", goBin, err, out)
		_ = os.RemoveAll(dir)
		os.Exit(2)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		testsvc.StopCluster() // started by the cluster test, if it ran
		_ = os.RemoveAll(dir)
	}))
}

// env is one test's world: a domain directory, a fresh PostgreSQL schema,
// the package's Redis database (flushed) and clients for observation.
type env struct {
	t        *testing.T
	dir      string
	dbURL    string
	redisURL string
	rdb      redis.UniversalClient // a cluster client in the cluster test
	pgMu     sync.Mutex            // one connection, queried from Eventually goroutines
	pg       *pgx.Conn
}

// envParams shape the domain.toml of one test.
type envParams struct {
	Lanes       bool
	Concurrency int // 0: the default
	// PoolMaxConns sizes the engine's PostgreSQL pool (0: the default), so
	// handlers blocked on a lock do not starve the relay of connections.
	PoolMaxConns int
	// ClaimIdleSeconds is claim_idle_seconds (0: 1 s, so the crash tests
	// reclaim quickly).
	ClaimIdleSeconds int
	// LeaseSeconds is [outbox] lease_seconds (0: 2 s, so the crash tests
	// republish a killed relay's rows quickly).
	LeaseSeconds int
	// HTTP serves /metrics, /healthz and /readyz on a free loopback port
	// (engine.httpAddr tells which); off by default.
	HTTP bool
	// ProductionLanes writes lanes off in the base configuration and on in
	// the [production...] overlay (as examples/customers/domain.toml does),
	// instead of Lanes.
	ProductionLanes bool
	// Tables is TOML appended to the file (whole tables, such as
	// "[handlers.CustomerProjector]").
	Tables string
	// Broker, when set, replaces the package's Redis database with a
	// server of the test's own.
	Broker *brokerParams
}

// brokerParams point a test's engine at its own Redis: URL is
// brokers.default.url, Extra more keys of [brokers.default] (tls_*),
// Admin a client that observes the server as its admin.
type brokerParams struct {
	URL   string
	Extra string
	Admin redis.UniversalClient
}

func newEnv(t *testing.T, p envParams) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), dbURL: testsvc.PostgresURL(t)}

	ctx := context.Background()
	brokerExtra := ""
	if p.Broker != nil {
		e.redisURL, e.rdb, brokerExtra = p.Broker.URL, p.Broker.Admin, p.Broker.Extra
	} else {
		u, err := url.Parse(testsvc.RedisURL(t))
		require.NoError(t, err)
		u.Path = fmt.Sprintf("/%d", redisDB)
		e.redisURL = u.String()
		opt, err := redis.ParseURL(e.redisURL)
		require.NoError(t, err)
		require.Equal(t, redisDB, opt.DB, "flushing is only allowed on the package's own database")
		e.rdb = redis.NewClient(opt)
		t.Cleanup(func() { _ = e.rdb.Close() })
		require.NoError(t, e.rdb.FlushDB(ctx).Err())
	}

	engineDB := e.dbURL
	if p.PoolMaxConns > 0 {
		engineDB += fmt.Sprintf("&pool_max_conns=%d", p.PoolMaxConns) // PostgresURL already has a query
	}
	var extra strings.Builder
	if p.Concurrency > 0 {
		fmt.Fprintf(&extra, "concurrency = %d\n", p.Concurrency)
	}
	claimIdle := 1
	if p.ClaimIdleSeconds > 0 {
		claimIdle = p.ClaimIdleSeconds
	}
	lease := 2
	if p.LeaseSeconds > 0 {
		lease = p.LeaseSeconds
	}
	listen := ""
	if p.HTTP {
		listen = "127.0.0.1:0"
	}
	overlay := ""
	if p.ProductionLanes {
		overlay = "\n[production.server.priority_lanes]\nenabled = true\n"
	}
	toml := fmt.Sprintf(`name = "Customers"

[databases.default]
provider = "postgres"
url = %q

[brokers.default]
provider = "redis"
url = %q
%s
[server.http]
listen = %q

[server.stream_subscription]
claim_idle_seconds = %d
retry_delay_seconds = 0.1
shutdown_timeout_seconds = 5
%s
[server.priority_lanes]
enabled = %t

# A relay cycle cut short by SIGTERM or SIGKILL leaves its rows leased
# (by design, see outbox.Relay.Stop); a short lease lets the next engine
# republish them within the test's budget instead of after 30 s.
[outbox]
lease_seconds = %d
%s%s`, engineDB, e.redisURL, brokerExtra, listen, claimIdle, extra.String(), p.Lanes, lease, overlay, p.Tables)
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "domain.toml"), []byte(toml), 0o644))

	conn, err := pgx.Connect(ctx, e.dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	e.pg = conn
	return e
}

// openApp opens the customers domain in the test process (it also migrates
// the schema), the producer side of every test.
func (e *env) openApp() *laneway.App {
	e.t.Helper()
	cfg, err := lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: e.dir})
	require.NoError(e.t, err)
	dom, err := customers.New(customers.Options{})
	require.NoError(e.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{})
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = app.Close() })
	return app
}

// engine is one `laneway server` subprocess.
type engine struct {
	cmd    *exec.Cmd
	stderr *syncio.Buffer
	done   chan struct{} // closed when the process has been waited for
}

// startEngine runs the server (with extra flags) and waits for its start
// line. The process is killed at cleanup if the test did not stop it.
func (e *env) startEngine(extra ...string) *engine {
	e.t.Helper()
	cmd := exec.Command(binPath, append([]string{"server", "--domain", e.dir, "--log-level", "debug"}, extra...)...)
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LANEWAY_ENV=") {
			environ = append(environ, kv)
		}
	}
	cmd.Env = environ
	eng := &engine{cmd: cmd, stderr: &syncio.Buffer{}, done: make(chan struct{})}
	cmd.Stdout = eng.stderr
	cmd.Stderr = eng.stderr
	require.NoError(e.t, cmd.Start())
	go func() {
		defer close(eng.done)
		_ = cmd.Wait()
	}()
	e.t.Cleanup(func() {
		select {
		case <-eng.done:
		default:
			_ = cmd.Process.Kill()
			<-eng.done
		}
		if e.t.Failed() {
			e.t.Logf("engine pid %d output:\n%s", cmd.Process.Pid, tail(eng.stderr.String(), 8000))
		}
	})
	require.Eventually(e.t, func() bool {
		select {
		case <-eng.done:
			return true
		default:
		}
		return strings.Contains(eng.stderr.String(), "laneway engine started")
	}, 30*time.Second, 20*time.Millisecond)
	select {
	case <-eng.done:
		e.t.Fatalf("engine exited during start (code %d):\n%s", cmd.ProcessState.ExitCode(), eng.stderr.String())
	default:
	}
	return eng
}

// httpAddr is the address of the engine's HTTP endpoints, from its start
// line (text log format).
func (g *engine) httpAddr(t *testing.T) string {
	t.Helper()
	for _, line := range strings.Split(g.stderr.String(), "\n") {
		if !strings.Contains(line, "laneway engine started") {
			continue
		}
		_, rest, ok := strings.Cut(line, " http=")
		require.True(t, ok, "start line without http address: %s", line)
		addr, _, _ := strings.Cut(rest, " ")
		require.NotEmpty(t, addr, line)
		return addr
	}
	t.Fatalf("no start line in:\n%s", g.stderr.String())
	return ""
}

// logged waits until the engine's output matches pattern. The output
// reaches the test through a pipe copied by another goroutine, so a line the
// engine wrote before answering a request may arrive after the answer.
func (g *engine) logged(t *testing.T, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	if !assert.Eventually(t, func() bool { return re.MatchString(g.stderr.String()) }, wait, tick) {
		t.Errorf("no log line matching %q in:\n%s", pattern, tail(g.stderr.String(), 8000))
	}
}

// signal sends sig to the engine.
func (g *engine) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, g.cmd.Process.Signal(sig))
}

// wait waits (generously) for the process to exit and returns its code.
func (g *engine) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-g.done:
		return g.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("engine did not exit within %s:\n%s", within, tail(g.stderr.String(), 8000))
		return -1
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// count runs a SELECT count(*) style query.
func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pgMu.Lock()
	defer e.pgMu.Unlock()
	var n int
	err := e.pg.QueryRow(ctx, query, args...).Scan(&n)
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		return 0 // the projector creates customer_summary with its first event
	}
	require.NoError(e.t, err)
	return n
}

// strings runs a query returning one text column.
func (e *env) strings(query string, args ...any) []string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pgMu.Lock()
	defer e.pgMu.Unlock()
	rows, err := e.pg.Query(ctx, query, args...)
	require.NoError(e.t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(e.t, err)
	return out
}

func (e *env) summaryCount() int { return e.count(`SELECT count(*) FROM customer_summary`) }

// register processes n RegisterCustomer commands (ids c00000...) with the
// given number of workers, starting at index from.
func register(t *testing.T, app *laneway.App, from, n, workers int) {
	t.Helper()
	require.NoError(t, registerErr(app, from, n, workers))
}

// registerErr is register for goroutines other than the test's.
func registerErr(app *laneway.App, from, n, workers int) error {
	ctx := context.Background()
	jobs := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				id := fmt.Sprintf("c%06d", i)
				err := app.Process(ctx, customers.RegisterCustomer{CustomerID: id, Name: "Customer " + id, Email: id + "@example.com"})
				if err != nil {
					errs <- fmt.Errorf("process %s: %w", id, err)
					return
				}
			}
		}()
	}
	var firstErr error
feed:
	for i := from; i < from+n; i++ {
		select {
		case jobs <- i:
		case firstErr = <-errs:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if firstErr == nil {
		firstErr = <-errs
	}
	return firstErr
}

// groupInfo returns XINFO GROUPS of stream keyed by group name (empty when
// the stream does not exist).
func (e *env) groupInfo(stream string) map[string]redis.XInfoGroup {
	e.t.Helper()
	gs, err := e.rdb.XInfoGroups(context.Background(), stream).Result()
	if err != nil && strings.Contains(err.Error(), "no such key") {
		return map[string]redis.XInfoGroup{}
	}
	require.NoError(e.t, err)
	out := map[string]redis.XInfoGroup{}
	for _, g := range gs {
		out[g.Name] = g
	}
	return out
}

// pendingExt returns every pending entry of group on stream (extended form).
func (e *env) pendingExt(stream, group string) []redis.XPendingExt {
	e.t.Helper()
	p, err := e.rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{
		Stream: stream, Group: group, Start: "-", End: "+", Count: 1_000_000,
	}).Result()
	require.NoError(e.t, err)
	return p
}
