package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/tools/syncio"
)

const dashToken = "e2e-dashboard-token-0123456789"

// TestDashboardInBrowser drives the dashboard of a running `laneway
// server` in headless chromium: a dead letter made by a failing handler is
// found, inspected, refused without the token and replayed with it, then
// handled; a backfill drains while the lanes page watches its numbers and
// chart fall; an abandoned outbox row is retried from the outbox page; the
// doctor page runs its checks. No page logs a console error.
func TestDashboardInBrowser(t *testing.T) {
	ctx := context.Background()
	t.Setenv("LANEWAY_UI_TOKEN", dashToken)
	e := newEnv(t, envParams{Lanes: true, HTTP: true, Concurrency: 2})
	app := e.openApp()
	require.NoError(t, customers.Migrate(ctx, app))
	eng := e.startEngine("--ui-write")
	base := "http://" + eng.httpAddr(t)
	shots := screenshotDir(t)
	browser := func(step string, env map[string]string) {
		t.Helper()
		all := map[string]string{"BASE": base, "TOKEN": dashToken, "SHOTS": shots}
		for k, v := range env {
			all[k] = v
		}
		runBrowser(t, all, "dashboard.mjs", step)
	}

	// A dead letter: the projector cannot write c-poison (a backfill
	// registration); once the cause is fixed, the page replays it.
	fix := e.poison("c-poison")
	require.NoError(t, app.Process(ctx, customers.RegisterCustomer{CustomerID: "c-poison", Name: "Poison", Email: "p@example.com"},
		laneway.AtPriority(laneway.Low)))
	require.Eventually(t, func() bool { return e.rdbLen(backfill+":dlq") == 1 }, wait, tick)
	fix()
	browser("dlq", map[string]string{"HANDLER": customers.ProjectorName, "REASON": "e2e_poison_c_poison", "PAYLOAD": `"customer_id": "c-poison"`})
	require.Eventually(t, func() bool {
		return e.count(`SELECT count(*) FROM customer_summary WHERE customer_id = 'c-poison'`) == 1
	}, wait, tick, "the replayed entry is handled")
	assert.Zero(t, e.rdbLen(backfill+":dlq"))
	eng.logged(t, `msg="dashboard write refused" action=dlq.replay .*reason="missing write token`)
	eng.logged(t, `msg="dashboard write" action=dlq.replay .*dlq_id=\d+-\d+ dlq_stream=customer:backfill:dlq target=customer:backfill new_id=\d+-\d+`)

	// A backfill that takes a while to drain: every projection waits 10 ms
	// in the database, so 1200 of them take at least 12 s on the one slot
	// backfill may use (of two), whatever the machine's speed, and the page
	// sees them go down across several refreshes.
	_, err := e.pg.Exec(ctx, `CREATE FUNCTION e2e_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.01); RETURN NEW; END $$;
		CREATE TRIGGER e2e_slow BEFORE INSERT ON customer_summary FOR EACH ROW EXECUTE FUNCTION e2e_slow()`)
	require.NoError(t, err)
	const n = 1200
	before := e.rdbLen(backfill) // the c-poison registration is in the stream already
	cmds := make([]laneway.Command, 0, 100)
	for lo := 0; lo < n; lo += 100 {
		cmds = cmds[:0]
		for i := lo; i < lo+100; i++ {
			id := fmt.Sprintf("bf%05d", i)
			cmds = append(cmds, customers.RegisterCustomer{CustomerID: id, Name: "Backfill " + id, Email: id + "@example.com"})
		}
		require.NoError(t, app.ProcessBatch(laneway.WithPriority(ctx, laneway.Low), cmds))
	}
	// Half the rows relayed before the page looks, so that it starts on a
	// backlog (the relay takes well under a second for all of them; the
	// drain at least 12 s). Not all: trimming may shorten the stream. The
	// page may still show a sample taken before them: the script waits for
	// its first positive reading.
	require.Eventually(t, func() bool { return e.rdbLen(backfill) >= before+n/2 }, wait, tick)
	browser("lanes", nil)
	assert.Equal(t, n+1, e.summaryCount(), "every backfill registration was projected")

	// An abandoned outbox row, retried from the outbox page.
	const lastErr = "simulated: the broker refused the publish"
	var rowID int64
	require.NoError(t, e.pg.QueryRow(ctx, `UPDATE outbox SET status = 'abandoned', retry_count = 5, last_error = $1
		WHERE id = (SELECT min(id) FROM outbox) RETURNING id`, lastErr).Scan(&rowID))
	browser("pages", map[string]string{"RETRY_ID": fmt.Sprint(rowID), "LAST_ERROR": lastErr})
	assert.Zero(t, e.count(`SELECT count(*) FROM outbox WHERE status = 'abandoned'`))
	eng.logged(t, fmt.Sprintf(`msg="dashboard write" action=outbox.retry .*outbox_id=%d abandoned=false reset=1`, rowID))
}

