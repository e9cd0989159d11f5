package testsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterMasters is the number of masters of the test cluster.
const ClusterMasters = 3

// RedisCluster is a Redis Cluster of ClusterMasters masters (no replicas)
// run from the local redis-server binary on free loopback ports, with its
// files in a temporary directory.
type RedisCluster struct {
	// Addrs are the masters' host:port, in start order.
	Addrs []string
	dir   string
	procs []*exec.Cmd
}

// URL is the broker URL of the cluster: "redis+cluster://a1,a2,a3".
func (c *RedisCluster) URL() string { return "redis+cluster://" + strings.Join(c.Addrs, ",") }

// Node is a plain client of one master (for CLUSTER and MIGRATE commands
// and for counting its keys). The caller closes it.
func (c *RedisCluster) Node(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr})
}

var (
	clusterOnce sync.Once
	cluster     *RedisCluster
	clusterErr  error
)

// Cluster returns the package's shared Redis Cluster, starting it on first
// use. TestMain must call StopCluster after the tests. Tests sharing it keep
// apart by unique key prefixes (Prefix), as on the shared Redis.
func Cluster(t testing.TB) *RedisCluster {
	t.Helper()
	clusterOnce.Do(func() { cluster, clusterErr = StartCluster(context.Background()) })
	if clusterErr != nil {
		t.Fatalf("testsvc: start a Redis Cluster: %v (needs redis-server and redis-cli on PATH)", clusterErr)
	}
	return cluster
}

// StopCluster stops the shared cluster if a test started it.
func StopCluster() {
	if cluster != nil {
		cluster.Stop()
	}
}

// StartCluster starts ClusterMasters redis-server processes in cluster mode,
// joins them with `redis-cli --cluster create` and waits for
// cluster_state:ok on every node.
func StartCluster(ctx context.Context) (*RedisCluster, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "laneway-cluster-")
	if err != nil {
		return nil, err
	}
	c := &RedisCluster{dir: dir}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	ports, err := freeClusterPorts(ClusterMasters)
	if err != nil {
		return nil, err
	}
	for _, p := range ports {
		nd := filepath.Join(dir, strconv.Itoa(p))
		if err := os.MkdirAll(nd, 0o755); err != nil {
			return nil, err
		}
		logf, err := os.Create(filepath.Join(nd, "redis.log"))
		if err != nil {
			return nil, err
		}
		cmd := exec.Command("redis-server", "--port", strconv.Itoa(p), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
			"--save", "", "--appendonly", "no", "--dir", nd)
		cmd.Stdout, cmd.Stderr = logf, logf
		// The servers die with the test binary even when it is killed.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		_ = logf.Close()
		if err != nil {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		c.procs = append(c.procs, cmd)
		c.Addrs = append(c.Addrs, "127.0.0.1:"+strconv.Itoa(p))
	}
	for _, a := range c.Addrs {
		if err := waitPing(ctx, a); err != nil {
			return nil, fmt.Errorf("redis-server %s: %w (log in %s)", a, err, dir)
		}
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %w: %s", err, out)
	}
	for _, a := range c.Addrs {
		if err := waitClusterOK(ctx, a); err != nil {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

// Stop kills the servers and removes their files.
func (c *RedisCluster) Stop() {
	for _, p := range c.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
	c.procs = nil
	_ = os.RemoveAll(c.dir)
}

func waitPing(ctx context.Context, addr string) error {
	cl := redis.NewClient(&redis.Options{Addr: addr})
	defer cl.Close()
	for {
		err := cl.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitClusterOK waits until addr reports cluster_state:ok and knows every
// master (the gossip has spread).
func waitClusterOK(ctx context.Context, addr string) error {
	cl := redis.NewClient(&redis.Options{Addr: addr})
	defer cl.Close()
	for {
		info, err := cl.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") &&
			strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(ClusterMasters)) {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("cluster_state is not ok")
			}
			return fmt.Errorf("cluster node %s: %w", addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freeClusterPorts finds n loopback ports p whose cluster bus ports
// p+10000 are free too.
func freeClusterPorts(n int) ([]int, error) {
	var out []int
	for tries := 0; len(out) < n && tries < 200; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if p+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		if err != nil {
			continue
		}
		_ = bus.Close()
		out = append(out, p)
	}
	if len(out) < n {
		return nil, errors.New("no free loopback ports for the cluster and its bus")
	}
	return out, nil
}
