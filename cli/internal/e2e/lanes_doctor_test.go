package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/testsvc"
)

// Acceptance tests of the read-only operator commands (lanes status, lanes
// watch, doctor): the real binary against the package's Redis database and
// a PostgreSQL schema.

// runCLI runs the laneway binary with args (and --domain e.dir appended
// unless the args name one), without LANEWAY_ENV unless env sets it.
func (e *env) runCLI(env map[string]string, args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	hasDomain := false
	for _, a := range args {
		if a == "--domain" {
			hasDomain = true
		}
	}
	if !hasDomain {
		args = append(args, "--domain", e.dir)
	}
	cmd := exec.Command(binPath, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LANEWAY_ENV=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ex *exec.ExitError
	if err != nil && !errors.As(err, &ex) {
		e.t.Fatalf("run %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// editDomain rewrites domain.toml with old replaced by new (exactly once).
func (e *env) editDomain(old, new string) {
	e.t.Helper()
	p := filepath.Join(e.dir, "domain.toml")
	b, err := os.ReadFile(p)
	require.NoError(e.t, err)
	require.Equal(e.t, 1, strings.Count(string(b), old), "domain.toml must contain %q once", old)
	require.NoError(e.t, os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644))
}

func (e *env) setLanes(on bool) {
	e.editDomain(fmt.Sprintf("enabled = %t", !on), fmt.Sprintf("enabled = %t", on))
}

// eventEntry is the stream entry of a CustomerRegistered (or, at another
// version, CustomerUpdated) event, as the relay writes it.
func eventEntry(t *testing.T, name string, version int, id string) string {
	t.Helper()
	payload, err := json.Marshal(map[string]string{"customer_id": id, "name": "N " + id, "email": id + "@example.com"})
	require.NoError(t, err)
	raw, err := envelope.Encode(envelope.Envelope{
		Data: payload,
		Metadata: envelope.Metadata{
			Headers: envelope.Headers{ID: "m-" + id, Time: time.Now().UTC().Format(time.RFC3339Nano),
				Type: envelope.TypeString(customers.DomainName, name, version), Stream: "customer-" + id},
			Domain: envelope.Domain{Class: envelope.ClassEvent, StreamCategory: "customer", Priority: int(laneway.Low), Version: version, SequenceID: "1"},
		},
	})
	require.NoError(t, err)
	return string(raw)
}

// xadd appends n CustomerRegistered entries to stream and returns their ids.
func (e *env) xadd(stream string, n int) []string {
	e.t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		id, err := e.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream,
			Values: map[string]any{"data": eventEntry(e.t, "CustomerRegistered", 1, fmt.Sprintf("x%s%03d", strings.ReplaceAll(stream, ":", ""), i))}}).Result()
		require.NoError(e.t, err)
		ids = append(ids, id)
	}
	return ids
}

// stopped runs an engine (so every consumer group exists) and stops it.
func (e *env) stopped() {
	e.t.Helper()
	eng := e.startEngine()
	eng.signal(e.t, syscall.SIGTERM)
	require.Equal(e.t, 0, eng.wait(e.t, wait))
}

func (e *env) status(args ...string) inspect.Status {
	e.t.Helper()
	code, out, errs := e.runCLI(nil, append([]string{"lanes", "status", "--json"}, args...)...)
	require.Equal(e.t, 0, code, errs)
	var st inspect.Status
	require.NoError(e.t, json.Unmarshal([]byte(out), &st), out)
	// The documented field names, asserted on the raw JSON.
	var raw map[string]any
	require.NoError(e.t, json.Unmarshal([]byte(out), &raw))
	for _, k := range []string{"domain", "env", "lanes_enabled", "backfill_suffix", "taken_at", "engines", "categories", "warnings"} {
		require.Contains(e.t, raw, k)
	}
	lane := raw["categories"].([]any)[0].(map[string]any)["lanes"].([]any)[0].(map[string]any)
	for _, k := range []string{"lane", "stream", "enabled", "exists", "length", "pending", "lag", "unhandled", "oldest_unhandled_id",
		"oldest_unhandled_age_seconds", "consumers", "active_consumers", "dlq_stream", "dlq_depth", "groups", "missing_groups"} {
		require.Contains(e.t, lane, k)
	}
	return st
}

