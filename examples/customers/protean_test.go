package customers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaytest"
)

// proteanData holds the golden entries a Protean service of this domain
// writes (see its README) and the verifier of Protean's reading rules.
const proteanData = "../../internal/protean/testdata"

// goldenEntry is one fixture: the exact bytes of the data field and the
// lane Protean's outbox put it on.
type goldenEntry struct {
	file, lane, id string
	data           string
}

func goldenEntries(t *testing.T) []goldenEntry {
	t.Helper()
	var out []goldenEntry
	for _, lane := range []string{"primary", "backfill"} {
		files, err := filepath.Glob(filepath.Join(proteanData, lane+"-*.json"))
		require.NoError(t, err)
		sort.Strings(files) // registration before update
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			env, err := envelope.Decode(b)
			require.NoError(t, err, f)
			out = append(out, goldenEntry{file: filepath.Base(f), lane: lane, id: env.Metadata.Headers.ID, data: string(b)})
		}
	}
	require.Len(t, out, 4, "fixtures in %s", proteanData)
	return out
}

// handledLog records every handler run with the priority the message
// carried into the handler.
type handledLog struct {
	mu   sync.Mutex
	runs map[string]laneway.Priority // "handler:message id" -> priority
}

func (l *handledLog) hook(handler string, m laneway.Meta) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runs == nil {
		l.runs = map[string]laneway.Priority{}
	}
	l.runs[handler+":"+m.ID] = m.Priority
}

func (l *handledLog) get(key string) (laneway.Priority, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.runs[key]
	return p, ok
}

// TestProteanGoldenEntries: the entries a Protean service writes, LOW
// priority and non-ASCII payloads included, are decoded and handled by both
// handlers of this domain on both lanes, nothing is dead-lettered, and
// backfill entries (Protean stamps priority 0 on every event) propagate
// below the threshold.
func TestProteanGoldenEntries(t *testing.T) {
	t.Parallel()
	for _, naming := range []struct{ scheme, prefix string }{{"laneway", ""}, {"protean", "customers::"}} {
		t.Run(naming.scheme, func(t *testing.T) {
			t.Parallel()
			goldenThroughEngine(t, naming.scheme, naming.prefix)
		})
	}
}

func goldenThroughEngine(t *testing.T, scheme, prefix string) {
	var log handledLog
	dom, err := customers.New(customers.Options{OnHandled: log.hook})
	require.NoError(t, err)
	h := lanewaytest.New(t, dom, lanewaytest.Options{Configure: func(cfg *lanewayconfig.Config) {
		cfg.Server.StreamNaming = scheme
	}})
	ctx := context.Background()
	require.NoError(t, customers.Migrate(ctx, h.App))

	lanes := map[string]string{"primary": prefix + "customer", "backfill": prefix + "customer:backfill"}
	entries := goldenEntries(t)
	for _, e := range entries {
		_, err := h.Broker.Publish(ctx, []lanewaybroker.Publication{{Stream: lanes[e.lane], Data: e.data}})
		require.NoError(t, err)
	}
	h.Drain(t)

	for _, e := range entries {
		for _, handler := range []string{customers.ProjectorName, customers.NotificationName} {
			p, ok := log.get(handler + ":" + e.id)
			require.True(t, ok, "%s did not handle %s (%s)", handler, e.id, e.file)
			want := laneway.Normal
			if e.lane == "backfill" {
				want = laneway.Priority(-1) // threshold 0 - 1
			}
			assert.Equal(t, want, p, "%s: priority %s handled %s under", e.file, handler, e.id)
		}
	}
	assert.Equal(t, summary{"Zoë Ångström", "zoe@example.com", "gold"}, readSummary(t, h.App, "c-pr-1"))
	assert.Equal(t, summary{"José Müller – 山田", "jose@example.com", "platinum"}, readSummary(t, h.App, "c-bf-1"))
	for _, s := range []string{"customer:dlq", "customer:backfill:dlq"} {
		assert.Zero(t, h.Len(t, prefix+s), "nothing may be dead-lettered in %s", prefix+s)
	}
	streams, err := h.Broker.Streams(ctx, "*")
	require.NoError(t, err)
	for _, s := range streams {
		assert.True(t, strings.HasPrefix(s, prefix), "stream %s is not named by the %s scheme", s, scheme)
	}
}