// TestDashboardWriteGuards sends writes straight at the endpoints of a
// server started with writes enabled: without the token, with a wrong one,
// from another origin or site, as a form post, or as a GET, nothing is
// done; and a read-only server refuses every write.
func TestDashboardWriteGuards(t *testing.T) {
	ctx := context.Background()
	t.Setenv("LANEWAY_UI_TOKEN", dashToken)
	e := newEnv(t, envParams{Lanes: true, HTTP: true})
	app := e.openApp()
	require.NoError(t, customers.Migrate(ctx, app))
	fix := e.poison("c-guard")
	eng := e.startEngine("--ui-write")
	base := "http://" + eng.httpAddr(t)
	require.NoError(t, app.Process(ctx, customers.RegisterCustomer{CustomerID: "c-guard", Name: "Guard", Email: "g@example.com"}))
	require.Eventually(t, func() bool { return e.rdbLen(stream+":dlq") == 1 }, wait, tick)
	fix()

	body := `{"stream":"customer:dlq"}`
	cases := map[string]struct {
		method  string
		headers map[string]string
		status  int
		want    string
	}{
		"no token":           {"POST", map[string]string{"Content-Type": "application/json"}, 401, "missing write token"},
		"wrong token":        {"POST", map[string]string{"Content-Type": "application/json", "X-Laneway-Token": "not-the-token-at-all"}, 401, "wrong write token"},
		"other origin":       {"POST", map[string]string{"Content-Type": "application/json", "X-Laneway-Token": dashToken, "Origin": "http://evil.example"}, 403, "cross-origin"},
		"cross-site fetch":   {"POST", map[string]string{"Content-Type": "application/json", "X-Laneway-Token": dashToken, "Sec-Fetch-Site": "cross-site"}, 403, "cross-site"},
		"form post":          {"POST", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Laneway-Token": dashToken}, 415, "application/json"},
		"GET is not a write": {"GET", map[string]string{"X-Laneway-Token": dashToken}, 405, "POST"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			status, got := httpDo(t, c.method, base+"/ui/api/dlq/purge", body, c.headers)
			assert.Equal(t, c.status, status, got)
			assert.Contains(t, got, c.want)
			assert.Equal(t, int64(1), e.rdbLen(stream+":dlq"), "a refused write touched the DLQ")
		})
	}
	status, got := httpDo(t, "POST", base+"/ui/api/dlq/purge", body, map[string]string{
		"Content-Type": "application/json", "X-Laneway-Token": dashToken, "Origin": base, "Sec-Fetch-Site": "same-origin"})
	require.Equal(t, 200, status, got)
	assert.JSONEq(t, `{"dlq_stream":"customer:dlq","purged":1}`, got)
	assert.Zero(t, e.rdbLen(stream+":dlq"))
	eng.logged(t, `msg="dashboard write" action=dlq.purge .*dlq_stream=customer:dlq purged=1`)

	// Writes are off by default, token or not.
	eng.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, eng.wait(t, 30*time.Second))
	ro := e.startEngine()
	status, got = httpDo(t, "POST", "http://"+ro.httpAddr(t)+"/ui/api/dlq/purge", body, map[string]string{
		"Content-Type": "application/json", "X-Laneway-Token": dashToken})
	assert.Equal(t, 403, status, got)
	assert.Contains(t, got, "writes are disabled")

	// --ui-write without a token is a start-up error naming the fix.
	t.Setenv("LANEWAY_UI_TOKEN", "short")
	code, _, errs := e.runCLI(nil, "server", "--ui-write")
	requireUserError(t, code, errs, "LANEWAY_UI_TOKEN", "at least 16 characters")
}

func httpDo(t *testing.T, method, url, body string, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	status, body := httpDo(t, "GET", url, "", nil)
	require.Equal(t, 200, status, "GET %s: %s", url, body)
	return body
}