func lane(t *testing.T, st inspect.Status, stream string) inspect.LaneStatus {
	t.Helper()
	for _, c := range st.Categories {
		for _, l := range c.Lanes {
			if l.Stream == stream {
				return l
			}
		}
	}
	t.Fatalf("no lane %s in status", stream)
	return inspect.LaneStatus{}
}

func groupNames(l inspect.LaneStatus) []string {
	var out []string
	for _, g := range l.Groups {
		out = append(out, g.Name)
	}
	return out
}

func TestLanesStatusBacklogInBothLanes(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})
	e.stopped()
	pids := e.xadd(stream, 5)
	bids := e.xadd(backfill, 7)

	st := e.status()
	assert.Equal(t, "Customers", st.Domain)
	assert.True(t, st.LanesEnabled)
	assert.Equal(t, "backfill", st.BackfillSuffix)
	assert.Empty(t, st.Engines, "the engine was stopped: its heartbeat is gone")
	assert.Empty(t, st.Warnings)
	require.Equal(t, "customer", st.Categories[0].Category)
	assert.Equal(t, lanes.Events, st.Categories[0].Class)
	assert.Equal(t, []string{customers.ProjectorName, customers.NotificationName}, st.Categories[0].Subscriptions)

	for _, c := range []struct {
		stream string
		lane   lanes.Lane
		ids    []string
	}{{stream, lanes.Primary, pids}, {backfill, lanes.Backfill, bids}} {
		l := lane(t, st, c.stream)
		n := int64(len(c.ids))
		assert.Equal(t, c.lane, l.Lane)
		assert.True(t, l.Enabled)
		assert.True(t, l.Exists)
		assert.Equal(t, n, l.Length, c.stream)
		assert.Equal(t, n, l.Lag, c.stream)
		assert.Equal(t, n, l.Unhandled, c.stream)
		assert.Zero(t, l.Pending)
		assert.Equal(t, c.ids[0], l.OldestUnhandledID)
		assert.GreaterOrEqual(t, l.OldestUnhandledAge, 0.0)
		assert.Equal(t, c.stream+":dlq", l.DLQStream)
		assert.Zero(t, l.DLQDepth)
		assert.Empty(t, l.MissingGroups)
		assert.Equal(t, []string{customers.ProjectorName, customers.NotificationName}, groupNames(l))
		assert.Zero(t, l.Consumers, "a graceful stop deletes the consumers that hold nothing")
		for _, g := range l.Groups {
			assert.True(t, g.Expected)
			assert.Equal(t, n, g.Lag)
			assert.Equal(t, c.ids[0], g.OldestUnhandledID)
		}
	}
	cmd := lane(t, st, "customer:command:backfill")
	assert.Equal(t, []string{laneway.CommandGroup}, groupNames(cmd))

	// --stream narrows to one category; the text view shows the same.
	st = e.status("--stream", backfill)
	require.Len(t, st.Categories, 1)
	code, out, errs := e.runCLI(nil, "lanes", "status")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "lanes enabled")
	assert.Regexp(t, `customer:backfill\s+backfill\s+7\s+0\s+7\s`, out)
}