// verify runs the Protean rules verifier on entries and returns its exit
// code and output.
func verify(t *testing.T, entries []lanewaybroker.Entry, stream string) (int, string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	require.NoError(t, err, "python3 is needed to check entries against Protean's rules: apt-get install python3")
	var in bytes.Buffer
	for _, e := range entries {
		b, err := json.Marshal(map[string]string{"stream": stream, "data": e.Data})
		require.NoError(t, err)
		in.Write(append(b, '\n'))
	}
	cmd := exec.Command(py, filepath.Join(proteanData, "protean_verify.py"))
	cmd.Stdin = &in
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "run the verifier: %s", out)
		return exit.ExitCode(), string(out)
	}
	return 0, string(out)
}

// TestLanewayEntriesPassProteanRules: the events and async commands the
// engine writes, on both lanes, NORMAL, LOW and BULK, non-ASCII included,
// pass Protean's reading rules (checksum recomputed the way Protean does);
// a tampered entry does not.
func TestLanewayEntriesPassProteanRules(t *testing.T) {
	t.Parallel()
	for _, naming := range []struct{ scheme, prefix string }{{"laneway", ""}, {"protean", "customers::"}} {
		t.Run(naming.scheme, func(t *testing.T) {
			t.Parallel()
			lanewayEntriesPassProteanRules(t, naming.scheme, naming.prefix)
		})
	}
}

func lanewayEntriesPassProteanRules(t *testing.T, scheme, prefix string) {
	dom, err := customers.New(customers.Options{})
	require.NoError(t, err)
	const watcher = "protean_verifier" // never reads: keeps every entry from retention
	h := lanewaytest.New(t, dom, lanewaytest.Options{Configure: func(cfg *lanewayconfig.Config) {
		cfg.CommandProcessing = lanewayconfig.CommandProcessingAsync
		cfg.Server.StreamNaming = scheme
	}})
	ctx := context.Background()
	streams := []string{"customer", "customer:backfill", "customer:command", "customer:command:backfill", "product:backfill"}
	for i, s := range streams {
		streams[i] = prefix + s
	}
	for _, s := range streams {
		require.NoError(t, h.Broker.EnsureGroup(ctx, s, watcher))
	}
	h.Process(t, ctx, customers.RegisterCustomer{CustomerID: "c1", Name: "Zoë Ångström – 山田", Email: "zoe@example.com"})
	require.Eventually(t, func() bool { return h.Len(t, prefix+"customer") >= 1 }, 30*time.Second, 10*time.Millisecond)
	low := laneway.WithPriority(ctx, laneway.Low)
	h.Process(t, low, customers.UpdateCustomer{CustomerID: "c1", LoyaltyTier: "gold <&> \"quoted\""})
	h.Process(t, ctx, customers.ReindexProduct{ProductID: "SKU-ü"}, laneway.AtPriority(laneway.Bulk))

	for _, s := range streams {
		require.Eventually(t, func() bool { return h.Len(t, s) >= 1 }, 30*time.Second, 10*time.Millisecond, "entries on %s", s)
	}
	total := 0
	for _, s := range streams {
		es := h.Entries(t, s)
		total += len(es)
		code, out := verify(t, es, s)
		assert.Equal(t, 0, code, "Protean's rules reject entries of %s:\n%s", s, out)
		assert.Contains(t, out, "0 failed")
	}
	assert.GreaterOrEqual(t, total, 5)

	// The verifier can fail: the same entry with its payload changed after
	// the checksum was computed.
	es := h.Entries(t, prefix+"customer")
	bad := strings.Replace(es[0].Data, "zoe@example.com", "eve@example.com", 1)
	require.NotEqual(t, es[0].Data, bad)
	code, out := verify(t, []lanewaybroker.Entry{{ID: es[0].ID, Data: bad}}, prefix+"customer")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "checksum mismatch")
}
