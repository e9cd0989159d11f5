package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
)

// cli runs one `laneway` command with --domain e.dir and stdin (a pipe, so
// never a terminal; nil is an empty pipe). It returns the exit code and the
// outputs.
func (e *env) cli(stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	return runCLI(e.t, stdin, append(args, "--domain", e.dir)...)
}

func runCLI(t *testing.T, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LANEWAY_ENV=") {
			environ = append(environ, kv)
		}
	}
	cmd.Env = environ
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "laneway %v", args)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// requireUserError asserts exit 1 and one line on stderr containing want.
func requireUserError(t *testing.T, code int, stderr string, want ...string) {
	t.Helper()
	require.Equal(t, 1, code, "stderr: %s", stderr)
	require.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
	require.True(t, strings.HasPrefix(stderr, "laneway: "), stderr)
	require.NotContains(t, stderr, "goroutine")
	for _, w := range want {
		require.Contains(t, stderr, w)
	}
}

type dlqListJSON struct {
	Streams []struct {
		Stream string `json:"stream"`
		Lane   string `json:"lane"`
		Depth  int64  `json:"depth"`
	} `json:"streams"`
	Total   int64 `json:"total"`
	Entries []struct {
		Stream   string `json:"dlq_stream"`
		ID       string `json:"dlq_id"`
		Type     string `json:"type"`
		Metadata struct {
			OriginalStream string `json:"original_stream"`
			ConsumerGroup  string `json:"consumer_group"`
			Consumer       string `json:"consumer"`
			FailedAt       string `json:"failed_at"`
			RetryCount     int64  `json:"retry_count"`
			FailureReason  string `json:"failure_reason"`
		} `json:"metadata"`
	} `json:"entries"`
}

// poison makes CustomerProjector fail for one customer id, the way a real
// projection bug or a bad record does: the read model refuses the row. The
// returned func fixes it.
func (e *env) poison(id string) (fix func()) {
	e.t.Helper()
	ctx := context.Background()
	name := "e2e_poison_" + strings.ReplaceAll(id, "-", "_")
	e.pgMu.Lock()
	_, err := e.pg.Exec(ctx, fmt.Sprintf(`ALTER TABLE customer_summary ADD CONSTRAINT %s CHECK (customer_id <> '%s')`, name, id))
	e.pgMu.Unlock()
	require.NoError(e.t, err)
	return func() {
		e.pgMu.Lock()
		defer e.pgMu.Unlock()
		_, err := e.pg.Exec(ctx, `ALTER TABLE customer_summary DROP CONSTRAINT `+name)
		require.NoError(e.t, err)
	}
}

