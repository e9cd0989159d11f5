package lanewayconfig_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewayconfig"
)

func TestSubstitution(t *testing.T) {
	t.Parallel()
	get := func(c *lanewayconfig.Config, key string) any {
		switch key {
		case "name":
			return c.Name
		case "url":
			return c.Databases["default"].URL
		case "enabled":
			return c.Server.PriorityLanes.Enabled
		case "threshold":
			return c.Server.PriorityLanes.Threshold
		case "messages_per_tick":
			return c.Server.MessagesPerTick
		case "retry_delay_seconds":
			return c.Server.StreamSubscription.RetryDelaySeconds
		}
		panic(key)
	}
	cases := []struct {
		name, doc, key string
		env            []string
		want           any
	}{
		{"plain", `name = "${APP}"`, "name", []string{"APP", "Shop"}, "Shop"},
		{"inside text", "[databases.default]\nurl = \"sqlite://${DIR}/app.db\"", "url", []string{"DIR", "/srv"}, "sqlite:///srv/app.db"},
		{"two references", `name = "${A}_${B}"`, "name", []string{"A", "x", "B", "y"}, "x_y"},
		{"default when unset", `name = "${APP:-Fallback}"`, "name", nil, "Fallback"},
		{"default when empty", `name = "${APP:-Fallback}"`, "name", []string{"APP", ""}, "Fallback"},
		{"set value wins over default", `name = "${APP:-Fallback}"`, "name", []string{"APP", "Set"}, "Set"},
		{"empty default", "[databases.default]\nurl = \"${DB:-}\"", "url", nil, lanewayconfig.DatabaseURLDefault},
		{"escaped dollar", `name = "cost$${X}"`, "name", nil, "cost${X}"},
		{"double escape", `name = "a$$$$b"`, "name", nil, "a$$b"},
		{"lone dollar kept", `name = "pa$word$"`, "name", nil, "pa$word$"},
		{"typed boolean from default", "[server.priority_lanes]\nenabled = \"${LANES:-false}\"", "enabled", nil, false},
		{"typed boolean from variable", "[server.priority_lanes]\nenabled = \"${LANES:-false}\"", "enabled", []string{"LANES", "true"}, true},
		{"typed boolean 1", "[server.priority_lanes]\nenabled = \"${LANES}\"", "enabled", []string{"LANES", "1"}, true},
		{"typed integer from default", "[server]\nmessages_per_tick = \"${N:-5}\"", "messages_per_tick", nil, 5},
		{"typed integer with spaces", "[server]\nmessages_per_tick = \"${N}\"", "messages_per_tick", []string{"N", " 42\n"}, 42},
		{"typed negative integer", "[server.priority_lanes]\nthreshold = \"${T}\"", "threshold", []string{"T", "-50"}, -50},
		{"typed float", "[server.stream_subscription]\nretry_delay_seconds = \"${D:-0.05}\"", "retry_delay_seconds", nil, 0.05},
		{"typed float from integer", "[server.stream_subscription]\nretry_delay_seconds = \"${D}\"", "retry_delay_seconds", []string{"D", "2"}, 2.0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, tc.doc, tc.env...)
			require.Equal(t, tc.want, get(c, tc.key))
		})
	}
}

func TestSubstitutionErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, doc, path, value, msg string
		env                         []string
	}{
		{"missing variable", "[databases.default]\nprovider = \"postgres\"\nurl = \"${DATABASE_URL}\"", "databases.default.url", `"${DATABASE_URL}"`,
			"environment variable DATABASE_URL is not set (write ${DATABASE_URL:-default} to give a default)", nil},
		{"missing variable for a typed key", "[server.priority_lanes]\nenabled = \"${LANES}\"", "server.priority_lanes.enabled", `"${LANES}"`,
			"environment variable LANES is not set", nil},
		{"bad boolean", "[server.priority_lanes]\nenabled = \"${LANES}\"", "server.priority_lanes.enabled", `"${LANES}"`,
			`${LANES} resolved to "yes": expected a boolean (true or false)`, []string{"LANES", "yes"}},
		{"bad integer", "[server]\nmessages_per_tick = \"${N:-many}\"", "server.messages_per_tick", `"${N:-many}"`,
			`${N} resolved to "many": expected an integer`, nil},
		{"float for an integer", "[server.priority_lanes]\nthreshold = \"${T}\"", "server.priority_lanes.threshold", `"${T}"`,
			`${T} resolved to "0.5": expected an integer`, []string{"T", "0.5"}},
		{"nan for a float", "[outbox]\nlease_seconds = \"${L}\"", "outbox.lease_seconds", `"${L}"`,
			`${L} resolved to "NaN": expected a finite number`, []string{"L", "NaN"}},
		{"not the whole value", "[server]\nmessages_per_tick = \"${N}0\"", "server.messages_per_tick", `"${N}0"`,
			"expected an integer, got a string; a ${VAR} reference becomes an integer only when it is the whole value", []string{"N", "1"}},
		{"unclosed", `name = "${APP"`, "name", `"${APP"`, `unclosed reference "${APP"`, nil},
		{"invalid name", `name = "${1APP}"`, "name", `"${1APP}"`, `invalid reference "${1APP}"`, nil},
		{"shell form without colon", `name = "${APP-x}"`, "name", `"${APP-x}"`, `expected ${NAME} or ${NAME:-default}`, nil},
		{"empty reference", `name = "${}"`, "name", `"${}"`, `invalid reference "${}"`, nil},
		{"resolved value validated", "[server.priority_lanes]\nbackfill_suffix = \"${S}\"", "server.priority_lanes.backfill_suffix", `"a:b"`,
			"must not contain ':'", []string{"S", "a:b"}},
		{"resolved typed value validated", "[server]\nmessages_per_tick = \"${N}\"", "server.messages_per_tick", "0",
			"must be at least 1", []string{"N", "0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseDoc(tc.doc, tc.env...)
			requireProblem(t, err, tc.path, tc.value, tc.msg)
		})
	}
}
