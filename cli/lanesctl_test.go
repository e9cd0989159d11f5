package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
)

// ctlRedisDB is the Redis database of the lane-control commands' test: the
// customers domain's control keys are fixed, so it is isolated by number.
const ctlRedisDB = 6

// The operator's lane controls end to end through the CLI: pause and resume
// (a primary lane only with confirmation), throttle and clear, all shown by
// lanes status --json and doctor; bad input is refused with the fix.
func TestLaneControlCommands(t *testing.T) {
	t.Setenv("LANEWAY_ENV", "")
	u, err := url.Parse(testsvc.RedisURL(t))
	require.NoError(t, err)
	u.Path = fmt.Sprintf("/%d", ctlRedisDB)
	opt, err := redis.ParseURL(u.String())
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	clean := func() { require.NoError(t, rdb.Del(context.Background(), "laneway:lanes:Customers:control").Err()) }
	clean()
	t.Cleanup(clean)
	dir := writeDomain(t, fmt.Sprintf(`name = "Customers"
[brokers.default]
provider = "redis"
url = %q
[server.priority_lanes]
enabled = true
backfill_rate_per_second = 100
[server.priority_lanes.governor]
primary_latency_target_ms = 50
`, u.String()))

	type laneJSON struct {
		Stream  string `json:"stream"`
		Control struct {
			Paused         bool     `json:"paused"`
			PausedHandlers []string `json:"paused_handlers"`
			RatePerSecond  float64  `json:"rate_per_second"`
			RateSource     string   `json:"rate_source"`
		} `json:"control"`
	}
	status := func() map[string]laneJSON {
		code, out, errs := run(t, "lanes", "status", "--json", "--domain", dir)
		require.Equal(t, 0, code, errs)
		var st struct {
			Categories []struct {
				Lanes []laneJSON `json:"lanes"`
			} `json:"categories"`
			Controls struct {
				ConfigRate float64 `json:"config_rate_per_second"`
				TargetMS   int     `json:"governor_target_ms"`
			} `json:"controls"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &st), out)
		assert.Equal(t, 100.0, st.Controls.ConfigRate)
		assert.Equal(t, 50, st.Controls.TargetMS)
		m := map[string]laneJSON{}
		for _, c := range st.Categories {
			for _, l := range c.Lanes {
				m[l.Stream] = l
			}
		}
		return m
	}

	code, out, errs := run(t, "lanes", "pause", "customer:backfill", "--domain", dir)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "customer:backfill paused for every handler")
	assert.Contains(t, out, "laneway lanes resume customer:backfill")
	st := status()
	assert.True(t, st["customer:backfill"].Control.Paused)
	assert.False(t, st["customer"].Control.Paused)
	assert.Equal(t, 100.0, st["customer:backfill"].Control.RatePerSecond)
	assert.Equal(t, "config", st["customer:backfill"].Control.RateSource)

	code, out, _ = run(t, "lanes", "status", "--domain", dir)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "PAUSED customer:backfill for every handler")
	assert.Contains(t, out, "governor: target 50ms")

	_, out, _ = run(t, "doctor", "--json", "--sample", "10ms", "--domain", dir)
	var rep struct {
		Checks []struct{ ID, Status, Detail, Fix string } `json:"checks"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	found := false
	for _, c := range rep.Checks {
		if c.ID == "lane_paused" {
			found = true
			assert.Equal(t, "WARN", c.Status)
			assert.Contains(t, c.Detail, "customer:backfill is paused for every handler (")
			assert.Contains(t, c.Fix, "laneway lanes resume customer:backfill --domain "+dir)
		}
	}
	assert.True(t, found, "doctor has the paused-lanes check: %s", out)

	// A primary lane: refused without a confirmation, nothing changed.
	code, _, errs = run(t, "lanes", "pause", "customer", "--domain", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "WARNING: customer is a primary lane")
	assert.Contains(t, errs, "nothing was changed")
	assert.False(t, status()["customer"].Control.Paused)
	code, _, errs = run(t, "lanes", "pause", "--category", "customer", "--lane", "primary", "--handler", "CustomerProjector", "--yes", "--domain", dir)
	require.Equal(t, 0, code, errs)
	assert.Equal(t, []string{"CustomerProjector"}, status()["customer"].Control.PausedHandlers)

	code, out, errs = run(t, "lanes", "throttle", "customer:backfill", "500/s", "--domain", dir)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "customer:backfill throttled to 500/s")
	l := status()["customer:backfill"].Control
	assert.Equal(t, 500.0, l.RatePerSecond)
	assert.Equal(t, "throttle", l.RateSource)
	code, out, errs = run(t, "lanes", "throttle", "customer:backfill", "--clear", "--domain", dir)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "its rate is 100/s (backfill_rate_per_second)")
	assert.Equal(t, "config", status()["customer:backfill"].Control.RateSource)

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"lanes", "throttle", "customer", "5/s"}, "customer is a primary lane, which is never throttled: throttle its backfill lane customer:backfill"},
		{[]string{"lanes", "throttle", "customer:backfill", "fast"}, `rate "fast": use a positive number such as 500/s`},
		{[]string{"lanes", "throttle", "customer:backfill", "0/s"}, `rate "0/s": use a positive number`},
		{[]string{"lanes", "throttle", "customer:backfill", "5/h"}, `rate "5/h": use messages per second such as 500/s, or per minute`},
		{[]string{"lanes", "pause"}, "name the lanes one way: a STREAM argument (e.g. customer:backfill)"},
		{[]string{"lanes", "pause", "custom:backfill"}, `"custom:backfill" is not a lane of domain Customers: use one of customer, customer:backfill`},
		{[]string{"lanes", "pause", "--category", "customer", "--lane", "bulk"}, `--lane "bulk": use primary or backfill`},
		{[]string{"lanes", "pause", "customer:backfill", "--handler", "Nope"}, `--handler "Nope" does not read customer:backfill: its handlers are`},
	} {
		code, _, errs := run(t, append(bad.args, "--domain", dir)...)
		assert.Equal(t, 1, code, bad.args)
		assert.Contains(t, errs, bad.want, bad.args)
		assert.NotContains(t, errs, "goroutine", "no stack trace")
	}

	code, out, errs = run(t, "lanes", "resume", "customer:backfill", "--domain", dir)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "customer:backfill resumed after")
	code, out, errs = run(t, "lanes", "resume", "customer", "--handler", "CustomerProjector", "--domain", dir)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "customer resumed for handler CustomerProjector")
	st = status()
	assert.False(t, st["customer:backfill"].Control.Paused)
	assert.Empty(t, st["customer"].Control.PausedHandlers)
	code, out, _ = run(t, "lanes", "resume", "--all-backfill", "--domain", dir)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "customer:backfill was not paused")
}
