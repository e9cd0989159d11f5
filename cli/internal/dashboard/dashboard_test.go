package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "0123456789abcdef-test"

// setup builds a dashboard over an embedded broker and a SQLite file.
func setup(t *testing.T, write bool) *Dashboard {
	t.Helper()
	ctx := context.Background()
	b, err := redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	st, err := sqlitestore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "app.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.NoError(t, st.Migrate(ctx))
	dom, err := customers.New(customers.Options{})
	require.NoError(t, err)
	cfg := lanewayconfig.Default()
	cfg.Name = customers.DomainName
	cfg.Server.PriorityLanes.Enabled = true
	d, err := New(Params{
		Config: cfg, Domain: dom, Write: write, Token: token, Interval: 10 * time.Millisecond,
		Broker: func(context.Context) (lanewaybroker.Broker, error) { return b, nil },
		Store:  func(context.Context) (lanewaystore.Store, error) { return st, nil },
	})
	require.NoError(t, err)
	return d
}

func TestNewRefusesWritesWithoutToken(t *testing.T) {
	d := setup(t, false)
	p := d.p
	p.Write, p.Token = true, "short"
	_, err := New(p)
	assert.ErrorIs(t, err, ErrToken)
}

func TestCheckWrite(t *testing.T) {
	rw := setup(t, true)
	ro := setup(t, false)
	json := map[string]string{"Content-Type": "application/json", TokenHeader: token}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range json {
			out[k] = v
		}
		for k, v := range extra {
			if v == "" {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}
	cases := map[string]struct {
		d       *Dashboard
		method  string
		headers map[string]string
		status  int // 0: allowed
	}{
		"token and JSON":               {rw, "POST", json, 0},
		"bearer token":                 {rw, "POST", with(map[string]string{TokenHeader: "", "Authorization": "Bearer " + token}), 0},
		"same origin":                  {rw, "POST", with(map[string]string{"Origin": "http://dash.test", "Sec-Fetch-Site": "same-origin"}), 0},
		"read-only":                    {ro, "POST", json, http.StatusForbidden},
		"GET":                          {rw, "GET", json, http.StatusMethodNotAllowed},
		"no token":                     {rw, "POST", with(map[string]string{TokenHeader: ""}), http.StatusUnauthorized},
		"wrong token":                  {rw, "POST", with(map[string]string{TokenHeader: token + "x"}), http.StatusUnauthorized},
		"other origin":                 {rw, "POST", with(map[string]string{"Origin": "http://evil.test"}), http.StatusForbidden},
		"origin with another port":     {rw, "POST", with(map[string]string{"Origin": "http://dash.test:8080"}), http.StatusForbidden},
		"cross-site":                   {rw, "POST", with(map[string]string{"Sec-Fetch-Site": "cross-site"}), http.StatusForbidden},
		"same-site is not same-origin": {rw, "POST", with(map[string]string{"Sec-Fetch-Site": "same-site"}), http.StatusForbidden},
		"form post":                    {rw, "POST", with(map[string]string{"Content-Type": "application/x-www-form-urlencoded"}), http.StatusUnsupportedMediaType},
		"text/plain":                   {rw, "POST", with(map[string]string{"Content-Type": "text/plain"}), http.StatusUnsupportedMediaType},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, "http://dash.test/ui/api/dlq/purge", strings.NewReader("{}"))
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			err := c.d.checkWrite(r)
			if c.status == 0 {
				assert.NoError(t, err)
				return
			}
			var ref errRefused
			require.True(t, errors.As(err, &ref), "want a refusal, got %v", err)
			assert.Equal(t, c.status, ref.status, ref.msg)
		})
	}
}

func TestHistoryKeepsTheWindow(t *testing.T) {
	h := newHistory(10 * time.Second)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	status := func(at time.Time, backlog int64) inspect.Status {
		return inspect.Status{TakenAt: at, Categories: []inspect.CategoryStatus{{Category: "c", Lanes: []inspect.LaneStatus{
			{Lane: lanes.Primary, Stream: "c"}, {Lane: lanes.Backfill, Stream: "c:backfill", Unhandled: backlog},
		}}}}
	}
	for i := range 20 {
		h.record(status(t0.Add(time.Duration(i)*time.Second), int64(1000-50*i)))
	}
	j := h.json(time.Second)
	require.Len(t, j.Times, 11, "samples older than keep are dropped")
	assert.Equal(t, float64(t0.Add(9*time.Second).Unix()), j.Times[0])
	col := j.Unhandled["c:backfill"]
	require.Len(t, col, 11)
	assert.Equal(t, int64(550), *col[0])
	assert.Equal(t, int64(50), *col[10])
	var drain DrainJSON
	for _, d := range j.Drains {
		if d.Stream == "c:backfill" {
			drain = d
		}
	}
	assert.Equal(t, int64(1000), drain.Peak)
	assert.InDelta(t, 50.0, drain.RatePerS, 0.001)
	assert.InDelta(t, 1.0, drain.ETASeconds, 0.001)
	assert.InDelta(t, 0.95, drain.Done, 0.001)

	h.fail(errors.New("redis down"), t0)
	assert.Equal(t, "redis down", h.json(time.Second).Error)
	h.record(status(t0.Add(21*time.Second), 0))
	assert.Empty(t, h.json(time.Second).Error, "a good sample clears the error")
}

