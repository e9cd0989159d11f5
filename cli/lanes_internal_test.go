package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/internal/lanes"
)

// TestRenderLive: the terminal frame clears the screen and draws a bar with
// rate and ETA for each backfill lane with a backlog, nothing for others.
func TestRenderLive(t *testing.T) {
	st := inspect.Status{Domain: "Customers", LanesEnabled: true, BackfillSuffix: "backfill", TakenAt: time.Now(),
		Categories: []inspect.CategoryStatus{{Category: "customer", Lanes: []inspect.LaneStatus{
			{Lane: lanes.Primary, Stream: "customer", Enabled: true},
			{Lane: lanes.Backfill, Stream: "customer:backfill", Enabled: true, Length: 50, Unhandled: 50, Lag: 50},
		}}, {Category: "product", Lanes: []inspect.LaneStatus{
			{Lane: lanes.Primary, Stream: "product", Enabled: true},
			{Lane: lanes.Backfill, Stream: "product:backfill", Enabled: true, Length: 7, Unhandled: 7, Lag: 7},
		}}}}
	drains := []inspect.Drain{
		{Stream: "customer"},
		{Stream: "customer:backfill", Unhandled: 50, Peak: 100, Rate: 10, ETA: 5 * time.Second},
		{Stream: "product"},
		{Stream: "product:backfill", Unhandled: 7, Peak: 7, Rate: -2},
	}
	var b bytes.Buffer
	render(&b, st, drains, true, time.Second)
	out := b.String()
	require.True(t, strings.HasPrefix(out, "\033[H\033[2J"), out)
	require.Contains(t, out, "  customer:backfill            [###############---------------]  50%  50 left  10.0/s  ETA 5s\n")
	require.Contains(t, out, "  product:backfill             [------------------------------]   0%  7 left  growing 2.0/s\n")
	require.NotContains(t, out, "  customer  ")
	require.Contains(t, out, "every 1s; Ctrl-C to stop")

	b.Reset()
	render(&b, st, drains, false, time.Second)
	require.NotContains(t, b.String(), "\033[")
	require.Contains(t, b.String(), "stream=customer:backfill lane=backfill enabled=true length=50 unhandled=50 pending=0 lag=50 oldest=- consumers=0 dlq=0 progress=50% rate=10.0/s eta=5s\n")
}
