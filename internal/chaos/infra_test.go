//go:build chaos

package chaos_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// The suite's own servers: a Redis with an append-only file, a throwaway
// PostgreSQL cluster, and a TCP proxy (toxiproxy, in this process) in front
// of each, through which the engines connect. The suite restarts and
// breaks only these; the shared servers of the machine are never touched.

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitTCP(t *testing.T, port int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %d after %s", port, within)
}

// redisServer is a redis-server with appendfsync always.
type redisServer struct {
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	r := &redisServer{port: freePort(t), dir: t.TempDir()}
	r.start(t)
	t.Cleanup(func() { r.kill() })
	return r
}

func (r *redisServer) start(t *testing.T) {
	t.Helper()
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", fmt.Sprint(r.port), "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with the suite, however it ends
	require.NoError(t, r.cmd.Start())
	waitTCP(t, r.port, 30*time.Second)
	c := r.client(0)
	defer c.Close()
	deadline := time.Now().Add(60 * time.Second)
	for c.Ping(context.Background()).Err() != nil { // LOADING while the AOF replays
		require.True(t, time.Now().Before(deadline), "redis did not finish loading")
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		_, _ = r.cmd.Process.Wait()
		r.cmd = nil
	}
}

func (r *redisServer) client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), DB: db, DisableIdentity: true})
}

// pgServer is a PostgreSQL cluster in a temporary directory, run as the
// postgres user when the suite runs as root (initdb refuses root), as
// scripts/test-services does.
type pgServer struct {
	port       int
	root, data string
	pgctl      string
	initdb     string
	asPostgres bool
	socketDir  string
}

func pgBin(t *testing.T, name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	require.NotEmpty(t, matches, "%s not found: install PostgreSQL (apt-get install -y postgresql)", name)
	return matches[len(matches)-1]
}

func startPostgres(t *testing.T) *pgServer {
	root, err := os.MkdirTemp("", "laneway-chaos-pg-")
	require.NoError(t, err)
	p := &pgServer{port: freePort(t), root: root, data: filepath.Join(root, "data"), socketDir: root,
		pgctl: pgBin(t, "pg_ctl"), initdb: pgBin(t, "initdb"), asPostgres: os.Geteuid() == 0}
	t.Cleanup(func() {
		_ = p.run("", p.pgctl, "-D", p.data, "-m", "immediate", "stop")
		_ = os.RemoveAll(root)
	})
	require.NoError(t, os.Chmod(root, 0o755))
	if p.asPostgres {
		require.NoError(t, exec.Command("chown", "postgres", root).Run())
	}
	require.NoError(t, p.run("", p.initdb, "-D", p.data, "-U", "postgres", "--auth=trust", "--no-sync"))
	p.start(t)
	return p
}

func (p *pgServer) run(_ string, name string, args ...string) error {
	var cmd *exec.Cmd
	if p.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func (p *pgServer) opts() string {
	return fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", p.port, p.socketDir)
}

func (p *pgServer) start(t *testing.T) {
	t.Helper()
	require.NoError(t, p.run("", p.pgctl, "-D", p.data, "-o", p.opts(), "-l", filepath.Join(p.root, "pg.log"), "-w", "start"))
}

// restart is a fast shutdown (active transactions rolled back, clients
// disconnected) followed by a start.
func (p *pgServer) restart(t *testing.T) {
	t.Helper()
	require.NoError(t, p.run("", p.pgctl, "-D", p.data, "-m", "fast", "-w", "stop"))
	p.start(t)
}

func (p *pgServer) url(port int, db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, db)
}

type toxiProxy = toxiproxy.Proxy

// proxies is the embedded toxiproxy with one proxy per server.
type proxies struct {
	redis, pg *toxiproxy.Proxy
}

func startProxies(t *testing.T, redisPort, pgPort int) *proxies {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	mk := func(name string, upstream int) *toxiproxy.Proxy {
		p := toxiproxy.NewProxy(srv, name, fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", upstream))
		require.NoError(t, srv.Collection.Add(p, true))
		return p
	}
	px := &proxies{redis: mk("redis", redisPort), pg: mk("postgres", pgPort)}
	t.Cleanup(func() { _ = srv.Collection.Clear() })
	return px
}

func proxyPort(p *toxiproxy.Proxy) int {
	_, port, _ := net.SplitHostPort(p.Listen)
	var n int
	fmt.Sscan(port, &n)
	return n
}

func addToxic(t *testing.T, p *toxiproxy.Proxy, name, typ, stream string, attrs string) {
	t.Helper()
	_, err := p.Toxics.AddToxicJson(strings.NewReader(fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, stream, attrs)))
	require.NoError(t, err)
}

func removeToxic(t *testing.T, p *toxiproxy.Proxy, name string) {
	t.Helper()
	require.NoError(t, p.Toxics.RemoveToxic(context.Background(), name))
}

// engine is one `chaosapp server` process.
type engine struct {
	cmd    *exec.Cmd
	http   string
	log    string
	exited chan error
}

func startEngine(t *testing.T, bin, domainDir, name string) *engine {
	t.Helper()
	e := &engine{http: fmt.Sprintf("127.0.0.1:%d", freePort(t)), log: filepath.Join(domainDir, name+".log"), exited: make(chan error, 1)}
	f, err := os.Create(e.log)
	require.NoError(t, err)
	e.cmd = exec.Command(bin, "server", "--domain", domainDir, "--log-level", "info")
	e.cmd.Env = append(os.Environ(), "LANEWAY_ENV=", "CHAOS_HTTP="+e.http, "CHAOS_BULK_COST="+bulkCost.String(), "CHAOS_ENGINE="+name)
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	e.cmd.Stdout, e.cmd.Stderr = f, f
	require.NoError(t, e.cmd.Start())
	go func() { e.exited <- e.cmd.Wait(); f.Close() }()
	t.Cleanup(func() { e.kill() })
	return e
}

func (e *engine) pid() int { return e.cmd.Process.Pid }

func (e *engine) kill() {
	select {
	case <-e.exited:
	default:
		_ = e.cmd.Process.Signal(syscall.SIGKILL)
		<-e.exited
		e.exited <- nil // for later waits
	}
}

// terminate sends SIGTERM.
func (e *engine) terminate() { _ = e.cmd.Process.Signal(syscall.SIGTERM) }

// stop is SIGTERM and the wait for a clean exit.
func (e *engine) stop(t *testing.T, within time.Duration) {
	t.Helper()
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-e.exited:
		e.exited <- err
		require.NoError(t, err, "engine exit after SIGTERM; log %s", e.log)
	case <-time.After(within):
		t.Fatalf("engine did not stop within %s after SIGTERM (wedged); log %s", within, e.log)
	}
}

func (e *engine) ready() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + e.http + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