func TestLanesStatusLanesOffLeftovers(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})
	e.stopped()
	e.setLanes(false)
	e.xadd(backfill, 4)
	eng := e.startEngine() // lanes off: it does not read customer:backfill

	st := e.status()
	assert.False(t, st.LanesEnabled)
	require.Len(t, st.Engines, 1)
	assert.False(t, st.Engines[0].LanesEnabled)
	assert.True(t, st.Engines[0].FingerprintMatches)
	b := lane(t, st, backfill)
	assert.False(t, b.Enabled)
	assert.Equal(t, int64(4), b.Length)
	assert.Equal(t, int64(4), b.Lag)
	assert.Contains(t, b.Warning, "lanes are disabled but customer:backfill holds 4 unhandled entries")
	assert.Contains(t, st.Warnings, b.Warning)
	assert.True(t, lane(t, st, stream).Enabled)

	code, out, errs := e.runCLI(nil, "lanes", "status")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "WARNING: lanes are disabled but customer:backfill holds 4 unhandled entries that no engine will read")

	eng.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng.wait(t, wait))
}

func TestLanesStatusNoEngineEver(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})
	ids := e.xadd(stream, 3)

	st := e.status()
	assert.Empty(t, st.Engines)
	p := lane(t, st, stream)
	assert.True(t, p.Exists)
	assert.Equal(t, int64(3), p.Length)
	assert.Equal(t, int64(3), p.Lag, "no group has read anything")
	assert.Equal(t, int64(3), p.Unhandled)
	assert.Equal(t, ids[0], p.OldestUnhandledID)
	assert.Empty(t, p.Groups)
	assert.Equal(t, []string{customers.ProjectorName, customers.NotificationName}, p.MissingGroups)
	b := lane(t, st, backfill)
	assert.False(t, b.Exists)
	assert.Zero(t, b.Length)
	assert.Equal(t, []string{customers.ProjectorName, customers.NotificationName}, b.MissingGroups)
}

func TestLanesWatchPlainLines(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})
	e.stopped()
	e.xadd(backfill, 6)

	code, out, errs := e.runCLI(nil, "lanes", "watch", "--interval", "50ms", "--count", "3")
	require.Equal(t, 0, code, errs)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var bf []string
	for _, l := range lines {
		assert.NotContains(t, l, "\033[", "no terminal control codes when stdout is not a terminal")
		if strings.Contains(l, " stream=customer:backfill ") {
			bf = append(bf, l)
		}
	}
	require.Len(t, bf, 3, "one line per lane per refresh:\n%s", out)
	assert.Contains(t, bf[0], "lane=backfill enabled=true length=6 unhandled=6")
	assert.Contains(t, bf[0], "progress=0%")
	assert.Len(t, lines, 3*8, "8 lanes (4 categories × 2), 3 refreshes")
}

// doctor runs `laneway doctor --json` and returns its exit code and checks
// by id.
func (e *env) doctor(env map[string]string, args ...string) (int, map[string]inspect.Check) {
	e.t.Helper()
	code, out, errs := e.runCLI(env, append([]string{"doctor", "--json", "--sample", "300ms"}, args...)...)
	var rep struct {
		OK     bool            `json:"ok"`
		Checks []inspect.Check `json:"checks"`
		Pass   int             `json:"pass"`
		Warn   int             `json:"warn"`
		Fail   int             `json:"fail"`
	}
	require.NoError(e.t, json.Unmarshal([]byte(out), &rep), "stdout %q stderr %q", out, errs)
	checks := map[string]inspect.Check{}
	for _, c := range rep.Checks {
		checks[c.ID] = c
	}
	require.Len(e.t, checks, 11, out)
	assert.Equal(e.t, rep.Fail == 0, rep.OK)
	if rep.Fail > 0 {
		assert.Equal(e.t, 1, code, "exit 1 when a check fails")
		assert.Equal(e.t, fmt.Sprintf("laneway: doctor: %d check(s) failed\n", rep.Fail), errs)
	} else {
		assert.Equal(e.t, 0, code, errs)
	}
	return code, checks
}