// The sampler fills the history from the broker; Stop ends it. Every page
// renders with data in it (templates are checked only when executed).
func TestSamplerAndPages(t *testing.T) {
	d := setup(t, false)
	ctx := context.Background()
	b, err := d.p.Broker(ctx)
	require.NoError(t, err)
	data, err := envelope.NewDLQ(envelope.Envelope{Data: []byte(`{"customer_id":"c1"}`), Metadata: envelope.Metadata{
		Headers: envelope.Headers{ID: "m1", Type: "Customers.CustomerRegistered.v1", Stream: "customer-c1"},
		Domain:  envelope.Domain{Class: envelope.ClassEvent, StreamCategory: "customer", Version: 1},
	}}, envelope.DLQMetadata{OriginalStream: "customer:backfill", OriginalID: "1-0", ConsumerGroup: customers.ProjectorName,
		FailedAt: time.Now().UTC().Format(time.RFC3339), RetryCount: 3, FailureReason: "boom <b>not markup</b>"})
	require.NoError(t, err)
	ids, err := b.Publish(ctx, []lanewaybroker.Publication{{Stream: "customer:backfill:dlq", Data: string(data)}})
	require.NoError(t, err)
	st, err := d.p.Store(ctx)
	require.NoError(t, err)
	_, err = st.ListOutbox(ctx, lanewaystore.ListOutboxParams{Limit: 1}) // the outbox table exists
	require.NoError(t, err)
	d.Start(ctx)
	defer d.Stop()
	require.Eventually(t, func() bool { return len(d.hist.json(d.p.Interval).Times) >= 2 }, 10*time.Second, 5*time.Millisecond)

	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	get := func(path string) (int, http.Header, string) {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header, string(b)
	}
	for _, p := range []string{"/ui/lanes", "/ui/dlq", "/ui/dlq?handler=" + customers.ProjectorName, "/ui/dlq/entry?id=" + ids[0],
		"/ui/outbox", "/ui/doctor", "/ui/lanes?fragment=1", "/ui/dlq?fragment=1"} {
		code, h, body := get(p)
		assert.Equal(t, 200, code, "%s: %s", p, body)
		assert.Contains(t, h.Get("Content-Security-Policy"), "script-src 'self'", p)
		assert.NotContains(t, body, `class="error"`, "%s shows an error: %s", p, body)
	}
	_, _, body := get("/ui/dlq/entry?id=" + ids[0])
	assert.Contains(t, body, "boom &lt;b&gt;not markup&lt;/b&gt;", "the reason is shown, escaped")
	assert.Contains(t, body, `&#34;customer_id&#34;: &#34;c1&#34;`, "the payload is shown, indented")
	_, _, body = get("/ui/dlq?fragment=1")
	assert.Contains(t, body, `<tr data-stream="customer:backfill:dlq">`)
	assert.Contains(t, body, `<td>backfill</td><td>event</td>`)
	code, _, body := get("/ui/lanes?fragment=1")
	require.Equal(t, 200, code)
	assert.NotContains(t, body, "<html", "a fragment is the live part only")
	assert.Contains(t, body, `data-stream="customer:backfill"`)

	code, _, body = get("/ui/static/uPlot.iife.min.js")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "uPlot")
	code, _, body = get("/ui/nope")
	assert.Equal(t, 404, code)
	var e map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	assert.Contains(t, e["error"], "no such dashboard page")
	code, _, body = get("/ui/api/dlq/inspect?id=nonsense")
	assert.Equal(t, 400, code, body)
	code, _, body = get("/ui/api/dlq/inspect?id=1-0")
	assert.Equal(t, 404, code, body)
	code, _, body = get("/ui/api/outbox/list?status=gone")
	assert.Equal(t, 400, code, body)
}

func TestConnectorRetriesAFailedOpen(t *testing.T) {
	calls := 0
	c := NewConnector(func(context.Context) (io.ReadCloser, error) {
		calls++
		if calls == 1 {
			return nil, errors.New("not yet")
		}
		return io.NopCloser(strings.NewReader("")), nil
	})
	_, err := c.Get(context.Background())
	assert.Error(t, err)
	v, err := c.Get(context.Background())
	require.NoError(t, err)
	v2, err := c.Get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, v, v2, "kept once open")
	assert.Equal(t, 2, calls)
	require.NoError(t, c.Close())
}