// TestDLQPoisonMessage: a message its handler keeps failing on is listed,
// inspected (reason shown, payload without _dlq_metadata), replayed to the
// lane it failed on once the handler is fixed, and handled; purge refuses
// without a terminal and without --yes, and empties the DLQ with --yes.
func TestDLQPoisonMessage(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envParams{Lanes: true})
	app := e.openApp()
	require.NoError(t, customers.Migrate(ctx, app))
	fix := e.poison("c-poison")
	eng := e.startEngine()

	// A backfill (LOW) registration that the projector cannot write.
	require.NoError(t, app.Process(ctx, customers.RegisterCustomer{CustomerID: "c-poison", Name: "Poison", Email: "p@example.com"},
		laneway.AtPriority(laneway.Low)))
	require.NoError(t, app.Process(ctx, customers.RegisterCustomer{CustomerID: "c-fine", Name: "Fine", Email: "f@example.com"}))
	require.Eventually(t, func() bool { return e.rdbLen(backfill+":dlq") == 1 && e.summaryCount() == 1 }, wait, tick)

	code, out, errs := e.cli(nil, "dlq", "list", "--json")
	require.Equal(t, 0, code, errs)
	var list dlqListJSON
	require.NoError(t, json.Unmarshal([]byte(out), &list), out)
	require.Len(t, list.Entries, 1, out)
	entry := list.Entries[0]
	assert.Equal(t, backfill+":dlq", entry.Stream)
	assert.Equal(t, backfill, entry.Metadata.OriginalStream)
	assert.Equal(t, customers.ProjectorName, entry.Metadata.ConsumerGroup)
	assert.Equal(t, int64(3), entry.Metadata.RetryCount)
	assert.Contains(t, entry.Metadata.FailureReason, "e2e_poison_c_poison")
	assert.Equal(t, "Customers.CustomerRegistered.v1", entry.Type)
	assert.Equal(t, int64(1), list.Total)
	_, err := time.Parse(time.RFC3339Nano, entry.Metadata.FailedAt)
	assert.NoError(t, err)

	code, out, errs = e.cli(nil, "dlq", "list")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, entry.ID)
	assert.Contains(t, out, "e2e_poison_c_poison")
	t.Logf("dlq list:\n%s", out)

	code, out, errs = e.cli(nil, "dlq", "inspect", entry.ID)
	require.Equal(t, 0, code, errs)
	t.Logf("dlq inspect:\n%s", out)
	assert.Contains(t, out, "failure reason:")
	assert.Contains(t, out, "e2e_poison_c_poison")
	assert.Regexp(t, `consumer group:\s+`+customers.ProjectorName, out)
	assert.Regexp(t, `replays to:\s+`+backfill+` `, out)
	assert.Contains(t, out, `"customer_id": "c-poison"`)
	assert.NotContains(t, out, "_dlq_metadata\"", "the payload is shown without its DLQ metadata")

	code, out, errs = e.cli(nil, "dlq", "inspect", entry.ID, "--json")
	require.Equal(t, 0, code, errs)
	var insp struct {
		Payload  map[string]json.RawMessage `json:"payload"`
		Metadata struct {
			FailureReason string `json:"failure_reason"`
		} `json:"metadata"`
		ReplayTarget string `json:"replay_target"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &insp), out)
	assert.NotContains(t, insp.Payload, "_dlq_metadata")
	assert.Contains(t, insp.Payload, "data")
	assert.Contains(t, insp.Payload, "metadata")
	assert.Contains(t, insp.Metadata.FailureReason, "check constraint")
	assert.Equal(t, backfill, insp.ReplayTarget)

	// Fix the handler, replay: back to the backfill lane, and handled.
	fix()
	readBefore := e.groupInfo(backfill)[customers.ProjectorName].EntriesRead
	code, out, errs = e.cli(nil, "dlq", "replay", entry.ID)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "to "+backfill+" ")
	require.Eventually(t, func() bool {
		return e.count(`SELECT count(*) FROM customer_summary WHERE customer_id = 'c-poison'`) == 1
	}, wait, tick)
	assert.Equal(t, readBefore+1, e.groupInfo(backfill)[customers.ProjectorName].EntriesRead,
		"the projector read the replayed entry from the backfill lane")
	assert.Zero(t, e.rdbLen(backfill+":dlq"))

	// Replaying the same id again: it is gone.
	code, _, errs = e.cli(nil, "dlq", "replay", entry.ID)
	requireUserError(t, code, errs, "no such DLQ entry", entry.ID)

	// A second poison message, then purge.
	e.poison("c-poison-2")
	require.NoError(t, app.Process(ctx, customers.RegisterCustomer{CustomerID: "c-poison-2", Name: "Poison 2", Email: "p2@example.com"}))
	require.Eventually(t, func() bool { return e.rdbLen(stream+":dlq") == 1 }, wait, tick)

	for _, in := range []string{"", "y\n"} { // a piped "y" is not a confirmation
		code, out, errs = e.cli(strings.NewReader(in), "dlq", "purge", "--stream", stream)
		requireUserError(t, code, errs, "--yes", "not a terminal")
		assert.Empty(t, out)
		assert.Equal(t, int64(1), e.rdbLen(stream+":dlq"), "a refused purge deletes nothing")
	}
	code, _, errs = e.cli(nil, "dlq", "replay-all", "--stream", stream)
	requireUserError(t, code, errs, "--yes")
	assert.Equal(t, int64(1), e.rdbLen(stream+":dlq"))

	code, out, errs = e.cli(nil, "dlq", "purge", "--stream", stream, "--yes")
	require.Equal(t, 0, code, errs)
	assert.Equal(t, "Purged 1 entry from customer:dlq.\n", out)
	assert.Zero(t, e.rdbLen(stream+":dlq"))

	eng.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng.wait(t, wait))
}

// TestDLQBadInput: every user error is one clear line and exit 1.
func TestDLQBadInput(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})

	code, _, errs := e.cli(nil, "dlq", "list", "--stream", "orders")
	requireUserError(t, code, errs, `unknown stream "orders"`, "customer:dlq", "customer:backfill:dlq")
	code, _, errs = e.cli(nil, "dlq", "purge", "--stream", "orders", "--yes")
	requireUserError(t, code, errs, `unknown stream "orders"`)
	code, _, errs = e.cli(nil, "dlq", "inspect", "1700000000000-0")
	requireUserError(t, code, errs, "no such DLQ entry", "1700000000000-0")
	code, _, errs = e.cli(nil, "dlq", "replay", "not-an-id")
	requireUserError(t, code, errs, `"not-an-id"`, "not a stream entry id")
	code, _, errs = e.cli(nil, "dlq", "replay", "1700000000000-0", "--to", "sideways")
	requireUserError(t, code, errs, `--to "sideways": use original, primary or backfill`)
	code, _, errs = e.cli(nil, "dlq", "replay-all", "--yes")
	requireUserError(t, code, errs, `"stream" not set`)

	code, _, errs = runCLI(t, nil, "dlq", "list", "--domain", t.TempDir())
	requireUserError(t, code, errs, "domain.toml")

	down := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(down, "domain.toml"), []byte(`name = "Customers"
[brokers.default]
provider = "redis"
url = "redis://127.0.0.1:1/0"
`), 0o644))
	code, _, errs = runCLI(t, nil, "dlq", "list", "--domain", down)
	requireUserError(t, code, errs, "cannot reach Redis at 127.0.0.1:1")
	code, _, errs = runCLI(t, nil, "dlq", "purge", "--stream", "customer", "--yes", "--domain", down)
	requireUserError(t, code, errs, "cannot reach Redis")
}

type outboxStatusJSON struct {
	Total      int64            `json:"total"`
	ByStatus   map[string]int64 `json:"by_status"`
	ByPriority []struct {
		Priority int              `json:"priority"`
		Name     string           `json:"name"`
		Total    int64            `json:"total"`
		ByStatus map[string]int64 `json:"by_status"`
	} `json:"by_priority"`
	OldestPendingAt  *time.Time `json:"oldest_pending_at"`
	OldestPendingAge *float64   `json:"oldest_pending_age_seconds"`
}

// TestOutboxCommands: status counts by status and priority, list shows
// the last error, retry --abandoned refuses without a terminal and
// without --yes, retry resets rows that the engine then publishes.
func TestOutboxCommands(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envParams{Lanes: true})
	app := e.openApp()
	for i, p := range []laneway.Priority{laneway.High, laneway.Normal, laneway.Low, laneway.Low} {
		id := fmt.Sprintf("o%d", i)
		require.NoError(t, app.Process(ctx, customers.RegisterCustomer{CustomerID: id, Name: id, Email: id + "@example.com"}, laneway.AtPriority(p)))
	}
	// What the relay leaves after Redis was unreachable for too long: two
	// LOW rows abandoned, the NORMAL one failed and waiting for an hour.
	e.pgMu.Lock()
	_, err := e.pg.Exec(ctx, `UPDATE outbox SET status = 'abandoned', retry_count = 5, last_error = 'redis: connection refused' WHERE priority = -50`)
	require.NoError(t, err)
	_, err = e.pg.Exec(ctx, `UPDATE outbox SET status = 'failed', retry_count = 2, last_error = 'redis: i/o timeout', next_retry_at = now() + interval '1 hour' WHERE priority = 0`)
	e.pgMu.Unlock()
	require.NoError(t, err)

	code, out, errs := e.cli(nil, "outbox", "status", "--json")
	require.Equal(t, 0, code, errs)
	var st outboxStatusJSON
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	assert.Equal(t, int64(4), st.Total)
	assert.Equal(t, map[string]int64{"pending": 1, "processing": 0, "published": 0, "failed": 1, "abandoned": 2}, st.ByStatus)
	require.Len(t, st.ByPriority, 3)
	assert.Equal(t, 50, st.ByPriority[0].Priority)
	assert.Equal(t, "HIGH", st.ByPriority[0].Name)
	assert.Equal(t, -50, st.ByPriority[2].Priority)
	assert.Equal(t, int64(2), st.ByPriority[2].ByStatus["abandoned"])
	require.NotNil(t, st.OldestPendingAt)
	require.NotNil(t, st.OldestPendingAge)
	assert.GreaterOrEqual(t, *st.OldestPendingAge, 0.0)

	code, out, errs = e.cli(nil, "outbox", "status")
	require.Equal(t, 0, code, errs)
	t.Logf("outbox status:\n%s", out)
	assert.Contains(t, out, "LOW (-50)")
	assert.Contains(t, out, "2 abandoned rows")

	code, out, errs = e.cli(nil, "outbox", "list", "--status", "abandoned", "--json")
	require.Equal(t, 0, code, errs)
	var rows []struct {
		ID        int64  `json:"id"`
		Status    string `json:"status"`
		Priority  int    `json:"priority"`
		LastError string `json:"last_error"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
	require.Len(t, rows, 2)
	for _, r := range rows {
		assert.Equal(t, "abandoned", r.Status)
		assert.Equal(t, -50, r.Priority)
		assert.Equal(t, "redis: connection refused", r.LastError)
	}
	code, out, errs = e.cli(nil, "outbox", "list")
	require.Equal(t, 0, code, errs)
	t.Logf("outbox list:\n%s", out)
	assert.Contains(t, out, "redis: i/o timeout")

	code, _, errs = e.cli(strings.NewReader("yes\n"), "outbox", "retry", "--abandoned")
	requireUserError(t, code, errs, "--yes", "not a terminal")
	assert.Equal(t, 2, e.count(`SELECT count(*) FROM outbox WHERE status = 'abandoned'`), "a refused retry changes nothing")

	code, out, errs = e.cli(nil, "outbox", "retry", "--abandoned", "--yes")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "Reset 2 abandoned rows to pending")
	assert.Equal(t, 2, e.count(`SELECT count(*) FROM outbox WHERE status = 'pending' AND retry_count = 0 AND priority = -50 AND next_retry_at IS NULL`))

	var failedID int64
	e.pgMu.Lock()
	require.NoError(t, e.pg.QueryRow(ctx, `SELECT id FROM outbox WHERE status = 'failed'`).Scan(&failedID))
	e.pgMu.Unlock()
	code, out, errs = e.cli(nil, "outbox", "retry", fmt.Sprint(failedID))
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, fmt.Sprintf("Reset row %d to pending", failedID))

	// Bad input.
	code, _, errs = e.cli(nil, "outbox", "retry", fmt.Sprint(failedID)) // now pending
	requireUserError(t, code, errs, fmt.Sprintf("no failed or abandoned outbox row with id %d", failedID))
	code, _, errs = e.cli(nil, "outbox", "retry", "abc")
	requireUserError(t, code, errs, `outbox id "abc"`)
	code, _, errs = e.cli(nil, "outbox", "retry")
	requireUserError(t, code, errs, "--abandoned")
	code, _, errs = e.cli(nil, "outbox", "list", "--status", "lost")
	requireUserError(t, code, errs, `--status "lost"`)

	eng := e.startEngine()
	require.Eventually(t, func() bool { return e.summaryCount() == 4 }, wait, tick)
	require.Eventually(t, func() bool {
		code, out, _ := e.cli(nil, "outbox", "status", "--json")
		var st outboxStatusJSON
		return code == 0 && json.Unmarshal([]byte(out), &st) == nil && st.ByStatus["published"] == 4 && st.OldestPendingAt == nil
	}, wait, 100*time.Millisecond)
	assert.Equal(t, 2, e.count(`SELECT count(*) FROM outbox WHERE published_stream = $1`, backfill), "retried LOW rows still take the backfill lane")
	eng.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng.wait(t, wait))
}