func TestDoctorAllPass(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})
	app := e.openApp()
	eng := e.startEngine()
	register(t, app, 0, 20, 2)
	low := laneway.WithPriority(context.Background(), laneway.Low)
	for i := 20; i < 40; i++ {
		id := fmt.Sprintf("c%06d", i)
		require.NoError(t, app.Process(low, customers.RegisterCustomer{CustomerID: id, Name: id, Email: id + "@example.com"}))
	}
	require.Eventually(t, func() bool { return e.summaryCount() == 40 }, wait, tick)
	// Every group done with both lanes, so the draining check sees empty
	// lanes rather than a handler caught between the two samples.
	require.Eventually(t, func() bool {
		for _, s := range []string{stream, backfill} {
			for _, g := range e.groupInfo(s) {
				if g.Pending != 0 || g.Lag != 0 {
					return false
				}
			}
		}
		return true
	}, wait, tick)

	code, checks := e.doctor(nil)
	require.Equal(t, 0, code)
	for id, c := range checks {
		assert.Equal(t, inspect.Pass, c.Status, "%s: %s (fix: %s)", id, c.Detail, c.Fix)
		assert.Empty(t, c.Fix)
	}

	// With the engine running, status shows it and its active consumers.
	st := e.status()
	require.Len(t, st.Engines, 1)
	assert.True(t, st.Engines[0].FingerprintMatches)
	assert.Equal(t, int64(2), lane(t, st, backfill).Consumers)

	code, out, _ := e.runCLI(nil, "doctor", "--sample", "100ms")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "11 checks: 11 pass, 0 warn, 0 fail")

	eng.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng.wait(t, wait))
}

func TestDoctorLanesDisabled(t *testing.T) {
	e := newEnv(t, envParams{Lanes: false})
	_, checks := e.doctor(nil)
	c := checks["lanes_enabled"]
	assert.Equal(t, inspect.Warn, c.Status)
	assert.Contains(t, c.Detail, "priority lanes are disabled with no environment overlay")
	assert.Equal(t, "set enabled = true under [server.priority_lanes] in "+filepath.Join(e.dir, "domain.toml")+", then restart the engine", c.Fix)
}

func TestDoctorNoEngine(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})
	code, checks := e.doctor(nil)
	assert.Equal(t, 1, code)
	c := checks["engine"]
	assert.Equal(t, inspect.Fail, c.Status)
	assert.Contains(t, c.Detail, "no running engine of domain Customers")
	assert.Equal(t, "start the engine: laneway server --domain "+e.dir, c.Fix)
}

func TestDoctorEngineNotRestarted(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})
	eng := e.startEngine()
	e.editDomain("enabled = true", "enabled = true\nthreshold = 10")

	code, checks := e.doctor(nil)
	assert.Equal(t, 1, code)
	c := checks["engine"]
	assert.Equal(t, inspect.Fail, c.Status)
	assert.Contains(t, c.Detail, "runs lanes fingerprint")
	assert.Equal(t, "restart the engine: it still runs the lanes configuration it read when it started", c.Fix)

	eng.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng.wait(t, wait))
}

func TestDoctorMissingBackfillGroups(t *testing.T) {
	e := newEnv(t, envParams{Lanes: false})
	e.stopped() // groups on the primary streams only
	e.setLanes(true)

	_, checks := e.doctor(nil)
	c := checks["backfill_groups"]
	assert.Equal(t, inspect.Fail, c.Status)
	assert.Contains(t, c.Detail, "CustomerProjector on customer:backfill, NotificationHandler on customer:backfill")
	assert.Contains(t, c.Detail, "CommandDispatcher on customer:command:backfill")
	assert.Contains(t, c.Fix, "restart the engine with lanes enabled (it creates the groups at start)")
	assert.Contains(t, c.Fix, "redis-cli XGROUP CREATE customer:backfill CustomerProjector 0 MKSTREAM")
}