// TestDashboardStandaloneSameAsCLI runs `laneway dashboard` with no engine
// running and compares each JSON endpoint with the CLI's --json for the
// same state (times and ages aside).
func TestDashboardStandaloneSameAsCLI(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envParams{Lanes: true})
	app := e.openApp()
	require.NoError(t, customers.Migrate(ctx, app))
	fix := e.poison("c-cli")
	eng := e.startEngine()
	require.NoError(t, app.Process(ctx, customers.RegisterCustomer{CustomerID: "c-cli", Name: "Cli", Email: "c@example.com"}, laneway.AtPriority(laneway.Low)))
	require.Eventually(t, func() bool { return e.rdbLen(backfill+":dlq") == 1 }, wait, tick)
	fix()
	eng.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, eng.wait(t, 30*time.Second))
	// Work the engine has not seen: commands in the outbox, none relayed.
	register(t, app, 0, 5, 1)

	base := startDashboard(t, e)
	same := func(path string, args ...string) {
		t.Helper()
		code, out, errs := e.runCLI(nil, append(args, "--json")...)
		require.Equal(t, 0, code, errs)
		assert.Equal(t, normalize(t, out), normalize(t, httpGet(t, base+path)), "%s vs laneway %s --json", path, strings.Join(args, " "))
	}
	same("/ui/api/lanes/status", "lanes", "status")
	same("/ui/api/lanes/status?stream=customer:backfill", "lanes", "status", "--stream", "customer:backfill")
	same("/ui/api/dlq/list", "dlq", "list")
	same("/ui/api/dlq/list?handler="+customers.ProjectorName+"&reason=E2E_POISON&limit=5", "dlq", "list", "--handler", customers.ProjectorName, "--reason", "E2E_POISON", "--limit", "5")
	same("/ui/api/dlq/list?type=nothing-like-this", "dlq", "list", "--type", "nothing-like-this")
	same("/ui/api/outbox/status", "outbox", "status")
	same("/ui/api/outbox/list?status=pending", "outbox", "list", "--status", "pending")
	var list struct {
		Entries []struct {
			ID string `json:"dlq_id"`
		} `json:"entries"`
	}
	require.NoError(t, json.Unmarshal([]byte(httpGet(t, base+"/ui/api/dlq/list")), &list))
	require.Len(t, list.Entries, 1)
	same("/ui/api/dlq/inspect?id="+list.Entries[0].ID, "dlq", "inspect", list.Entries[0].ID)
	// doctor exits 1 here (no engine): compare its checks, not its code.
	_, out, _ := e.runCLI(nil, "doctor", "--json", "--sample", "100ms")
	assert.Equal(t, normalize(t, out), normalize(t, httpGet(t, base+"/ui/api/doctor?sample=100ms")))

	page := httpGet(t, base+"/ui/lanes")
	assert.Contains(t, page, "No running engine of this domain")

	// An engine that runs another lanes configuration than the file's
	// stands out, as in doctor.
	hb, err := json.Marshal(laneway.Heartbeat{ID: "old-engine", Host: "h", PID: 1, StartedAt: time.Now().UTC(), Domain: customers.DomainName,
		LanesFingerprint: "0000000000000000", LanesEnabled: true})
	require.NoError(t, err)
	require.NoError(t, e.rdb.Set(ctx, laneway.HeartbeatPrefix+"old-engine", hb, time.Minute).Err())
	mismatch := regexp.MustCompile(`(?s)<tr class="mismatch">.*old-engine.*DIFFERS from the file \([0-9a-f]+\): restart it`)
	require.Eventually(t, func() bool { // the page shows the sampler's latest snapshot
		return mismatch.MatchString(httpGet(t, base+"/ui/lanes?fragment=1"))
	}, wait, tick)
	status, got := httpDo(t, "GET", base+"/ui/api/dlq/list?stream=nope", "", nil)
	assert.Equal(t, 400, status)
	assert.Contains(t, got, `unknown stream`)
	status, got = httpDo(t, "POST", base+"/ui/api/dlq/replay", `{"id":"`+list.Entries[0].ID+`"}`, map[string]string{"Content-Type": "application/json"})
	assert.Equal(t, 403, status)
	assert.Contains(t, got, "read-only")
}

// startDashboard runs `laneway dashboard` on a free port and returns its
// base URL; it is stopped at cleanup.
func startDashboard(t *testing.T, e *env, extra ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"dashboard", "--domain", e.dir, "--listen", "127.0.0.1:0"}, extra...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LANEWAY_ENV=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out := &syncio.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("dashboard output:\n%s", out.String())
		}
	})
	re := regexp.MustCompile(`url=(http://[0-9.:]+)/ui/`)
	var base string
	require.Eventually(t, func() bool {
		m := re.FindStringSubmatch(out.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	}, 30*time.Second, 20*time.Millisecond, "dashboard start line")
	return base
}

// normalize decodes JSON and blanks what differs between two reads of the
// same state: snapshot times and ages.
func normalize(t *testing.T, s string) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal([]byte(s), &v), s)
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if k == "taken_at" || strings.HasSuffix(k, "_age_seconds") || k == "detail" && strings.Contains(fmt.Sprint(val), "old)") {
					x[k] = "-"
					continue
				}
				x[k] = walk(val)
			}
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		}
		return v
	}
	return walk(v)
}
