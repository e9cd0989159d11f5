package testsvc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a loopback TCP port nobody listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testsvc: no free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RedisServer is a redis-server process a test started (StartRedis or
// StartSentinel). It is killed when the test ends.
type RedisServer struct {
	Port int
	Dir  string
	args []string
	t    testing.TB

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

// StartRedis runs redis-server on a free loopback port with no persistence,
// plus args (e.g. "--tls-port", ...). When args set "--port" the caller
// chose the port (Port is then the first "--tls-port" or "--port" value).
// It returns once the server logs that it accepts connections.
func StartRedis(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	port := FreePort(t)
	base := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"}
	if v, ok := argValue(args, "--tls-port"); ok {
		port, _ = strconv.Atoi(v)
	} else if v, ok := argValue(args, "--port"); ok {
		port, _ = strconv.Atoi(v)
	} else {
		base = append(base, "--port", strconv.Itoa(port))
	}
	return startRedisProcess(t, port, nil, append(base, args...))
}

// StartSentinel runs a Sentinel (redis-server CONF --sentinel) on a free
// port, monitoring master on 127.0.0.1:masterPort with the given quorum and
// timings.
func StartSentinel(t testing.TB, master string, masterPort, quorum int, downAfter, failoverTimeout time.Duration) *RedisServer {
	t.Helper()
	port := FreePort(t)
	conf := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, port, master, masterPort, quorum, master, downAfter.Milliseconds(), master, failoverTimeout.Milliseconds(), master)
	return startRedisProcess(t, port, []byte(conf), []string{"--sentinel"})
}

func argValue(args []string, name string) (string, bool) {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name {
			return args[i+1], true
		}
	}
	return "", false
}

func startRedisProcess(t testing.TB, port int, conf []byte, args []string) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("testsvc: redis-server is not installed: apt-get install -y redis-server")
	}
	dir := t.TempDir()
	if conf != nil {
		// Sentinel rewrites its configuration file, so it needs its own.
		path := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(path, conf, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append([]string{path}, args...)
	}
	args = append(args, "--dir", dir)
	s := &RedisServer{Port: port, Dir: dir, args: args, t: t}
	s.start()
	t.Cleanup(s.Kill)
	return s
}

func (s *RedisServer) start() {
	t := s.t
	t.Helper()
	cmd := exec.Command("redis-server", s.args...)
	log := &bytes.Buffer{}
	var mu sync.Mutex
	w := lockedWriter{mu: &mu, b: log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("testsvc: start redis-server %v: %v", s.args, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done, s.log = cmd, done, log
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		out := log.String()
		mu.Unlock()
		if strings.Contains(out, "Ready to accept connections") || strings.Contains(out, "Sentinel ID is") {
			return
		}
		select {
		case <-done:
			t.Fatalf("testsvc: redis-server %v exited during start:\n%s", s.args, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testsvc: redis-server %v not ready within 20s:\n%s", s.args, out)
		}
	}
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// Kill stops the process with SIGKILL (no shutdown, no save) and waits for
// it. Calling it on a stopped server does nothing.
func (s *RedisServer) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Restart starts the process again (after Kill) with the same arguments
// plus extra, e.g. "--replicaof", host, port.
func (s *RedisServer) Restart(extra ...string) {
	s.t.Helper()
	s.Kill()
	s.mu.Lock()
	s.args = append(slices.Clip(s.args), extra...)
	s.mu.Unlock()
	s.start()
}

// Pause freezes the process (SIGSTOP), as a stalled or partitioned server;
// Resume (SIGCONT) lets it run on.
func (s *RedisServer) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused process.
func (s *RedisServer) Resume() { s.signal(syscall.SIGCONT) }

func (s *RedisServer) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		s.t.Errorf("testsvc: signal %v to redis-server: %v", sig, err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