func TestDoctorBackfillNotDraining(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})
	e.stopped()
	e.xadd(backfill, 5)

	_, checks := e.doctor(nil)
	c := checks["backfill_draining"]
	assert.Equal(t, inspect.Fail, c.Status)
	assert.Contains(t, c.Detail, "customer:backfill: 5 unhandled")
	assert.Contains(t, c.Detail, "no running engine reads backfill lanes")
	assert.Equal(t, "start the engine with lanes enabled (laneway server --domain "+e.dir+"); it drains the backfill when primary is idle", c.Fix)
	assert.Equal(t, inspect.Pass, checks["backfill_groups"].Status)
}

func TestDoctorDLQReasonsAndUpcasters(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})
	ctx := context.Background()
	dlq := func(stream, typ string, version int, reason string) {
		env, err := envelope.Decode([]byte(eventEntry(t, typ, version, "d1")))
		require.NoError(t, err)
		b, err := envelope.NewDLQ(env, envelope.DLQMetadata{OriginalStream: strings.TrimSuffix(stream, ":dlq"), OriginalID: "1-0",
			ConsumerGroup: customers.ProjectorName, Consumer: "c1", FailedAt: time.Now().UTC().Format(time.RFC3339), RetryCount: 3, FailureReason: reason})
		require.NoError(t, err)
		require.NoError(t, e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"data": string(b)}}).Err())
	}
	dlq("customer:dlq", "CustomerRegistered", 1, "database is down")
	dlq("customer:dlq", "CustomerRegistered", 1, "database is down")
	dlq("customer:dlq", "CustomerRegistered", 1, "constraint violated")
	dlq("customer:backfill:dlq", "CustomerUpdated", 3, "upcast: event CustomerUpdated v3 is newer than this code knows (v2); deploy the newer code")

	_, checks := e.doctor(nil)
	c := checks["dlq"]
	assert.Equal(t, inspect.Warn, c.Status)
	assert.Contains(t, c.Detail, `customer:dlq: 3 entries: 2× "database is down" (CustomerProjector), 1× "constraint violated" (CustomerProjector)`)
	assert.Contains(t, c.Detail, "customer:backfill:dlq: 1 entries")
	assert.Contains(t, c.Fix, "laneway dlq list --stream customer:dlq")
	u := checks["upcasters"]
	assert.Equal(t, inspect.Fail, u.Status)
	assert.Contains(t, u.Detail, "customer:backfill:dlq: 1 entries of CustomerUpdated v3")
	assert.Equal(t, "CustomerUpdated v3 is newer than this code (v2): deploy the newer code, then replay", u.Fix)

	code, out, _ := e.runCLI(nil, "lanes", "status", "--json", "--stream", "customer:dlq")
	require.Equal(t, 0, code)
	var st inspect.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, int64(3), lane(t, st, stream).DLQDepth)
	assert.Equal(t, int64(1), lane(t, st, backfill).DLQDepth)
}

func TestDoctorBackfillLeftovers(t *testing.T) {
	e := newEnv(t, envParams{Lanes: false})
	e.xadd(backfill, 2)

	_, checks := e.doctor(nil)
	c := checks["backfill_leftovers"]
	assert.Equal(t, inspect.Warn, c.Status)
	assert.Equal(t, "lanes are disabled and no engine reads them: customer:backfill holds 2 unhandled entries", c.Detail)
	assert.Equal(t, "enable lanes (enabled = true under [server.priority_lanes]) and restart the engine to drain them", c.Fix)
}

