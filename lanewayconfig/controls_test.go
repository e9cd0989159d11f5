package lanewayconfig_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The lane-control keys: the backfill rate and the governor's target.
func TestLaneControlKeys(t *testing.T) {
	t.Parallel()
	c := mustParse(t, "")
	assert.Zero(t, c.Server.PriorityLanes.BackfillRatePerSecond, "unlimited by default")
	assert.Zero(t, c.Server.PriorityLanes.Governor.PrimaryLatencyTargetMS, "governor off by default")

	c = mustParse(t, "[server.priority_lanes]\nbackfill_rate_per_second = 2.5\n[server.priority_lanes.governor]\nprimary_latency_target_ms = 50\n")
	assert.Equal(t, 2.5, c.Server.PriorityLanes.BackfillRatePerSecond)
	assert.Equal(t, 50, c.Server.PriorityLanes.Governor.PrimaryLatencyTargetMS)
	c = mustParse(t, "[server.priority_lanes]\nbackfill_rate_per_second = \"${RATE:-500}\"\n")
	assert.Equal(t, 500.0, c.Server.PriorityLanes.BackfillRatePerSecond)

	for _, tc := range []struct{ name, doc, path, value, msg string }{
		{"negative rate", "[server.priority_lanes]\nbackfill_rate_per_second = -1", "server.priority_lanes.backfill_rate_per_second", "-1", "at least 0 (0 is unlimited"},
		{"infinite rate", "[server.priority_lanes]\nbackfill_rate_per_second = inf", "server.priority_lanes.backfill_rate_per_second", "inf", "finite"},
		{"negative target", "[server.priority_lanes.governor]\nprimary_latency_target_ms = -5", "server.priority_lanes.governor.primary_latency_target_ms", "-5", "must be at least 0 (0 turns the governor off"},
		{"float target", "[server.priority_lanes.governor]\nprimary_latency_target_ms = 5.5", "server.priority_lanes.governor.primary_latency_target_ms", "5.5", "expected an integer"},
		{"misspelled governor key", "[server.priority_lanes.governor]\nprimary_latency_target = 5", "server.priority_lanes.governor.primary_latency_target", "5", `did you mean "server.priority_lanes.governor.primary_latency_target_ms"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseDoc(tc.doc)
			requireProblem(t, err, tc.path, tc.value, tc.msg)
		})
	}
}