func TestDoctorEmbeddedBrokerInProduction(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})
	e.editDomain(`provider = "redis"`, `provider = "embedded"`)
	e.editDomain("[outbox]", "[production.server.priority_lanes]\nenabled = true\n\n[outbox]")

	for name, env := range map[string]map[string]string{
		"LANEWAY_ENV": {"LANEWAY_ENV": "production"},
		"--env":       nil,
	} {
		t.Run(name, func(t *testing.T) {
			var args []string
			if env == nil {
				args = []string{"--env", "production"}
			}
			code, checks := e.doctor(env, args...)
			assert.Equal(t, 1, code, "no engine serves the embedded broker")
			c := checks["embedded_broker_production"]
			assert.Equal(t, inspect.Warn, c.Status)
			assert.Contains(t, c.Detail, "LANEWAY_ENV=production uses the embedded broker")
			assert.Equal(t, `set provider = "redis" and url = "redis://HOST:6379/0" under [production.brokers.default] in `+filepath.Join(e.dir, "domain.toml"), c.Fix)
			assert.Contains(t, checks["engine"].Detail, "the embedded broker lives inside the engine process")
		})
	}
	_, checks := e.doctor(nil)
	assert.Equal(t, inspect.Pass, checks["embedded_broker_production"].Status, "no overlay: not production")

	// With listen set, the tools reach a running engine's embedded broker.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	e.editDomain(`provider = "embedded"`, fmt.Sprintf("provider = \"embedded\"\nlisten = %q", addr))
	eng := e.startEngine()
	code, checks := e.doctor(nil, "--env", "production")
	assert.Equal(t, 0, code, "only a warning: %v", checks)
	assert.Equal(t, inspect.Warn, checks["embedded_broker_production"].Status)
	assert.Equal(t, inspect.Pass, checks["engine"].Status, checks["engine"].Detail)
	assert.Equal(t, inspect.Pass, checks["backfill_groups"].Status, checks["backfill_groups"].Detail)
	st := e.status()
	require.Len(t, st.Engines, 1)
	assert.Equal(t, []string{customers.ProjectorName, customers.NotificationName}, groupNames(lane(t, st, backfill)))
	eng.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng.wait(t, wait))

	// The stopped engine's port may be taken at once by another package's
	// server: the tools' error is checked on a port that stays refused.
	refused := testsvc.RefusedAddr(t)
	e.editDomain(fmt.Sprintf("listen = %q", addr), fmt.Sprintf("listen = %q", refused))
	code, _, errs := e.runCLI(nil, "lanes", "status")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "no engine serves the embedded broker on "+refused)
}

func TestOpsBadInput(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})
	unreachable := t.TempDir()
	toml, err := os.ReadFile(filepath.Join(e.dir, "domain.toml"))
	require.NoError(t, err)
	bad := strings.Replace(string(toml), e.redisURL, "redis://127.0.0.1:1/3", 1)
	require.NoError(t, os.WriteFile(filepath.Join(unreachable, "domain.toml"), []byte(bad), 0o644))

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"status unreachable Redis", []string{"lanes", "status", "--domain", unreachable}, "cannot reach Redis at 127.0.0.1:1"},
		{"watch unreachable Redis", []string{"lanes", "watch", "--count", "1", "--domain", unreachable}, "cannot reach Redis at 127.0.0.1:1"},
		{"doctor unreachable Redis", []string{"doctor", "--domain", unreachable}, "cannot reach Redis at 127.0.0.1:1"},
		{"status missing domain.toml", []string{"lanes", "status", "--domain", t.TempDir()}, "domain.toml"},
		{"doctor missing domain.toml", []string{"doctor", "--json", "--domain", t.TempDir()}, "domain.toml"},
		{"status unknown stream", []string{"lanes", "status", "--stream", "custmer"}, `unknown stream "custmer" in domain Customers: use one of customer, product, customer:command, product:command`},
		{"watch unknown stream", []string{"lanes", "watch", "--count", "1", "--stream", "nope"}, `unknown stream "nope"`},
		{"watch bad interval", []string{"lanes", "watch", "--interval", "0s"}, "--interval 0s: use a positive duration"},
		{"doctor bad sample", []string{"doctor", "--sample", "-1s"}, "--sample -1s: use a positive duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := e.runCLI(nil, c.args...)
			assert.Equal(t, 1, code)
			assert.Empty(t, out)
			assert.True(t, strings.HasPrefix(errs, "laneway: "), errs)
			assert.Equal(t, 1, strings.Count(errs, "\n"), "one line: %q", errs)
			assert.Contains(t, errs, c.want)
		})
	}
}
